// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

func TestProvidersListAndRead(t *testing.T) {
	e := newTestEnv(t)
	resp, _ := e.do(logical.ListOperation, "providers/", nil)
	keys := resp.Data["keys"].([]string)
	if len(keys) != len(catalog.Names()) {
		t.Fatalf("listed %d providers, want %d", len(keys), len(catalog.Names()))
	}
	info := resp.Data["key_info"].(map[string]any)["stripe"].(map[string]any)
	if info["auth_mode"] != "API_KEY" || info["builtin"] != true {
		t.Fatalf("key_info[stripe] = %v", info)
	}
	gh := e.mustDo(logical.ReadOperation, "providers/github", nil)
	if gh["auth_url"] != "https://github.com/login/oauth/authorize" || gh["auth_mode"] != "OAUTH2" {
		t.Fatalf("providers/github = %v", gh)
	}
	e.mustFail(logical.ReadOperation, "providers/nope", nil, http.StatusNotFound)
}

func TestProviderOverrideAndDelete(t *testing.T) {
	e := newTestEnv(t)
	builtin := e.mustDo(logical.ReadOperation, "providers/github", nil)
	e.mustDo(logical.UpdateOperation, "providers/github", map[string]any{"token_url": "https://ghe.example.test/login/oauth/access_token"})
	over := e.mustDo(logical.ReadOperation, "providers/github", nil)
	if over["token_url"] != "https://ghe.example.test/login/oauth/access_token" || over["auth_url"] != builtin["auth_url"] {
		t.Fatalf("override = %v", over)
	}
	// Built-in and operator-defined providers read alike.
	if len(over) != len(builtin) {
		t.Fatalf("override has %d fields, built-in %d", len(over), len(builtin))
	}
	resp, _ := e.do(logical.ListOperation, "providers/", nil)
	if resp.Data["key_info"].(map[string]any)["github"].(map[string]any)["builtin"] != false {
		t.Fatal("override still listed as built-in")
	}
	e.mustDo(logical.DeleteOperation, "providers/github", nil)
	if e.mustDo(logical.ReadOperation, "providers/github", nil)["token_url"] != builtin["token_url"] {
		t.Fatal("deleting the override did not restore the built-in")
	}
	msg := e.mustFail(logical.DeleteOperation, "providers/github", nil, http.StatusBadRequest)
	if !strings.Contains(msg, "built in") {
		t.Fatalf("error = %q", msg)
	}

	e.mustDo(logical.CreateOperation, "providers/acme-api", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": "https://${connectionConfig.subdomain}.acme.test/authorize",
		"token_url": "https://${connectionConfig.subdomain}.acme.test/token", "tokens_expire": true,
	})
	if e.mustDo(logical.ReadOperation, "providers/acme-api", nil)["tokens_expire"] != true {
		t.Fatal("tokens_expire not stored")
	}
	e.mustDo(logical.DeleteOperation, "providers/acme-api", nil)
	e.mustFail(logical.ReadOperation, "providers/acme-api", nil, http.StatusNotFound)
}

func TestProviderRejects(t *testing.T) {
	e := newTestEnv(t)
	before := e.snapshot()
	e.assertRejected([]rejection{
		{"no mode", "providers/acme-internal", map[string]any{"token_url": "https://p/t"}, "auth_mode"},
		{"missing auth_url", "providers/acme-internal", map[string]any{"auth_mode": "OAUTH2", "token_url": "https://p/t"}, "auth_url is required"},
		{"bad placeholder", "providers/acme-internal", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${env.HOME}/t"}, "placeholder"},
		{"relative", "providers/acme-internal", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "/t"}, "absolute"},
		{"bad name", "providers/a b", map[string]any{"auth_mode": "API_KEY"}, "name"},
	}, "zzz")
	e.assertUnchanged(before)
}

func TestIntegrationWithProvider(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL})
	// auth_mode and URLs come from the catalog.
	e.mustDo(logical.CreateOperation, "integrations/gh", map[string]any{"provider": "github", "client_id": "c"})
	data := e.mustDo(logical.ReadOperation, "integrations/gh", nil)
	// A read shows the effective URLs and where they come from.
	sources := data["sources"].(map[string]string)
	if data["auth_mode"] != "OAUTH2" || data["provider"] != "github" || data["auth_url"] != "https://github.com/login/oauth/authorize" ||
		sources["auth_url"] != "builtin" || sources["token_url"] != "builtin" {
		t.Fatalf("integration read = %v", data)
	}
	u := e.mustDo(logical.UpdateOperation, "connections/gh/acme/authorize", nil)["authorization_url"].(string)
	if !strings.HasPrefix(u, "https://github.com/login/oauth/authorize?") {
		t.Fatalf("authorization_url = %s", u)
	}
	// The integration's own fields win.
	e.mustDo(logical.UpdateOperation, "integrations/gh", map[string]any{"auth_url": "https://ghe.example.test/authorize"})
	u = e.mustDo(logical.UpdateOperation, "connections/gh/acme/authorize", nil)["authorization_url"].(string)
	if !strings.HasPrefix(u, "https://ghe.example.test/authorize?") {
		t.Fatalf("authorization_url after override = %s", u)
	}

	e.mustDo(logical.CreateOperation, "integrations/pay", map[string]any{"provider": "stripe"})
	if e.mustDo(logical.ReadOperation, "integrations/pay", nil)["auth_mode"] != "API_KEY" {
		t.Fatal("auth_mode not taken from the provider")
	}
	before := e.snapshot()
	e.assertRejected([]rejection{
		{"unknown provider", "integrations/x", map[string]any{"provider": "nope", "client_id": "c"}, "not in the catalog"},
		{"mode mismatch", "integrations/x", map[string]any{"provider": "github", "auth_mode": "API_KEY"}, "does not match"},
		{"catalog lacks what the mode needs", "integrations/x", map[string]any{"provider": "github"}, "client_id is required"},
	}, "zzz")
	e.assertUnchanged(before)
}

// TestMovingABuiltinProviderNeedsForce: overriding a built-in provider's
// token URL moves every integration that inherits it; that needs force and
// the answer names them.
func TestMovingABuiltinProviderNeedsForce(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/gh", map[string]any{"provider": "github", "client_id": "c", "client_secret": "s"})
	e.mustDo(logical.CreateOperation, "integrations/own", map[string]any{"provider": "github", "client_id": "c", "token_url": "https://own.example.test/t", "auth_url": "https://own.example.test/a"})
	before := e.snapshot()
	msg := e.mustFail(logical.UpdateOperation, "providers/github", map[string]any{"token_url": "https://attacker.example.test/token"}, http.StatusBadRequest)
	if !strings.Contains(msg, "force") || !strings.Contains(msg, "gh") || strings.Contains(msg, "own") {
		t.Fatalf("error = %q", msg)
	}
	e.assertUnchanged(before)
	// A change within the same host needs no force.
	e.mustDo(logical.UpdateOperation, "providers/github", map[string]any{"token_url": "https://github.com/login/oauth/access_token?v=2"})
	data := e.mustDo(logical.UpdateOperation, "providers/github", map[string]any{"token_url": "https://moved.example.test/token", "force": true})
	if got := fmt.Sprint(data["affected_integrations"]); got != "[gh]" {
		t.Fatalf("affected_integrations = %s", got)
	}
	in := e.mustDo(logical.ReadOperation, "integrations/gh", nil)
	if in["token_url"] != "https://moved.example.test/token" || in["sources"].(map[string]string)["token_url"] != "provider" {
		t.Fatalf("integration read does not show where its token URL comes from: %v", in)
	}
}

// TestScopeSeparatorAndRefreshURLRoundTrip: the new provider settings are
// validated, shown, inherited and overridden.
func TestScopeSeparatorAndRefreshURLRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "providers/commas", map[string]any{"auth_mode": "OAUTH2", "auth_url": "https://p.test/a", "token_url": "https://p.test/t",
		"refresh_url": "https://p.test/refresh", "refresh_params": map[string]any{"expires_in": "1800"}, "scope_separator": ","})
	p := e.mustDo(logical.ReadOperation, "providers/commas", nil)
	if p["scope_separator"] != "," || p["refresh_url"] != "https://p.test/refresh" {
		t.Fatalf("provider = %v", p)
	}
	e.mustDo(logical.CreateOperation, "integrations/c", map[string]any{"provider": "commas", "client_id": "x"})
	in := e.mustDo(logical.ReadOperation, "integrations/c", nil)
	if in["scope_separator"] != "," || in["refresh_url"] != "https://p.test/refresh" || in["sources"].(map[string]string)["refresh_url"] != "provider" {
		t.Fatalf("integration = %v", in)
	}
	e.mustDo(logical.UpdateOperation, "integrations/c", map[string]any{"scope_separator": " "})
	if in := e.mustDo(logical.ReadOperation, "integrations/c", nil); in["scope_separator"] != " " {
		t.Fatalf("override = %v", in["scope_separator"])
	}
	before := e.snapshot()
	e.assertRejected([]rejection{
		{"separator", "integrations/c", map[string]any{"scope_separator": "and"}, "scope_separator"},
		{"refresh url", "integrations/c", map[string]any{"refresh_url": "ftp://x"}, "refresh_url"},
		{"not for api keys", "integrations/k", map[string]any{"auth_mode": "API_KEY", "refresh_url": "https://x.test"}, "refresh_url"},
	}, "secret-marker-never-sent")
	e.assertUnchanged(before)
}

// Every provider change that can send an inheriting integration's secrets
// to a host it did not reach before needs force=true: a URL added where
// there was none, allowed_hosts widened, the schema of a host-choosing key
// changed; deleting a provider in use too. Each answer lists the affected
// integrations.
func TestProviderChangesThatWidenEgressNeedForce(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/gh", map[string]any{"provider": "github", "client_id": "c", "client_secret": "s"})
	e.mustDo(logical.CreateOperation, "providers/tenant", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${connectionConfig.domain}/token",
		"allowed_hosts": "*.tenant.example.com", "connection_config_schema": map[string]any{"domain": map[string]any{"pattern": "[a-z]+\\.tenant\\.example\\.com"}}})
	e.mustDo(logical.CreateOperation, "integrations/t", map[string]any{"provider": "tenant", "client_id": "c", "client_secret": "s"})
	before := e.snapshot()
	for _, c := range []struct {
		name, path string
		body       map[string]any
		users      string
	}{
		{"refresh_url added on another host", "providers/github", map[string]any{"refresh_url": "https://attacker.example.test/refresh"}, "gh"},
		{"revocation_url added", "providers/github", map[string]any{"revocation_url": "https://attacker.example.test/revoke"}, "gh"},
		{"allowed_hosts widened", "providers/tenant", map[string]any{"allowed_hosts": "*.tenant.example.com,*.attacker.example"}, "t"},
		{"schema of a host key relaxed", "providers/tenant", map[string]any{"connection_config_schema": map[string]any{"domain": map[string]any{"pattern": ".+"}}}, "t"},
	} {
		msg := e.mustFail(logical.UpdateOperation, c.path, c.body, http.StatusBadRequest)
		if !strings.Contains(msg, "force") || !strings.Contains(msg, c.users) {
			t.Errorf("%s: error %q does not ask for force naming %s", c.name, msg, c.users)
		}
	}
	msg := e.mustFail(logical.DeleteOperation, "providers/tenant", nil, http.StatusBadRequest)
	if !strings.Contains(msg, "force") || !strings.Contains(msg, "t") {
		t.Errorf("delete of a provider in use: %q", msg)
	}
	e.assertUnchanged(before)

	// Narrowing needs no force; widening with force lists who is affected.
	e.mustDo(logical.UpdateOperation, "providers/tenant", map[string]any{"allowed_hosts": "*.eu.tenant.example.com"})
	data := e.mustDo(logical.UpdateOperation, "providers/github", map[string]any{"revocation_url": "https://attacker.example.test/revoke", "force": true})
	if got := fmt.Sprint(data["affected_integrations"]); got != "[gh]" {
		t.Fatalf("affected_integrations = %s", got)
	}
	resp, status := e.do(logical.DeleteOperation, "providers/tenant", map[string]any{"force": true})
	if status/100 != 2 {
		t.Fatalf("forced delete: %d %v", status, resp)
	}
}

// A provider change that makes a host take another config key, or copies a
// host key from redirects or token responses, widens reach as much as a
// relaxed schema does.
func TestProviderHostKeyChangesNeedForce(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "providers/tenantsaas", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": "https://${connectionConfig.sub}.tenantsaas.com/authorize",
		"token_url":                "https://${connectionConfig.sub}.tenantsaas.com/token",
		"connection_config_schema": map[string]any{"sub": map[string]any{"type": "string", "enum": []any{"acme"}}}})
	e.mustDo(logical.CreateOperation, "integrations/ts", map[string]any{"provider": "tenantsaas", "client_id": "c", "client_secret": "s"})
	before := e.snapshot()
	for name, body := range map[string]map[string]any{
		"placeholder renamed":   {"auth_url": "https://${connectionConfig.Sub}.tenantsaas.com/authorize", "token_url": "https://${connectionConfig.Sub}.tenantsaas.com/token"},
		"callback_config":       {"callback_config": "sub"},
		"token_response_config": {"token_response_config": "sub=tenant"},
	} {
		if _, status := e.do(logical.UpdateOperation, "providers/tenantsaas", body); status != http.StatusBadRequest {
			t.Errorf("%s without force: status %d", name, status)
		}
	}
	e.assertUnchanged(before)
}
