// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/headertemplate"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
	"github.com/hashicorp/vault/sdk/logical"
)

// TestCatalogEntriesFitTheModel checks every entry against the provider
// model beyond what loading it checks: schemas decode strictly, every
// placeholder is declared, every URL expands to an https URL with the
// schema's examples, headers render for a connection of the entry's mode,
// and the entry says where its endpoints come from.
func TestCatalogEntriesFitTheModel(t *testing.T) {
	var raw map[string]map[string]any
	catalogJSON, err := os.ReadFile("internal/catalog/provider_catalog.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(catalogJSON, &raw); err != nil {
		t.Fatal(err)
	}
	names := slices.Sorted(maps.Keys(raw))
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			checkCatalogEntry(t, catalog.Lookup(name), raw[name])
		})
	}
}

func checkCatalogEntry(t *testing.T, p *catalog.Provider, raw map[string]any) {
	t.Helper()
	if u, err := url.Parse(p.Docs); err != nil || u.Scheme != "https" || u.Host == "" {
		t.Errorf("docs %q is not an https URL", p.Docs)
	}
	if day, err := time.Parse(time.DateOnly, p.Checked); err != nil || day.After(time.Now()) {
		t.Errorf("checked %q is not the day (YYYY-MM-DD) the entry was checked against its docs", p.Checked)
	}
	schemas := map[string]catalog.ValueSchema{}
	for _, field := range []string{"connection_config_schema", "credentials_schema"} {
		if v, ok := raw[field]; ok {
			s, err := catalog.DecodeValueSchema(field, v)
			if err != nil {
				t.Fatalf("%s: %v", field, err)
			}
			schemas[field] = s
		}
	}
	if (p.AuthMode == catalog.APIKey || p.AuthMode == catalog.Basic) && len(schemas["credentials_schema"]) == 0 {
		t.Error("API_KEY and BASIC entries need a credentials_schema")
	}
	if len(p.RequestHeaders) == 0 {
		t.Error("no request_headers: clients would not know how to use the credential")
	}
	if err := provider.CheckAuthParams(p.AuthParams); err != nil {
		t.Error(err)
	}
	cfgSchema := schemas["connection_config_schema"]
	checkDeclaredPlaceholders(t, p, cfgSchema)
	checkFilledKeysAreOptional(t, p, cfgSchema)
	sample := sampleConfig(t, cfgSchema)
	checkURLsExpand(t, p, sample, cfgSchema)
	checkHeadersRender(t, p, cfgSchema, sample)
}

// placeholderRe finds ${connectionConfig.<key>} in URL and header templates.
var placeholderRe = regexp.MustCompile(`\$\{connectionConfig\.([^}]+)\}`)

// entryTemplates returns every URL and header template of p, by field.
func entryTemplates(p *catalog.Provider) map[string]string {
	out := map[string]string{
		"auth_url": p.AuthURL, "token_url": p.TokenURL, "refresh_url": p.RefreshURL,
		"revocation_url": p.RevocationURL, "api_base_url": p.APIBaseURL,
	}
	for name, tmpl := range p.RequestHeaders {
		out["request_headers."+name] = tmpl
	}
	for name, tmpl := range p.TokenParams {
		out["token_params."+name] = tmpl
	}
	for name, tmpl := range p.RefreshParams {
		out["refresh_params."+name] = tmpl
	}
	return out
}

// isURLField reports whether an entryTemplates field is one of the URLs.
func isURLField(field string) bool {
	return !strings.Contains(field, ".")
}

// checkDeclaredPlaceholders: every connection config key a template uses is
// in the schema, and every schema key is used (or filled by the provider).
func checkDeclaredPlaceholders(t *testing.T, p *catalog.Provider, s catalog.ValueSchema) {
	t.Helper()
	used := map[string]bool{}
	for field, tmpl := range entryTemplates(p) {
		for _, m := range placeholderRe.FindAllStringSubmatch(tmpl, -1) {
			used[m[1]] = true
			if _, ok := s[m[1]]; !ok {
				t.Errorf("%s uses connectionConfig.%s, which connection_config_schema does not declare", field, m[1])
			}
		}
	}
	for k := range s {
		if !used[k] {
			t.Errorf("connection_config_schema declares %s, which no URL, header or parameter uses", k)
		}
	}
}

// checkFilledKeysAreOptional: a key the provider fills (from the callback or
// the token response) cannot be required before the flow starts.
func checkFilledKeysAreOptional(t *testing.T, p *catalog.Provider, s catalog.ValueSchema) {
	t.Helper()
	filled := append([]string{}, p.CallbackConfig...)
	for k := range p.TokenResponseConfig {
		filled = append(filled, k)
	}
	for _, k := range filled {
		if f, ok := s[k]; ok && !f.Optional {
			t.Errorf("connection_config_schema.%s is filled by the provider and must be optional", k)
		}
	}
}

// sampleConfig fills every schema key from its example, default or first
// enum value; a key with none of them cannot be shown to a user.
func sampleConfig(t *testing.T, s catalog.ValueSchema) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, k := range s.Keys() {
		f := s[k]
		switch {
		case f.Example != "":
			out[k] = f.Example
		case f.DefaultValue != nil:
			out[k] = f.DefaultValue
		case len(f.Enum) > 0:
			out[k] = f.Enum[0]
		default:
			t.Errorf("connection_config_schema.%s has no example, default_value or enum", k)
			continue
		}
		if err := f.Check(out[k]); err != nil {
			t.Errorf("connection_config_schema.%s: its own example fails it: %v", k, err)
		}
	}
	return out
}

// checkURLsExpand expands each URL with every key set. URLs the plugin
// calls itself must also expand with only the required keys (plus
// defaults): a flow cannot start otherwise, and the fallback alternative must
// work alone. api_base_url may wait for a key the provider fills later.
func checkURLsExpand(t *testing.T, p *catalog.Provider, full map[string]any, s catalog.ValueSchema) {
	t.Helper()
	minimal := map[string]any{}
	for _, k := range s.Required() {
		minimal[k] = full[k]
	}
	minimal = s.WithDefaults(minimal)
	for field, tmpl := range entryTemplates(p) {
		if tmpl == "" || !isURLField(field) {
			continue
		}
		expand, configs := provider.ExpandURL, map[string]map[string]any{"every key": full, "required keys": minimal}
		if field == "api_base_url" && p.AuthMode != catalog.App {
			expand, configs = provider.ExpandClientURL, map[string]map[string]any{"every key": full}
		}
		for which, cfg := range configs {
			got, err := expand(field, tmpl, cfg)
			if err != nil {
				t.Errorf("%s with %s: %v", field, which, err)
				continue
			}
			if u, err := url.Parse(got); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
				t.Errorf("%s with %s expands to %q, not an https URL", field, which, got)
			}
		}
	}
	for field, params := range map[string]map[string]string{"token_params": p.TokenParams, "refresh_params": p.RefreshParams} {
		if _, err := provider.ExpandParams(field, params, minimal); err != nil {
			t.Errorf("%s with required keys: %v", field, err)
		}
	}
	// The schema's examples are documented hosts: the egress rule admits them.
	in := &integrationEntry{Name: p.Name, AuthMode: p.AuthMode, EndpointSettings: p.EndpointSettings}
	if err := in.checkConfigHosts(full); err != nil {
		t.Errorf("the schema's examples break the egress rule: %v", err)
	}
}

// checkHeadersRender renders the request headers for a connection of the
// entry's mode whose config lacks the keys that have defaults: the defaults
// must fill them, and nothing may be left unrendered.
func checkHeadersRender(t *testing.T, p *catalog.Provider, s catalog.ValueSchema, sample map[string]any) {
	t.Helper()
	c := &connectionEntry{AuthMode: p.AuthMode, ConnectionConfig: map[string]any{}}
	for k, v := range sample {
		if s[k].DefaultValue == nil {
			c.ConnectionConfig[k] = v
		}
	}
	switch p.AuthMode {
	case catalog.APIKey:
		c.Credentials.APIKey = "sample-key"
	case catalog.Basic:
		c.Credentials.Username, c.Credentials.Password = "sample-user", "sample-password"
	case catalog.Custom:
		c.Credentials.Custom = map[string]string{}
		for k := range p.CredentialsSchema {
			c.Credentials.Custom[k] = "sample-" + k
		}
	default:
		c.Credentials.AccessToken = "sample-token"
	}
	in := &integrationEntry{AuthMode: p.AuthMode, EndpointSettings: p.EndpointSettings}
	data := map[string]any{}
	warnings := newIntegrationRendering(in).render(c, data)
	for _, w := range warnings {
		if strings.HasPrefix(w, "header ") {
			t.Errorf("render: %s", w)
		}
	}
	headers, _ := data["headers"].(map[string]any)
	if len(headers) != len(p.RequestHeaders) {
		t.Errorf("rendered %d of %d headers", len(headers), len(p.RequestHeaders))
	}
	for name := range p.RequestHeaders {
		if !headertemplate.HeaderNameRe.MatchString(name) {
			t.Errorf("request header name %q is not a valid header name", name)
		}
	}
}

// Catalog entries corrected against their providers' documentation, each
// checked through the API as an integration of that provider uses it.
func TestCatalogCorrections(t *testing.T) {
	env := func(t *testing.T) *testEnv {
		e := newTestEnv(t)
		e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL, "oauth_completion": "callback"})
		return e
	}

	t.Run("shopify joins scopes with commas", func(t *testing.T) {
		e := env(t)
		e.mustDo(logical.CreateOperation, "integrations/shop", map[string]any{"provider": "shopify", "client_id": "cid", "scopes": "read_orders,write_products"})
		out := e.mustDo(logical.UpdateOperation, "connections/shop/acme/authorize", map[string]any{"connection_config": map[string]any{"subdomain": "acme"}})
		u, err := url.Parse(out["authorization_url"].(string))
		if err != nil || u.Query().Get("scope") != "read_orders,write_products" {
			t.Fatalf("authorization_url = %v (%v)", out["authorization_url"], err)
		}
	})

	t.Run("klaviyo sends a revision on every request", func(t *testing.T) {
		e := env(t)
		e.mustDo(logical.CreateOperation, "integrations/kl", map[string]any{"provider": "klaviyo", "client_id": "cid"})
		e.mustDo(logical.CreateOperation, "connections/kl/acme", map[string]any{"access_token": "at"})
		h := e.mustDo(logical.ReadOperation, "connections/kl/acme", nil)["headers"].(map[string]any)
		if h["revision"] != "2026-10-15" || h["Authorization"] != "Bearer at" {
			t.Fatalf("headers = %v", h)
		}
		e.mustDo(logical.PatchOperation, "connections/kl/acme/config", map[string]any{"revision": "2026-07-15"})
		if h := e.mustDo(logical.ReadOperation, "connections/kl/acme", nil)["headers"].(map[string]any); h["revision"] != "2026-07-15" {
			t.Fatalf("chosen revision: %v", h)
		}
	})

	t.Run("harvest names the account and the application", func(t *testing.T) {
		e := env(t)
		e.mustDo(logical.CreateOperation, "integrations/hv", map[string]any{"provider": "harvest", "client_id": "cid"})
		msg := e.mustFail(logical.CreateOperation, "connections/hv/acme", map[string]any{"access_token": "at"}, http.StatusBadRequest)
		if !strings.Contains(msg, "connection_config.account_id is required") {
			t.Fatalf("error = %q", msg)
		}
		e.mustDo(logical.CreateOperation, "connections/hv/acme", map[string]any{"access_token": "at", "connection_config": map[string]any{"account_id": "123456"}})
		h := e.mustDo(logical.ReadOperation, "connections/hv/acme", nil)["headers"].(map[string]any)
		if h["Harvest-Account-Id"] != "123456" || !strings.HasPrefix(h["User-Agent"].(string), "vault-plugin-secrets-connect (https://") {
			t.Fatalf("headers = %v", h)
		}
	})

	t.Run("notion tokens expire and refresh at the token endpoint", func(t *testing.T) {
		p := env(t).mustDo(logical.ReadOperation, "providers/notion", nil)
		if p["tokens_expire"] != true || p["token_url"] != "https://api.notion.com/v1/oauth/token" || (p["refresh_url"] != "" && p["refresh_url"] != p["token_url"]) {
			t.Fatalf("provider = %v", p)
		}
	})
}
