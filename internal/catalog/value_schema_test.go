// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"reflect"
	"strings"
	"testing"
)

// A schema member the engine does not know is refused, so that a typo
// ("optinal") does not silently make a key required.
func TestDecodeValueSchemaRefusesUnknownMembers(t *testing.T) {
	_, err := DecodeValueSchema("connection_config_schema", map[string]any{"subdomain": map[string]any{"optinal": true}})
	if err == nil || !strings.Contains(err.Error(), "connection_config_schema must map keys") {
		t.Fatalf("err = %v", err)
	}
	s, err := DecodeValueSchema("connection_config_schema", map[string]any{"subdomain": map[string]any{"optional": true, "pattern": "[a-z]+"}})
	if err != nil || !s["subdomain"].Optional {
		t.Fatalf("s = %v, err = %v", s, err)
	}
}

// Validate names the field and key of a malformed schema.
func TestValueSchemaValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		s    ValueSchema
		want string
	}{
		"bad key":            {ValueSchema{"a b": {}}, "keys are letters"},
		"bad type":           {ValueSchema{"k": {Type: "date"}}, "k.type must be"},
		"bad pattern":        {ValueSchema{"k": {Pattern: "("}}, "k.pattern is not a regular expression"},
		"default off type":   {ValueSchema{"k": {Type: "number", DefaultValue: "x"}}, "k.default_value must be a number"},
		"enum off pattern":   {ValueSchema{"k": {Pattern: "[a-z]+", Enum: []string{"A"}}}, `k.enum value "A"`},
		"well formed":        {ValueSchema{"k": {Type: "boolean", DefaultValue: true}}, ""},
		"deep when anchored": {ValueSchema{"k": {Pattern: strings.Repeat("(", 999) + "x" + strings.Repeat(")", 999)}}, "k.pattern"},
	} {
		err := tc.s.Validate("schema")
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// Check requires what is neither optional nor defaulted, checks types,
// anchored patterns and enums, and never quotes a value.
func TestValueSchemaCheck(t *testing.T) {
	s := ValueSchema{
		"subdomain": {Pattern: "[a-z]+", Title: "Subdomain", PatternHint: "lower-case letters"},
		"region":    {Enum: []string{"eu", "us"}, DefaultValue: "eu"},
		"port":      {Type: "number", Optional: true},
	}
	if got := s.Required(); !reflect.DeepEqual(got, []string{"subdomain"}) {
		t.Fatalf("Required() = %v", got)
	}
	for _, tc := range []struct {
		doc  map[string]any
		want string
	}{
		{map[string]any{"subdomain": "acme"}, ""},
		{map[string]any{"subdomain": "acme", "port": "443"}, ""},
		{map[string]any{}, "cfg.subdomain is required (Subdomain)"},
		{map[string]any{"subdomain": "acme.evil"}, "cfg.subdomain must be lower-case letters"},
		{map[string]any{"subdomain": "acme", "region": "ap"}, "cfg.region must be one of"},
		{map[string]any{"subdomain": "acme", "port": "x"}, "cfg.port must be a number"},
	} {
		err := s.Check("cfg", tc.doc)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Check(%v) = %v, want %q", tc.doc, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "evil") {
			t.Errorf("error quotes the value: %v", err)
		}
	}
	if err := (SchemaField{Pattern: strings.Repeat("(", 999) + "x" + strings.Repeat(")", 999)}).Check("x"); err == nil {
		t.Error("a pattern that does not compile anchored let a value through")
	}
}

// WithDefaults fills absent keys into a copy and leaves the document alone.
func TestValueSchemaWithDefaults(t *testing.T) {
	s := ValueSchema{"region": {DefaultValue: "eu"}, "subdomain": {}}
	doc := map[string]any{"subdomain": "acme"}
	got := s.WithDefaults(doc)
	if got["region"] != "eu" || got["subdomain"] != "acme" {
		t.Fatalf("WithDefaults = %v", got)
	}
	if _, changed := doc["region"]; changed {
		t.Fatal("WithDefaults changed its argument")
	}
	full := map[string]any{"region": "us"}
	if s.WithDefaults(full)["region"] != "us" {
		t.Fatal("a default replaced a given value")
	}
}

// JSONObject renders a schema as a response shows it, never nil.
func TestValueSchemaJSONObject(t *testing.T) {
	if got := ValueSchema(nil).JSONObject(); got == nil || len(got) != 0 {
		t.Fatalf("empty schema = %#v", got)
	}
	got := ValueSchema{"k": {Optional: true, Secret: true}}.JSONObject()
	want := map[string]any{"k": map[string]any{"optional": true, "secret": true}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("JSONObject = %#v", got)
	}
}

// A pattern error says what the value looks like in words: the field's
// pattern_hint, else a public example, never the expression (nor the
// value, nor a secret field's example).
func TestPatternErrorsAreWords(t *testing.T) {
	for name, tc := range map[string]struct {
		f    SchemaField
		want string
	}{
		"hint":           {SchemaField{Pattern: "(sk|rk)_[a-z]+", PatternHint: "a key that starts with sk_ or rk_"}, "must be a key that starts with sk_ or rk_"},
		"example":        {SchemaField{Pattern: "[a-z]+", Example: "acme"}, `must look like "acme"`},
		"secret example": {SchemaField{Pattern: "[a-z]+", Example: "sk_example", Secret: true}, "is not in the form this field takes"},
		"nothing":        {SchemaField{Pattern: "[a-z]+"}, "is not in the form this field takes"},
	} {
		err := tc.f.Check("Not-Valid-42")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
			continue
		}
		for _, leak := range []string{tc.f.Pattern, "pattern", "Not-Valid-42"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("%s: err %q holds %q", name, err, leak)
			}
		}
		if tc.f.Secret && strings.Contains(err.Error(), tc.f.Example) {
			t.Errorf("%s: err %q holds a secret field's example", name, err)
		}
	}
}

// pattern_hint is a schema member operators may write.
func TestDecodeValueSchemaTakesPatternHint(t *testing.T) {
	s, err := DecodeValueSchema("credentials_schema", map[string]any{"api_key": map[string]any{"pattern": "k_[a-z]+", "pattern_hint": "k_ then lower-case letters"}})
	if err != nil || s["api_key"].PatternHint != "k_ then lower-case letters" {
		t.Fatalf("s = %v, err = %v", s, err)
	}
}
