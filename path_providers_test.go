// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
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
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL, "oauth_completion": "callback"})
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

// Schemas, headers and URLs are validated when written.
func TestUsageFieldsAreValidated(t *testing.T) {
	e := newTestEnv(t)
	before := e.snapshot()
	e.assertRejected([]rejection{
		{"unknown schema member", "providers/acme-x", map[string]any{"auth_mode": "API_KEY", "connection_config_schema": map[string]any{"k": map[string]any{"optinal": true}}}, "connection_config_schema"},
		{"bad type", "providers/acme-x", map[string]any{"auth_mode": "API_KEY", "connection_config_schema": map[string]any{"k": map[string]any{"type": "date"}}}, "connection_config_schema.k.type"},
		{"bad pattern", "providers/acme-x", map[string]any{"auth_mode": "API_KEY", "connection_config_schema": map[string]any{"k": map[string]any{"pattern": "("}}}, "connection_config_schema.k.pattern"},
		{"enum of wrong type", "providers/acme-x", map[string]any{"auth_mode": "API_KEY", "connection_config_schema": map[string]any{"k": map[string]any{"type": "number", "enum": []any{"one"}}}}, "connection_config_schema.k.enum"},
		{"credential of another mode", "providers/acme-x", map[string]any{"auth_mode": "API_KEY", "credentials_schema": map[string]any{"password": map[string]any{}}}, "credentials_schema.password"},
		{"credentials for oauth", "providers/acme-x", map[string]any{"auth_mode": "OAUTH2", "auth_url": "https://a.test", "token_url": "https://a.test", "credentials_schema": map[string]any{"apiKey": map[string]any{}}}, "credentials_schema"},
		{"header variable", "providers/acme-x", map[string]any{"auth_mode": "API_KEY", "request_headers": map[string]any{"Authorization": "Bearer ${token}"}}, "request_headers.Authorization"},
		{"header of another mode", "providers/acme-x", map[string]any{"auth_mode": "API_KEY", "request_headers": map[string]any{"Authorization": "Bearer ${accessToken}"}}, "not a credential of API_KEY"},
		{"header name", "providers/acme-x", map[string]any{"auth_mode": "API_KEY", "request_headers": map[string]any{"Bad Header": "${apiKey}"}}, "HTTP header name"},
		{"unclosed base64", "providers/acme-x", map[string]any{"auth_mode": "BASIC", "request_headers": map[string]any{"Authorization": "Basic ${base64(${username}:${password}}"}}, "request_headers.Authorization"},
		{"whole URL where secrets go", "providers/acme-x", map[string]any{"auth_mode": "OAUTH2", "auth_url": "https://a.test", "token_url": "${connectionConfig.host}/token"}, "token_url"},
		{"whole URL for app", "providers/acme-x", map[string]any{"auth_mode": "APP", "api_base_url": "${connectionConfig.host}"}, "api_base_url"},
		{"empty alternative", "providers/acme-x", map[string]any{"auth_mode": "OAUTH2", "auth_url": "https://a.test ||", "token_url": "https://a.test"}, "auth_url"},
	}, "secret-marker-never-sent")
	e.assertUnchanged(before)
	// Outside APP, api_base_url may be a whole URL from the config.
	e.mustDo(logical.CreateOperation, "providers/sf", map[string]any{"auth_mode": "OAUTH2", "auth_url": "https://a.test/a", "token_url": "https://a.test/t",
		"api_base_url": "${connectionConfig.instance_url}/services/data", "request_headers": map[string]any{"Authorization": "Bearer ${accessToken}"},
		"allowed_hosts": "*.my.sf.test"})
	e.mustDo(logical.CreateOperation, "integrations/sf", map[string]any{"provider": "sf", "client_id": "c"})
	e.mustDo(logical.CreateOperation, "connections/sf/acme", map[string]any{"access_token": "at-1", "connection_config": map[string]any{"instance_url": "https://acme.my.sf.test"}})
	c := e.mustDo(logical.ReadOperation, "connections/sf/acme", nil)
	if c["base_url"] != "https://acme.my.sf.test/services/data" || c["headers"].(map[string]any)["Authorization"] != "Bearer at-1" {
		t.Fatalf("connection = %v", c)
	}
	// A config value that is not a plain https URL, or points elsewhere, is
	// refused; one stored by an earlier version is not used, and the read
	// says why without quoting it.
	for _, bad := range []string{"https://evil.test/?x=secret-in-config", "https://evil.test"} {
		if _, status := e.do(logical.UpdateOperation, "connections/sf/acme/config", map[string]any{"instance_url": bad}); status != http.StatusBadRequest {
			t.Fatalf("config write of %q = %d", bad, status)
		}
	}
	e.rewriteStoredConnection("sf", "acme", func(c *connectionEntry) {
		c.ConnectionConfig["instance_url"] = "https://evil.test/?x=secret-in-config"
	})
	resp, status := e.do(logical.ReadOperation, "connections/sf/acme", nil)
	if status != http.StatusOK || resp.Data["base_url"] != nil || len(resp.Warnings) != 1 || strings.Contains(resp.Warnings[0], "secret-in-config") {
		t.Fatalf("read = %d %v %v", status, resp.Data["base_url"], resp.Warnings)
	}
}

// The provider read shows what registering the OAuth app needs.
func TestProviderReadShowsRegistration(t *testing.T) {
	e := newTestEnv(t)
	resp, _ := e.do(logical.ReadOperation, "providers/zendesk", nil)
	if len(resp.Warnings) == 0 || resp.Data["redirect_url"] != "" {
		t.Fatalf("without redirect_url: %v %v", resp.Data["redirect_url"], resp.Warnings)
	}
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": "https://vault.test/v1/connect/oauth/callback", "oauth_completion": "callback"})
	p := e.mustDo(logical.ReadOperation, "providers/zendesk", nil)
	if p["redirect_url"] != "https://vault.test/v1/connect/oauth/callback" || strings.Join(p["required_config_keys"].([]string), ",") != "subdomain" ||
		p["builtin"] != true || len(p["scopes"].([]string)) == 0 {
		t.Fatalf("providers/zendesk = %v", p)
	}
}

// The tests from here on take provider definitions in the shapes real
// catalogs publish, each written through the API and taken through its
// flow against the loopback OAuth server, asserting what the provider
// received.

// shapeEnv is a backend whose mount has a redirect_url registered with a
// fresh loopback OAuth server.
func shapeEnv(t *testing.T) (*testEnv, *oauthtest.Server) {
	t.Helper()
	srv := oauthtest.New()
	t.Cleanup(srv.Close)
	e := newTestEnv(t)
	srv.RegisterRedirectURI(testRedirectURL)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL, "oauth_completion": "callback"})
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

// Token parameters filled from each connection's config (Auth0's
// audience): sent in the client-credentials request, the code exchange
// and every refresh of that connection; a config change that changes them
// gets a new token; their keys count as required; a value that is not
// printable text, or a placeholder of another kind, is a 400 naming it.
// audienceSchema pins the audience a customer may choose.
var audienceSchema = map[string]any{"audience": map[string]any{"type": "string", "pattern": `https://\S+`}}

func TestTemplatedTokenParams(t *testing.T) {
	e, srv := shapeEnv(t)
	params := map[string]any{"audience": "${connectionConfig.audience}", "resource": "urn:fixed"}
	e.mustDo(logical.CreateOperation, "providers/audienced-cc", map[string]any{
		"auth_mode": "OAUTH2_CC", "token_url": srv.TokenURL(), "token_params": params,
		"connection_config_schema": audienceSchema,
	})
	if keys := e.mustDo(logical.ReadOperation, "providers/audienced-cc", nil)["required_config_keys"].([]string); strings.Join(keys, ",") != "audience" {
		t.Fatalf("required_config_keys = %v", keys)
	}
	e.mustDo(logical.CreateOperation, "integrations/cc", map[string]any{
		"provider": "audienced-cc", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
	})
	msg := e.mustFail(logical.CreateOperation, "connections/cc/none", nil, http.StatusBadRequest)
	if !strings.Contains(msg, "connection_config.audience is required") {
		t.Fatalf("error = %q", msg)
	}

	e.mustDo(logical.CreateOperation, "connections/cc/acme", map[string]any{"connection_config": map[string]any{"audience": "https://api.acme.test/"}})
	if f := srv.LastForm(); f.Get("grant_type") != "client_credentials" || f.Get("audience") != "https://api.acme.test/" || f.Get("resource") != "urn:fixed" {
		t.Fatalf("client credentials form = %v", f)
	}
	first := e.mustDo(logical.ReadOperation, "connections/cc/acme", nil)["access_token"]
	// Another audience: the token held was issued for the old one.
	e.mustDo(logical.PatchOperation, "connections/cc/acme/config", map[string]any{"audience": "https://api2.acme.test/"})
	if srv.LastForm().Get("audience") != "https://api2.acme.test/" {
		t.Fatalf("after a config change: form = %v", srv.LastForm())
	}
	if e.mustDo(logical.ReadOperation, "connections/cc/acme", nil)["access_token"] == first {
		t.Fatal("a token issued for the old audience is still served")
	}

	// Authorization code: the exchange and each refresh carry it too.
	e.mustDo(logical.CreateOperation, "providers/audienced", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "token_params": params,
		"connection_config_schema": map[string]any{"audience": map[string]any{"type": "string", "secret": true, "pattern": `https://\S+`}},
	})
	e.mustDo(logical.CreateOperation, "integrations/ac", map[string]any{
		"provider": "audienced", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
	})
	q := consent(t, e, "connections/ac/acme/authorize", map[string]any{"connection_config": map[string]any{"audience": "https://api.acme.test/"}})
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	if f := srv.LastForm(); f.Get("grant_type") != "authorization_code" || f.Get("audience") != "https://api.acme.test/" {
		t.Fatalf("exchange form = %v", f)
	}
	e.mustDo(logical.UpdateOperation, "connections/ac/acme/refresh", nil)
	if f := srv.LastForm(); f.Get("grant_type") != "refresh_token" || f.Get("audience") != "https://api.acme.test/" || f.Get("resource") != "urn:fixed" {
		t.Fatalf("refresh form = %v", f)
	}

	// Authorize refuses a connection the code exchange could not serve,
	// before the customer consents.
	e.mustDo(logical.CreateOperation, "integrations/ac-bare", map[string]any{
		"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "token_params": params,
		"connection_config_schema": audienceSchema,
	})
	// A token parameter the customer chooses must be pinned by the schema.
	if msg := e.mustFail(logical.CreateOperation, "integrations/ac-unpinned", map[string]any{
		"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "token_params": params,
	}, http.StatusBadRequest); !strings.Contains(msg, "connection_config_schema.audience") {
		t.Fatalf("an unpinned token parameter: %q", msg)
	}
	if msg := e.mustFail(logical.UpdateOperation, "connections/ac-bare/acme/authorize", nil, http.StatusBadRequest); !strings.Contains(msg, "connection_config.audience is required") {
		t.Fatalf("authorize without the key: %q", msg)
	}

	before := e.snapshot()
	e.assertRejected([]rejection{
		{"CR LF in the value", "connections/cc/acme/config", map[string]any{"audience": "https://a.test/\r\nX-Injected: secret-marker"}, "connection_config.audience"},
		{"over the bound", "connections/cc/acme/config", map[string]any{"audience": strings.Repeat("a", 1025) + "secret-marker"}, "connection_config.audience"},
		{"a credential placeholder", "providers/audienced", map[string]any{"token_params": map[string]any{"audience": "${credentials.secret}"}}, "token_params.audience"},
		{"an unknown placeholder", "integrations/ac", map[string]any{"token_params": map[string]any{"audience": "${step1.audience}"}}, "token_params.audience"},
		{"an unclosed placeholder", "integrations/ac", map[string]any{"token_params": map[string]any{"audience": "${connectionConfig.audience"}}, "token_params.audience"},
	}, "secret-marker")
	e.assertUnchanged(before)
	e.assertNoSecretLogged(srv.ClientSecret)
}

// eBay wants its RuName, not a URL, as redirect_uri: redirect_uri_value is
// sent in its place in the authorization request and the code exchange,
// while the browser still comes back to the mount's callback, through the
// provider's own record of the name. The value must be a name, not a URL.
func TestRedirectURIValueThatIsNotAURL(t *testing.T) {
	e, srv := shapeEnv(t)
	const ruName = "Acme_Corp-AcmeApp-PRD-1a2b3c4d5-6e7f8a9b"
	srv.RegisterRedirectName(ruName, testRedirectURL)
	e.mustDo(logical.CreateOperation, "providers/runame", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": srv.AuthURL(), "token_url": srv.TokenURL(),
		"redirect_uri_value": ruName,
	})
	e.mustDo(logical.CreateOperation, "integrations/eb", map[string]any{
		"provider": "runame", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
	})
	in := e.mustDo(logical.ReadOperation, "integrations/eb", nil)
	if in["redirect_uri_value"] != ruName || in["sources"].(map[string]string)["redirect_uri_value"] != "provider" {
		t.Fatalf("integration = %v", in)
	}
	q := consent(t, e, "connections/eb/acme/authorize", nil) // checks the browser came back to the callback
	if got := srv.LastAuthorize()["redirect_uri"]; len(got) != 1 || got[0] != ruName {
		t.Fatalf("authorization request redirect_uri = %v", got)
	}
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	if f := srv.LastForm(); f.Get("grant_type") != "authorization_code" || f.Get("redirect_uri") != ruName {
		t.Fatalf("exchange form = %v", f)
	}
	raw := e.mustDo(logical.ReadOperation, "connections/eb/acme/raw", nil)
	if !srv.AccessTokenValid(raw["access_token"].(string)) {
		t.Fatal("stored access token was not issued by the server")
	}

	before := e.snapshot()
	e.assertRejected([]rejection{
		{"a URL", "integrations/eb", map[string]any{"redirect_uri_value": "https://elsewhere.test/callback"}, "redirect_uri_value"},
		{"white space", "integrations/eb", map[string]any{"redirect_uri_value": "Acme Corp"}, "redirect_uri_value"},
		{"a control character", "providers/runame", map[string]any{"redirect_uri_value": "Acme\r\nX: y"}, "redirect_uri_value"},
		{"too long", "providers/runame", map[string]any{"redirect_uri_value": strings.Repeat("a", 300)}, "redirect_uri_value"},
		{"not for client credentials", "integrations/cc2", map[string]any{"auth_mode": "OAUTH2_CC", "client_id": "c", "client_secret": "s", "token_url": srv.TokenURL(), "redirect_uri_value": ruName}, "redirect_uri_value"},
	}, "no-secret-here")
	e.assertUnchanged(before)
}

// A URL template may not put the OAuth parameters the flow sets into its
// query: a value there (the customer's, through a placeholder) would come
// before the flow's own, and many servers take the first.
func TestReservedParamsInURLQueriesAreRefused(t *testing.T) {
	e, srv := shapeEnv(t)
	for field, tmpl := range map[string]string{
		"auth_url":       srv.AuthURL() + "?scope=${connectionConfig.s}",
		"token_url":      srv.TokenURL() + "?grant_type=password",
		"refresh_url":    srv.TokenURL() + "?refresh_token=${connectionConfig.r}",
		"revocation_url": srv.RevocationURL() + "?client_secret=x",
	} {
		body := map[string]any{"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
			"auth_url": srv.AuthURL(), "token_url": srv.TokenURL()}
		body[field] = tmpl
		msg := e.mustFail(logical.CreateOperation, "integrations/tq", body, http.StatusBadRequest)
		if !strings.Contains(msg, field) {
			t.Errorf("%s: error %q does not name the field", field, msg)
		}
	}
	e.mustDo(logical.CreateOperation, "integrations/tq", map[string]any{"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"auth_url": srv.AuthURL() + "?prompt=consent", "token_url": srv.TokenURL()})
}

// The placeholder shapes a real catalog uses, through a whole flow against
// the loopback provider: a placeholder with other text in a path segment
// (the tenant "acme-eu") and one in the authorization URL's query, whose
// value is escaped so that it can add no parameter.
func TestPlaceholderShapesThroughTheFlow(t *testing.T) {
	e, srv := shapeEnv(t)
	base := srv.URL + "/t/${connectionConfig.tenant}-eu"
	e.mustDo(logical.CreateOperation, "providers/shaped", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": base + "/authorize?login_hint=${connectionConfig.hint}", "token_url": base + "/token",
		"revocation_url": base + "/revoke",
		"connection_config_schema": map[string]any{
			"tenant": map[string]any{"pattern": "[a-z]+"},
			"hint":   map[string]any{"optional": true},
		},
	})
	e.mustDo(logical.CreateOperation, "integrations/shaped", map[string]any{"provider": "shaped", "client_id": srv.ClientID, "client_secret": srv.ClientSecret})
	q := consent(t, e, "connections/shaped/acme/authorize", map[string]any{"connection_config": map[string]any{"tenant": "acme", "hint": "a b&prompt=none"}})
	authorize := srv.LastAuthorize()
	if srv.LastTenant() != "acme-eu" || authorize.Get("login_hint") != "a b&prompt=none" || authorize.Has("prompt") {
		t.Fatalf("authorize reached tenant %q with %v", srv.LastTenant(), authorize)
	}
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	if srv.LastTenant() != "acme-eu" {
		t.Fatalf("the code exchange went to tenant %q", srv.LastTenant())
	}
	tok := e.mustDo(logical.UpdateOperation, "connections/shaped/acme/refresh", nil)["access_token"].(string)
	if !srv.AccessTokenValid(tok) || srv.LastTenant() != "acme-eu" || srv.LastForm().Get("grant_type") != "refresh_token" {
		t.Fatal("the refresh did not reach the tenant's token endpoint")
	}
}

// A schema pattern that compiles alone but not anchored (Go's nesting
// limit) is refused at the write, and never lets a value through.
func TestSchemaPatternCompiledAsChecksUseIt(t *testing.T) {
	e, srv := shapeEnv(t)
	deep := strings.Repeat("(", 999) + `https://api\.acme\.test/` + strings.Repeat(")", 999)
	msg := e.mustFail(logical.CreateOperation, "integrations/deep", map[string]any{
		"auth_mode": "OAUTH2_CC", "client_id": srv.ClientID, "client_secret": srv.ClientSecret, "token_url": srv.TokenURL(),
		"token_params":             map[string]any{"audience": "${connectionConfig.audience}"},
		"connection_config_schema": map[string]any{"audience": map[string]any{"pattern": deep}},
	}, http.StatusBadRequest)
	if !strings.Contains(msg, "connection_config_schema.audience.pattern") {
		t.Fatalf("error = %q", msg)
	}
	if err := (catalog.SchemaField{Pattern: deep}).Check("https://any.example/"); err == nil {
		t.Fatal("a pattern that does not compile let a value through")
	}
}

// A placeholder may not name a query parameter: its value could name one
// the flow sends itself (redirect_uri), ahead of the flow's own.
func TestPlaceholderMayNotNameAQueryParameter(t *testing.T) {
	e, srv := shapeEnv(t)
	for field, tmpl := range map[string]string{
		"auth_url":  srv.AuthURL() + "?${connectionConfig.k}=${connectionConfig.v}",
		"token_url": srv.TokenURL() + "?x${connectionConfig.k}=1",
	} {
		body := map[string]any{"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
			"auth_url": srv.AuthURL(), "token_url": srv.TokenURL(),
			"connection_config_schema": map[string]any{"k": map[string]any{"enum": []any{"a"}}, "v": map[string]any{"enum": []any{"b"}}}}
		body[field] = tmpl
		if msg := e.mustFail(logical.CreateOperation, "integrations/qn", body, http.StatusBadRequest); !strings.Contains(msg, field) {
			t.Errorf("%s: error %q does not name the field", field, msg)
		}
	}
}

// A placeholder in the query of a URL a token request goes to acts as a
// token parameter: its key must be pinned by the schema too.
func TestTokenURLQueryPlaceholdersArePinned(t *testing.T) {
	e, srv := shapeEnv(t)
	body := map[string]any{"auth_mode": "OAUTH2_CC", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"token_url": srv.TokenURL() + "?audience=${connectionConfig.aud}"}
	if msg := e.mustFail(logical.CreateOperation, "integrations/tq", body, http.StatusBadRequest); !strings.Contains(msg, "connection_config_schema.aud") {
		t.Fatalf("error = %q", msg)
	}
	body["connection_config_schema"] = map[string]any{"aud": map[string]any{"enum": []any{"https://api.acme.test/"}}}
	e.mustDo(logical.CreateOperation, "integrations/tq", body)
}

// A provider read shows the fields of its auth mode only, as an
// integration read does: an API-key provider has no pkce or auth_url, an
// OAuth one no credentials_schema.
func TestProviderReadShowsItsModesFields(t *testing.T) {
	e := newTestEnv(t)
	stripe := e.mustDo(logical.ReadOperation, "providers/stripe", nil)
	for _, f := range []string{"pkce", "auth_url", "token_url", "redirect_uri_value", "scopes", "callback_config"} {
		if _, shown := stripe[f]; shown {
			t.Errorf("providers/stripe shows %s", f)
		}
	}
	if _, ok := stripe["credentials_schema"].(map[string]any)["api_key"]; !ok {
		t.Errorf("providers/stripe credentials_schema = %v", stripe["credentials_schema"])
	}
	github := e.mustDo(logical.ReadOperation, "providers/github", nil)
	if _, shown := github["credentials_schema"]; shown {
		t.Error("providers/github shows credentials_schema")
	}
	if github["pkce"] == nil || github["auth_url"] == "" {
		t.Errorf("providers/github lacks its OAuth fields: %v", github)
	}
	written := e.mustDo(logical.CreateOperation, "providers/keyed", map[string]any{"auth_mode": "API_KEY", "api_base_url": "https://api.keyed.test"})
	if _, shown := written["pkce"]; shown {
		t.Error("a provider write answers pkce for API_KEY")
	}
}
