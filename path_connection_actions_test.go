// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestRawAddsOnlyTheLongLivedSecrets(t *testing.T) {
	e, srv := oauthEnv(t)
	_, refresh := importExpiring(e, srv, "c1", 2*time.Hour)
	plain := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)
	raw := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)
	if raw["refresh_token"] != refresh {
		t.Fatalf("raw refresh_token = %v", raw["refresh_token"])
	}
	if _, ok := raw["raw_token_response"].(map[string]any); !ok {
		t.Fatalf("raw_token_response = %#v", raw["raw_token_response"])
	}
	for k, v := range plain {
		if _, ok := raw[k]; !ok {
			t.Errorf("raw read lacks %s (%v)", k, v)
		}
	}
	if len(raw) != len(plain)+3 || raw["raw_token_response_note"] != "" {
		t.Fatalf("raw read has %d fields, plain %d: raw should add exactly the refresh token, the raw response and its note (empty: nothing dropped, got %q)",
			len(raw), len(plain), raw["raw_token_response_note"])
	}
}

func TestForcedRefresh(t *testing.T) {
	e, srv := oauthEnv(t)
	access, _ := importExpiring(e, srv, "c1", 2*time.Hour)
	data := e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	if data["access_token"] == access || !srv.AccessTokenValid(data["access_token"].(string)) {
		t.Fatal("forced refresh did not return a new token")
	}
	if _, ok := data["refresh_token"]; ok {
		t.Fatal("refresh response includes the refresh token")
	}
	if got := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)["access_token"]; got != data["access_token"] {
		t.Fatal("forced refresh was not stored")
	}
}

func TestRefreshOfNonOAuthConnection(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/c", map[string]any{"api_key": "sk"})
	msg := e.mustFail(logical.UpdateOperation, "connections/stripe/c/refresh", nil, http.StatusBadRequest)
	if !strings.Contains(msg, "API_KEY") {
		t.Fatalf("error = %q", msg)
	}
}
