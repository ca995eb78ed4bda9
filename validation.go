// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// maxPayloadBytes bounds what one write may store. Connections are read on
// every API call an application makes; a megabyte of metadata is a mistake.
const maxPayloadBytes = 1 << 20

var (
	// Integration names appear in storage keys, policies and URLs.
	integrationNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	// Connection ids are the caller's customer ids: UUIDs, e-mail addresses,
	// "org:123" and the like.
	connectionIDRe = regexp.MustCompile(`^[A-Za-z0-9._@:+=-]{1,255}$`)
)

func validateIntegrationName(name string) error {
	if !integrationNameRe.MatchString(name) {
		return fmt.Errorf("integration name %q is invalid: use letters, digits, '.', '_' and '-' (up to 128, starting with a letter or digit)", printable(name))
	}
	return nil
}

func validateConnectionID(id string) error {
	// "." and ".." would be rewritten by HTTP clients and proxies.
	if !connectionIDRe.MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("connection_id %q is invalid: use letters, digits and . _ @ : + = - (up to 255 characters, no '/')", printable(id))
	}
	return nil
}

// printable quotes untrusted input for an error message without letting
// control characters or megabytes of it through.
func printable(s string) string {
	return safetext.Printable(s, 64)
}

// Size caps of what a connection stores. Integrated storage refuses entries
// over 1 MiB by default, and a connection that cannot be saved cannot store
// its next refresh token either, so the caps hold for the result of every
// write and merge patch, not only for one request body.
const (
	maxDocumentBytes        = 64 << 10  // metadata, connection_config, each
	maxRawTokenBytes        = 64 << 10  // the provider's raw token response kept
	maxConnectionEntryBytes = 512 << 10 // the whole stored entry
)

// checkDocumentSize refuses a metadata or connection_config object whose
// JSON is over maxDocumentBytes.
func checkDocumentSize(field string, doc map[string]any) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("%s is not valid JSON data: %w", field, err)
	}
	if len(b) > maxDocumentBytes {
		return fmt.Errorf("%s would be %d bytes; the limit is %d", field, len(b), maxDocumentBytes)
	}
	return nil
}

// checkPayloadSize refuses request bodies over maxPayloadBytes.
func checkPayloadSize(data map[string]any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("request body is not valid JSON data: %w", err)
	}
	if len(b) > maxPayloadBytes {
		return fmt.Errorf("request body is %d bytes; the limit is %d", len(b), maxPayloadBytes)
	}
	return nil
}

// jsonObject normalises a decoded JSON object so that what is stored is what
// a round trip through JSON gives back (nested maps as map[string]any).
func jsonObject(field string, v any) (map[string]any, error) {
	if v == nil {
		return map[string]any{}, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s must be a JSON object", field)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", field, err)
	}
	return decodeObject(field, b)
}

// decodeObject decodes a JSON object keeping numbers as json.Number, so that
// large integer ids survive unchanged.
func decodeObject(field string, b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	out := map[string]any{}
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("%s is not a valid JSON object: %w", field, err)
	}
	return out, nil
}

// stringMap requires every value of a JSON object to be a string.
func stringMap(field string, v map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(v))
	for k, val := range v {
		s, ok := val.(string)
		if !ok {
			return nil, fmt.Errorf("%s.%s must be a string", field, printable(k))
		}
		out[k] = s
	}
	return out, nil
}

// maxDisplayNameLen bounds a display_name, in characters.
const maxDisplayNameLen = 200

// checkDisplayName trims a display_name and checks it is at most 200
// printable characters: the page shows it to someone who must be able to
// read whom and what they connect.
func checkDisplayName(v string) (string, error) {
	v = strings.TrimSpace(v)
	if len([]rune(v)) > maxDisplayNameLen {
		return "", fmt.Errorf("display_name is longer than %d characters", maxDisplayNameLen)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return "", errors.New("display_name must be printable characters")
		}
	}
	return v, nil
}
