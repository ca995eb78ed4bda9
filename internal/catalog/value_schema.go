// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// SchemaField describes one key of a connection's configuration (or of a
// credential) that a provider needs: what the operator's UI asks the
// customer, and what a write is checked against.
type SchemaField struct {
	// Type is string (the default), number or boolean.
	Type        string `json:"type,omitempty"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	// Pattern is a regular expression the whole value must match.
	Pattern string `json:"pattern,omitempty"`
	// PatternHint says in words what a value matching Pattern looks like,
	// e.g. "a key that starts with sk_live_ or sk_test_": a pattern error
	// says it ("must be …"), never the expression, which callers cannot be
	// expected to read.
	PatternHint string   `json:"pattern_hint,omitempty"`
	Enum        []string `json:"enum,omitempty"`
	// Optional keys may be absent; the others are required.
	Optional     bool `json:"optional,omitempty"`
	DefaultValue any  `json:"default_value,omitempty"`
	// Prefix and Suffix are display hints around an input, e.g. "https://"
	// and ".zendesk.com".
	Prefix  string `json:"prefix,omitempty"`
	Suffix  string `json:"suffix,omitempty"`
	Example string `json:"example,omitempty"`
	// Secret marks a value to be masked in a UI.
	Secret bool `json:"secret,omitempty"`
}

// ValueSchema is connection_config_schema or credentials_schema: key →
// field.
type ValueSchema map[string]SchemaField

var schemaKeyRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// DecodeValueSchema reads a schema given as a JSON object, refusing
// unknown members so that a typo ("optinal") is not silently ignored.
func DecodeValueSchema(field string, v any) (ValueSchema, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s must be a JSON object", field)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var s ValueSchema
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s must map keys to {type, title, description, pattern, pattern_hint, enum, optional, default_value, prefix, suffix, example, secret}: %s", field, printable(err.Error()))
	}
	return s, s.Validate(field)
}

// Validate checks that the schema itself is well formed.
func (s ValueSchema) Validate(field string) error {
	for _, key := range s.Keys() {
		f := s[key]
		where := fmt.Sprintf("%s.%s", field, printable(key))
		if !schemaKeyRe.MatchString(key) {
			return fmt.Errorf("%s: keys are letters, digits, '_', '.' or '-'", where)
		}
		switch f.Type {
		case "", "string", "number", "boolean":
		default:
			return fmt.Errorf("%s.type must be string, number or boolean", where)
		}
		if f.Pattern != "" {
			if _, err := f.patternRe(); err != nil {
				return fmt.Errorf("%s.pattern is not a regular expression: %s", where, printable(err.Error()))
			}
		}
		if f.DefaultValue != nil {
			if err := f.Check(f.DefaultValue); err != nil {
				return fmt.Errorf("%s.default_value %s", where, err)
			}
		}
		for _, e := range f.Enum {
			if err := f.Check(e); err != nil {
				return fmt.Errorf("%s.enum value %q %s", where, printable(e), err)
			}
		}
	}
	return nil
}

func (s ValueSchema) Keys() []string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Required lists, sorted, the keys a document must have: not optional and
// without a default.
func (s ValueSchema) Required() []string {
	var keys []string
	for _, k := range s.Keys() {
		if f := s[k]; !f.Optional && f.DefaultValue == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// WithDefaults returns doc with the schema's defaults filled into the keys
// it lacks; doc itself is not changed.
func (s ValueSchema) WithDefaults(doc map[string]any) map[string]any {
	var out map[string]any
	for _, k := range s.Keys() {
		f := s[k]
		if f.DefaultValue == nil || present(doc, k) {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(doc)+1)
			for dk, dv := range doc {
				out[dk] = dv
			}
		}
		out[k] = f.DefaultValue
	}
	if out == nil {
		return doc
	}
	return out
}

// Check validates doc: every required key present, every value of the
// schema's keys of its type and matching its pattern and enum. Keys the
// schema does not name are left alone. what names the document in errors,
// e.g. "connection_config".
func (s ValueSchema) Check(what string, doc map[string]any) error {
	for _, k := range s.Keys() {
		f := s[k]
		if !present(doc, k) {
			if !f.Optional && f.DefaultValue == nil {
				return fmt.Errorf("%s.%s is required%s", what, k, f.titled())
			}
			continue
		}
		if err := f.Check(doc[k]); err != nil {
			return fmt.Errorf("%s.%s %s", what, k, err)
		}
	}
	return nil
}

func (f SchemaField) titled() string {
	if f.Title == "" {
		return ""
	}
	return " (" + f.Title + ")"
}

// patternRe is the pattern as checks use it: anchored at both ends. It is
// what validation compiles too, so that a pattern accepted at a provider
// or integration write is one every check can use.
func (f SchemaField) patternRe() (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + f.Pattern + ")$")
}

// Check validates one value against the field's type, pattern and enum.
// Errors do not quote the value, which may be a secret.
func (f SchemaField) Check(v any) error {
	text, err := f.asText(v)
	if err != nil {
		return err
	}
	if f.Pattern != "" {
		re, err := f.patternRe()
		if err != nil || !re.MatchString(text) {
			// A pattern that does not compile admits nothing: a value is
			// never let through unchecked.
			return errors.New(f.patternMismatch())
		}
	}
	if len(f.Enum) > 0 && !slices.Contains(f.Enum, text) {
		return fmt.Errorf("must be one of %v", f.Enum)
	}
	return nil
}

// patternMismatch is the error of a value its pattern refuses, in words:
// the field's pattern_hint, else its example when the field is not secret
// (a secret field's example may be a real key pasted by mistake), else a
// sentence that sends the reader to the field's title.
func (f SchemaField) patternMismatch() string {
	switch {
	case f.PatternHint != "":
		return "must be " + safetext.Printable(f.PatternHint, 200)
	case f.Example != "" && !f.Secret:
		return fmt.Sprintf("must look like %q", printable(f.Example))
	default:
		return "is not in the form this field takes"
	}
}

// asText checks v's type and returns it as text for pattern and enum. A
// number or boolean given as a string (as `vault write k=v` sends it) is
// accepted when it parses.
func (f SchemaField) asText(v any) (string, error) {
	switch f.Type {
	case "number":
		switch n := v.(type) {
		case float64:
			return strconv.FormatFloat(n, 'f', -1, 64), nil
		case json.Number:
			return n.String(), nil
		case string:
			if _, err := strconv.ParseFloat(n, 64); err == nil {
				return n, nil
			}
		}
		return "", errors.New("must be a number")
	case "boolean":
		switch b := v.(type) {
		case bool:
			return strconv.FormatBool(b), nil
		case string:
			if p, err := strconv.ParseBool(b); err == nil {
				return strconv.FormatBool(p), nil
			}
		}
		return "", errors.New("must be a boolean")
	default:
		s, ok := v.(string)
		if !ok {
			return "", errors.New("must be a string")
		}
		return s, nil
	}
}

// present reports whether doc has a non-empty value for key.
func present(doc map[string]any, key string) bool {
	v, ok := doc[key]
	return ok && v != nil && v != ""
}

// JSONObject renders a schema for a response as plain JSON values, with
// its members as they are written; an empty schema is an empty object.
func (s ValueSchema) JSONObject() map[string]any {
	out := map[string]any{}
	if len(s) == 0 {
		return out
	}
	if raw, err := json.Marshal(s); err == nil {
		_ = json.Unmarshal(raw, &out)
	}
	return out
}

// printable quotes untrusted input for an error message without letting
// control characters or megabytes of it through.
func printable(s string) string {
	return safetext.Printable(s, 64)
}
