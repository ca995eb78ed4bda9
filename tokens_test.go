// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestTokenParamsAreSentWithEveryGrant(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"token_params": "audience=https://api.example"})
	e.mustDo(logical.UpdateOperation, "integrations/machine", map[string]any{"token_params": map[string]any{"resource": "urn:x", "grant_type": "must-not-win"}})

	importExpiring(e, srv, "c1", time.Minute)
	e.mustDo(logical.ReadOperation, "connections/github/c1", nil)
	if got := srv.LastForm().Get("audience"); got != "https://api.example" {
		t.Fatalf("refresh request audience = %q", got)
	}
	e.mustDo(logical.CreateOperation, "connections/machine/m1", nil)
	form := srv.LastForm()
	if form.Get("resource") != "urn:x" || form.Get("grant_type") != "client_credentials" {
		t.Fatalf("client-credentials form = %v", form)
	}
}

func TestAuthStyles(t *testing.T) {
	for _, tc := range []struct {
		integration, server string
		ok                  bool
	}{
		{"header", "header", true},
		{"params", "params", true},
		{"auto", "params", true}, // x/oauth2 tries the header, then the form
		{"header", "params", false},
	} {
		t.Run(tc.integration+"-"+tc.server, func(t *testing.T) {
			e, srv := oauthEnv(t)
			srv.RequireAuthStyle(tc.server)
			e.mustDo(logical.UpdateOperation, "integrations/machine", map[string]any{"auth_style": tc.integration})
			resp, status := e.do(logical.CreateOperation, "connections/machine/m1", nil)
			if tc.ok != (status == http.StatusOK) {
				t.Fatalf("status %d: %s", status, errorText(resp))
			}
			if !tc.ok && !strings.Contains(errorText(resp), "invalid_client") {
				t.Fatalf("error = %q", errorText(resp))
			}
			if tc.ok && srv.LastAuthStyle() != tc.server {
				t.Fatalf("last request used %s", srv.LastAuthStyle())
			}
		})
	}
}

func TestFormEncodedTokenResponse(t *testing.T) {
	e, srv := oauthEnv(t)
	srv.SetFormEncoding(true)
	srv.SetExtraFields(map[string]any{"instance_url": "https://acme.my.example"})
	importExpiring(e, srv, "c1", time.Minute)
	raw := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)
	if !srv.AccessTokenValid(raw["access_token"].(string)) {
		t.Fatal("form-encoded response not understood")
	}
	if got := raw["raw_token_response"].(map[string]any)["instance_url"]; got != "https://acme.my.example" {
		t.Fatalf("raw_token_response instance_url = %v", got)
	}
}

func TestTokenWithoutExpiry(t *testing.T) {
	e, srv := oauthEnv(t)
	srv.SetExpiresIn(0)
	data := e.mustDo(logical.CreateOperation, "connections/machine/m1", nil)
	if data["expires_at"] != "" {
		t.Fatalf("expires_at = %v for a token without expires_in", data["expires_at"])
	}
	e.mustDo(logical.ReadOperation, "connections/machine/m1", nil)
	if srv.Requests() != 1 {
		t.Fatalf("a token without expiry was refreshed: %d requests", srv.Requests())
	}
}
