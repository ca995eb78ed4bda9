// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

func TestValidateAbsoluteURL(t *testing.T) {
	for _, u := range []string{"https://p.example/token", "http://127.0.0.1:8080/t"} {
		if err := validateAbsoluteURL("token_url", u); err != nil {
			t.Errorf("%q rejected: %v", u, err)
		}
	}
	for _, u := range []string{"", "/token", "p.example/token", "ftp://p.example/t", "https://", "javascript:alert(1)"} {
		if err := validateAbsoluteURL("token_url", u); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

// A value of the wrong type is refused with a sentence that names the
// field and says in words what it takes, never Vault's conversion text nor
// the value given (which may be a secret put in the wrong field).
func TestConversionErrorsNameTheFieldAndItsShape(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/k", map[string]any{"auth_mode": "API_KEY"})
	const secret = "sk_live_SECRETvalue42"
	for _, tc := range []struct {
		path string
		data map[string]any
		want string
	}{
		{"config", map[string]any{"refresh_margin": "banana-" + secret}, "refresh_margin must be a duration such as 90s, 15m or 1h, or a number of seconds"},
		{"config", map[string]any{"max_sessions": "lots-" + secret}, "max_sessions must be a whole number"},
		{"connections/k/a", map[string]any{"api_key": "x", "metadata": "notobj-" + secret}, "metadata must be a JSON object"},
		{"connections/k/a", map[string]any{"api_key": "x", "tags": "bad-" + secret}, "tags must be an object of string values or a list of key=value pairs"},
		{"integrations/k", map[string]any{"pkce": "maybe-" + secret}, "pkce must be true or false"},
		{"integrations/k", map[string]any{"scopes": map[string]any{"a": secret}}, "scopes must be a list of strings or one comma-separated string"},
		{"integrations/k", map[string]any{"request_headers": 42}, "request_headers must be an object of string values or a list of key=value pairs"},
	} {
		before := e.snapshot()
		msg := e.mustFail(logical.UpdateOperation, tc.path, tc.data, http.StatusBadRequest)
		if msg != tc.want {
			t.Errorf("%s %v: error %q, want %q", tc.path, tc.data, msg, tc.want)
		}
		if strings.Contains(msg, "SECRET") {
			t.Errorf("%s: error quotes the value: %q", tc.path, msg)
		}
		e.assertUnchanged(before)
	}
}

// fieldValuesOf hands a flow what FieldData.GetOk gives, field by field,
// for every field of the paths whose writes it parses (integrations,
// providers, config), given a value and given null: a field type it did
// not keep would be a field silently dropped from a write.
func TestFieldValuesOfKeepsWhatGetOkGives(t *testing.T) {
	samples := map[framework.FieldType]any{
		framework.TypeString:           " x ",
		framework.TypeBool:             true,
		framework.TypeInt:              3,
		framework.TypeDurationSecond:   "90s",
		framework.TypeCommaStringSlice: "a,b",
		framework.TypeKVPairs:          map[string]any{"k": "v"},
		framework.TypeMap:              map[string]any{"k": "v"},
	}
	for name, schema := range map[string]map[string]*framework.FieldSchema{
		"integrations": integrationFields(),
		"providers":    providerFields(),
		"config":       pathConfig(newBackend())[0].Fields,
	} {
		for _, null := range []bool{false, true} {
			raw := map[string]any{}
			for field, fs := range schema {
				sample, ok := samples[fs.Type]
				if !ok {
					t.Fatalf("%s.%s: no sample of %s; add one, and keep the type in fieldValuesOf", name, field, fs.Type)
				}
				if null {
					sample = nil
				}
				raw[field] = sample
			}
			d := &framework.FieldData{Raw: raw, Schema: schema}
			f := fieldValuesOf(d)
			kept := map[string]any{}
			for field, v := range f.Strings {
				kept[field] = v
			}
			for field, v := range f.Lists {
				kept[field] = v
			}
			for field, v := range f.Pairs {
				kept[field] = v
			}
			for field, v := range f.Objects {
				kept[field] = v
			}
			for field, v := range f.Bools {
				kept[field] = v
			}
			for field, v := range f.Ints {
				kept[field] = v
			}
			for field := range schema {
				want, given := d.GetOk(field)
				got, ok := kept[field]
				if ok != given || (given && !reflect.DeepEqual(got, want)) {
					t.Errorf("%s.%s (null %v): fieldValuesOf has %#v (%v), GetOk %#v (%v)", name, field, null, got, ok, want, given)
				}
			}
			// The fields an auth mode refuses are found among the fields
			// the write names, null included, as Vault's raw body has them.
			for _, mode := range catalog.AuthModes {
				if got, want := catalog.IntegrationFieldsNotFor(mode, f.names()), catalog.IntegrationFieldsNotFor(mode, raw); !reflect.DeepEqual(got, want) {
					t.Errorf("%s (null %v), %s: fields refused %v, from the raw body %v", name, null, mode, got, want)
				}
			}
			if len(kept) != len(f.names()) {
				t.Errorf("%s: names() has %d fields, the maps %d", name, len(f.names()), len(kept))
			}
		}
	}
}
