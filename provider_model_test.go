// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// An operator-defined API-key provider with every usage field: it round
// trips, integrations inherit and override it, and connection reads return
// base_url and the rendered headers.
func TestRequestHeadersAndBaseURL(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "providers/keyed", map[string]any{
		"auth_mode":       "API_KEY",
		"api_base_url":    "https://${connectionConfig.region}.api.keyed.test/v2 || https://api.keyed.test/v2",
		"request_headers": map[string]any{"Authorization": "Basic ${base64(${apiKey}:)}", "X-Account": "${connectionConfig.account}"},
		"connection_config_schema": map[string]any{
			"region":  map[string]any{"type": "string", "enum": []any{"eu", "au"}, "optional": true},
			"account": map[string]any{"type": "string", "title": "Account id", "pattern": "[a-z0-9]+"},
		},
		"credentials_schema": map[string]any{"apiKey": map[string]any{"type": "string", "pattern": "key_[A-Za-z0-9]+", "secret": true}},
	})
	p := e.mustDo(logical.ReadOperation, "providers/keyed", nil)
	if p["request_headers"].(map[string]string)["X-Account"] != "${connectionConfig.account}" ||
		p["connection_config_schema"].(map[string]any)["account"].(map[string]any)["title"] != "Account id" ||
		strings.Join(p["required_config_keys"].([]string), ",") != "account" {
		t.Fatalf("provider = %v", p)
	}
	e.mustDo(logical.CreateOperation, "integrations/k", map[string]any{"provider": "keyed"})
	in := e.mustDo(logical.ReadOperation, "integrations/k", nil)
	if in["sources"].(map[string]string)["request_headers"] != "provider" || in["api_base_url"] != p["api_base_url"] {
		t.Fatalf("integration = %v", in)
	}

	e.mustDo(logical.CreateOperation, "connections/k/acme", map[string]any{"api_key": "key_abc", "connection_config": map[string]any{"account": "acme1"}})
	c := e.mustDo(logical.ReadOperation, "connections/k/acme", nil)
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("key_abc:"))
	if h := c["headers"].(map[string]any); h["Authorization"] != wantAuth || h["X-Account"] != "acme1" || c["base_url"] != "https://api.keyed.test/v2" {
		t.Fatalf("connection = %v", c)
	}
	e.mustDo(logical.PatchOperation, "connections/k/acme/config", map[string]any{"region": "eu"})
	if c := e.mustDo(logical.ReadOperation, "connections/k/acme", nil); c["base_url"] != "https://eu.api.keyed.test/v2" {
		t.Fatalf("regional base_url = %v", c["base_url"])
	}

	// An integration overrides one header and keeps the other.
	e.mustDo(logical.UpdateOperation, "integrations/k", map[string]any{"request_headers": map[string]any{"X-Account": "acct-${connectionConfig.account}"}})
	c = e.mustDo(logical.ReadOperation, "connections/k/acme", nil)
	if h := c["headers"].(map[string]any); h["X-Account"] != "acct-acme1" || h["Authorization"] != wantAuth {
		t.Fatalf("after override: %v", h)
	}
	if in := e.mustDo(logical.ReadOperation, "integrations/k", nil); in["sources"].(map[string]string)["request_headers"] != "integration" {
		t.Fatalf("sources = %v", in["sources"])
	}

	// Deleting the provider leaves integrations that need it unusable, so
	// delete them first; then the provider goes.
	e.mustDo(logical.DeleteOperation, "integrations/k", map[string]any{"force": true})
	e.mustDo(logical.DeleteOperation, "providers/keyed", nil)
	e.mustFail(logical.ReadOperation, "providers/keyed", nil, http.StatusNotFound)
}

// Writes are checked against the schemas: a missing required key, or a
// value failing pattern or enum, is a 400 naming the key, and nothing
// changes.
func TestConnectionSchemasAreEnforced(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "providers/sub", map[string]any{
		"auth_mode": "OAUTH2",
		"auth_url":  "https://${connectionConfig.subdomain}.sub.test/authorize",
		"token_url": "https://${connectionConfig.subdomain}.sub.test/token",
		"connection_config_schema": map[string]any{
			"subdomain": map[string]any{"type": "string", "pattern": "[a-z0-9-]+"},
			"tier":      map[string]any{"type": "string", "enum": []any{"free", "pro"}, "default_value": "free"},
			"seats":     map[string]any{"type": "number", "optional": true},
		},
	})
	e.mustDo(logical.CreateOperation, "integrations/s", map[string]any{"provider": "sub", "client_id": "cid"})
	e.mustDo(logical.CreateOperation, "providers/basic", map[string]any{
		"auth_mode":          "BASIC",
		"credentials_schema": map[string]any{"username": map[string]any{"pattern": "[^@]+@[^@]+"}, "password": map[string]any{"secret": true}},
	})
	e.mustDo(logical.CreateOperation, "integrations/b", map[string]any{"provider": "basic"})
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": "https://vault.test/v1/connect/oauth/callback"})
	e.mustDo(logical.CreateOperation, "connections/s/acme", map[string]any{"access_token": "at", "connection_config": map[string]any{"subdomain": "acme"}})

	before := e.snapshot()
	e.assertRejected([]rejection{
		{"authorize without the key", "connections/s/new/authorize", map[string]any{}, "connection_config.subdomain is required"},
		{"authorize with a bad value", "connections/s/new/authorize", map[string]any{"connection_config": map[string]any{"subdomain": "a.b/c"}}, "connection_config.subdomain does not match"},
		{"create without the key", "connections/s/other", map[string]any{"access_token": "at"}, "connection_config.subdomain is required"},
		{"create outside the enum", "connections/s/other", map[string]any{"access_token": "at", "connection_config": map[string]any{"subdomain": "x", "tier": "gold"}}, "connection_config.tier must be one of"},
		{"not a number", "connections/s/acme", map[string]any{"connection_config": map[string]any{"subdomain": "acme", "seats": "many"}}, "connection_config.seats must be a number"},
		{"config write drops it", "connections/s/acme/config", map[string]any{"tier": "pro"}, "connection_config.subdomain is required"},
		{"config patch removes it", "connections/s/acme/config", map[string]any{"subdomain": nil}, "connection_config.subdomain is required"},
		{"credential pattern", "connections/b/c1", map[string]any{"username": "no-at-sign", "password": "p"}, "credentials.username does not match"},
		{"password required", "connections/b/c1", map[string]any{"username": "a@b"}, "credentials.password is required"},
	}, "secret-marker-never-sent")
	e.assertUnchanged(before)

	// Valid edits pass; the default fills nothing it need not.
	e.mustDo(logical.PatchOperation, "connections/s/acme/config", map[string]any{"seats": 12})
	e.mustDo(logical.CreateOperation, "connections/b/c1", map[string]any{"username": "a@b", "password": "p"})
	if out := e.mustDo(logical.UpdateOperation, "connections/s/new/authorize", map[string]any{"connection_config": map[string]any{"subdomain": "newco"}}); !strings.Contains(out["authorization_url"].(string), "https://newco.sub.test/authorize?") {
		t.Fatalf("authorize = %v", out)
	}
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
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": "https://vault.test/v1/connect/oauth/callback"})
	p := e.mustDo(logical.ReadOperation, "providers/zendesk", nil)
	if p["redirect_url"] != "https://vault.test/v1/connect/oauth/callback" || strings.Join(p["required_config_keys"].([]string), ",") != "subdomain" ||
		p["builtin"] != true || len(p["scopes"].([]string)) == 0 {
		t.Fatalf("providers/zendesk = %v", p)
	}
}

// A connection to a catalog provider gets its base URL and headers with the
// schema's defaults filled in, without the caller setting any config.
func TestCatalogProviderHeadersUseSchemaDefaults(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/notes", map[string]any{"provider": "notion-token"})
	e.mustDo(logical.CreateOperation, "connections/notes/acme", map[string]any{"api_key": "secret_abc"})
	c := e.mustDo(logical.ReadOperation, "connections/notes/acme", nil)
	h, _ := c["headers"].(map[string]any)
	if h["Authorization"] != "Bearer secret_abc" || h["Notion-Version"] != "2022-06-28" || c["base_url"] != "https://api.notion.com/v1" {
		t.Fatalf("connection = %v", c)
	}
	e.mustDo(logical.PatchOperation, "connections/notes/acme/config", map[string]any{"notion_version": "2025-09-03"})
	if h := e.mustDo(logical.ReadOperation, "connections/notes/acme", nil)["headers"].(map[string]any); h["Notion-Version"] != "2025-09-03" {
		t.Fatalf("after config patch: %v", h)
	}
}
