// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
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
