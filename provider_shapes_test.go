// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// Provider definitions in the shapes real catalogs publish, each written
// through the API and taken through its flow against the loopback OAuth
// server, asserting what the provider received.

// shapeEnv is a backend whose mount has a redirect_url registered with a
// fresh loopback OAuth server.
func shapeEnv(t *testing.T) (*testEnv, *oauthtest.Server) {
	t.Helper()
	srv := oauthtest.New()
	t.Cleanup(srv.Close)
	e := newTestEnv(t)
	srv.RegisterRedirectURI(testRedirectURL)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL})
	return e, srv
}

// A provider that states response_type=code in auth_params, as about a
// quarter of a large open catalog does, is accepted; the parameter is sent
// once, with the flow's value; any other value is still refused by name.
func TestAuthParamsMayRestateResponseTypeCode(t *testing.T) {
	e, srv := shapeEnv(t)
	e.mustDo(logical.CreateOperation, "providers/restating", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": srv.AuthURL(), "token_url": srv.TokenURL(),
		"auth_params": map[string]any{"response_type": "code", "prompt": "consent"},
	})
	e.mustDo(logical.CreateOperation, "integrations/r", map[string]any{
		"provider": "restating", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
	})
	q := consent(t, e, "connections/r/acme/authorize", nil)
	sent := srv.LastAuthorize()
	if got := sent["response_type"]; len(got) != 1 || got[0] != "code" || sent.Get("prompt") != "consent" {
		t.Fatalf("authorization request = %v", sent)
	}
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	if srv.LastForm().Get("grant_type") != "authorization_code" {
		t.Fatalf("exchange form = %v", srv.LastForm())
	}
	raw := e.mustDo(logical.ReadOperation, "connections/r/acme/raw", nil)
	if !srv.AccessTokenValid(raw["access_token"].(string)) {
		t.Fatal("stored access token was not issued by the server")
	}

	before := e.snapshot()
	e.assertRejected([]rejection{
		{"integration, another value", "integrations/r", map[string]any{"auth_params": map[string]any{"response_type": "token"}}, "response_type"},
		{"provider, another value", "providers/restating", map[string]any{"auth_params": map[string]any{"response_type": "code id_token"}}, "response_type"},
		{"provider, other case", "providers/other", map[string]any{"auth_mode": "OAUTH2", "auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "auth_params": map[string]any{"response_type": "CODE"}}, "response_type"},
	}, "no-secret-here")
	e.assertUnchanged(before)
	if msg := e.mustFail(logical.UpdateOperation, "integrations/r", map[string]any{"auth_params": map[string]any{"response_type": "token"}}, http.StatusBadRequest); !strings.Contains(msg, "code") {
		t.Fatalf("error %q does not say which value the flow sends", msg)
	}
}
