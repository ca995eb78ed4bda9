// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func oauthIntegration(tokenURL string) map[string]any {
	return map[string]any{
		"auth_mode":     "OAUTH2",
		"client_id":     "client-1",
		"client_secret": "s3cret-client",
		"scopes":        "repo,read:user",
		"auth_url":      "https://provider.example/authorize",
		"token_url":     tokenURL,
		"auth_params":   map[string]any{"access_type": "offline"},
	}
}

func TestIntegrationCreateReadHidesSecret(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/github", oauthIntegration("https://provider.example/token"))
	data := e.mustDo(logical.ReadOperation, "integrations/github", nil)
	if _, ok := data["client_secret"]; ok {
		t.Fatal("read returned client_secret")
	}
	if data["client_secret_set"] != true {
		t.Fatalf("client_secret_set = %v", data["client_secret_set"])
	}
	if got := data["scopes"].([]string); strings.Join(got, " ") != "repo read:user" {
		t.Fatalf("scopes = %v", got)
	}
	if data["auth_style"] != "auto" || data["auth_params"].(map[string]string)["access_type"] != "offline" {
		t.Fatalf("unexpected read: %v", data)
	}
	e.assertNoSecretLogged("s3cret-client")
}

func TestIntegrationEveryAuthMode(t *testing.T) {
	e := newTestEnv(t)
	cases := map[string]map[string]any{
		"oauth": oauthIntegration("https://p.example/token"),
		"cc":    {"auth_mode": "OAUTH2_CC", "client_id": "c", "client_secret": "s", "token_url": "https://p.example/token", "auth_style": "params"},
		"key":   {"auth_mode": "API_KEY"},
		"basic": {"auth_mode": "basic"}, // modes are case-insensitive
		"free":  {"auth_mode": "CUSTOM"},
	}
	for name, body := range cases {
		e.mustDo(logical.CreateOperation, "integrations/"+name, body)
	}
	resp, _ := e.do(logical.ListOperation, "integrations/", nil)
	if got := strings.Join(resp.Data["keys"].([]string), ","); got != "basic,cc,free,key,oauth" {
		t.Fatalf("list = %s", got)
	}
	if mode := e.mustDo(logical.ReadOperation, "integrations/basic", nil)["auth_mode"]; mode != "BASIC" {
		t.Fatalf("auth_mode = %v", mode)
	}
	if _, ok := e.mustDo(logical.ReadOperation, "integrations/key", nil)["client_id"]; ok {
		t.Fatal("API_KEY integration shows OAuth fields")
	}
}

func TestIntegrationPartialUpdate(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/github", oauthIntegration("https://provider.example/token"))
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"scopes": "repo"})
	data := e.mustDo(logical.ReadOperation, "integrations/github", nil)
	if data["client_id"] != "client-1" || data["client_secret_set"] != true || data["token_url"] != "https://provider.example/token" {
		t.Fatalf("partial update lost fields: %v", data)
	}
	if got := data["scopes"].([]string); len(got) != 1 || got[0] != "repo" {
		t.Fatalf("scopes = %v", got)
	}
	in, _ := getIntegration(t.Context(), e.storage, "github")
	if in.ClientSecret != "s3cret-client" {
		t.Fatal("partial update lost the client secret")
	}
}

func TestIntegrationRejectsBadInput(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/github", oauthIntegration("https://provider.example/token"))
	before := e.snapshot()
	cases := []rejection{
		{"unknown mode", "integrations/x", map[string]any{"auth_mode": "SAML"}, "auth_mode"},
		{"no mode", "integrations/x", map[string]any{"client_id": "c"}, "auth_mode is required"},
		{"field of another mode", "integrations/x", map[string]any{"auth_mode": "API_KEY", "client_secret": "zzz"}, "client_secret"},
		{"auth_url for CC", "integrations/x", map[string]any{"auth_mode": "OAUTH2_CC", "client_id": "c", "client_secret": "s", "token_url": "https://p/t", "auth_url": "https://p/a"}, "auth_url"},
		{"missing token_url", "integrations/x", map[string]any{"auth_mode": "OAUTH2", "client_id": "c", "auth_url": "https://p/a"}, "token_url is required"},
		{"missing secret for CC", "integrations/x", map[string]any{"auth_mode": "OAUTH2_CC", "client_id": "c", "token_url": "https://p/t"}, "client_secret is required"},
		{"relative URL", "integrations/x", map[string]any{"auth_mode": "OAUTH2", "client_id": "c", "auth_url": "/authorize", "token_url": "https://p/t"}, "auth_url must be an absolute"},
		{"ftp URL", "integrations/x", map[string]any{"auth_mode": "OAUTH2", "client_id": "c", "auth_url": "https://p/a", "token_url": "ftp://p/t"}, "token_url must be an absolute"},
		{"bad auth_style", "integrations/x", map[string]any{"auth_mode": "OAUTH2_CC", "client_id": "c", "client_secret": "s", "token_url": "https://p/t", "auth_style": "cookie"}, "auth_style"},
		{"bad name", "integrations/-x", map[string]any{"auth_mode": "API_KEY"}, "integration name"},
		{"control char name", "integrations/a\x01b", map[string]any{"auth_mode": "API_KEY"}, "integration name"},
		{"mode change", "integrations/github", map[string]any{"auth_mode": "API_KEY"}, "cannot be changed"},
		{"update breaks URL", "integrations/github", map[string]any{"token_url": "nope"}, "token_url"},
		{"oversized", "integrations/x", map[string]any{"auth_mode": "OAUTH2_CC", "client_id": "c", "client_secret": "s", "token_url": "https://p/t", "token_params": map[string]any{"big": strings.Repeat("a", maxPayloadBytes)}}, "limit"},
	}
	e.assertRejected(cases, "zzz")
	e.assertUnchanged(before)
}

func TestIntegrationReadAbsentIs404(t *testing.T) {
	e := newTestEnv(t)
	e.mustFail(logical.ReadOperation, "integrations/nope", nil, http.StatusNotFound)
}

func TestIntegrationDeleteWithConnections(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	for _, id := range []string{"a", "b"} {
		e.mustDo(logical.CreateOperation, "connections/stripe/"+id, map[string]any{"api_key": "sk_" + id})
	}
	before := e.snapshot()
	msg := e.mustFail(logical.DeleteOperation, "integrations/stripe", nil, http.StatusBadRequest)
	if !strings.Contains(msg, "2 connection") || !strings.Contains(msg, "force=true") {
		t.Fatalf("error %q lacks the count or the way out", msg)
	}
	e.assertUnchanged(before)

	e.mustDo(logical.DeleteOperation, "integrations/stripe", map[string]any{"force": true})
	if len(e.snapshot()) != 0 {
		t.Fatalf("force delete left entries: %v", e.snapshot())
	}
}

func TestIntegrationDeleteEmpty(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	e.mustDo(logical.DeleteOperation, "integrations/stripe", nil)
	e.mustFail(logical.ReadOperation, "integrations/stripe", nil, http.StatusNotFound)
}

// TestStorageFailureIsNotTheCallersFault: a storage error while an
// integration write looks up its provider answers 500, not 400.
func TestStorageFailureIsNotTheCallersFault(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "providers/custom", map[string]any{"auth_mode": "API_KEY"})
	flaky := &flakyStorage{Storage: e.storage, failGetKey: "providers/custom"}
	flaky.failGet.Store(true)
	e.storage = flaky
	resp, status := e.do(logical.CreateOperation, "integrations/x", map[string]any{"provider": "custom"})
	if status != http.StatusInternalServerError {
		t.Fatalf("storage failure answered %d: %s", status, errorText(resp))
	}
}
