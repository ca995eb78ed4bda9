// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

func renderingIntegration() *integrationEntry {
	return &integrationEntry{Name: "acme", AuthMode: catalog.APIKey, EndpointSettings: catalog.EndpointSettings{
		APIBaseURL:     "https://${connectionConfig.subdomain}.acme.example/api",
		RequestHeaders: map[string]string{"Authorization": "Bearer ${apiKey}", "X-Team": "${connectionConfig.team}"},
	}}
}

// A read renders base_url and headers from the connection; what it cannot
// render (a key the connection lacks, a value with a line break) is left out
// with a warning that names the key and holds no secret.
func TestRenderingFillsBaseURLAndHeaders(t *testing.T) {
	r := newIntegrationRendering(renderingIntegration())
	c := &connectionEntry{AuthMode: catalog.APIKey, Credentials: credentials{APIKey: "k-secret"},
		ConnectionConfig: map[string]any{"subdomain": "eu", "team": "blue"}}
	data := map[string]any{}
	if w := r.render(c, data); len(w) != 0 {
		t.Fatalf("warnings: %v", w)
	}
	headers := data["headers"].(map[string]any)
	if data["base_url"] != "https://eu.acme.example/api" || headers["Authorization"] != "Bearer k-secret" || headers["X-Team"] != "blue" {
		t.Fatalf("rendered %v", data)
	}

	c.ConnectionConfig = map[string]any{"team": "blue\r\nX-Evil: 1"}
	data = map[string]any{}
	w := strings.Join(r.render(c, data), "\n")
	if _, ok := data["base_url"]; ok || !strings.Contains(w, "base_url is not available") || !strings.Contains(w, "subdomain") {
		t.Fatalf("base_url without its key: %v, warnings %q", data["base_url"], w)
	}
	if _, ok := data["headers"].(map[string]any)["X-Team"]; ok || !strings.Contains(w, "header X-Team is not available") {
		t.Fatalf("a header with a line break was rendered: %v, warnings %q", data["headers"], w)
	}
	if strings.Contains(w, "k-secret") || strings.Contains(w, "X-Evil") {
		t.Fatalf("a warning holds a value: %q", w)
	}
}

// The cache parses an integration once, answers nil for one that does not
// exist (and remembers that too), and starts over when cleared (an
// integration or provider write).
func TestRenderingCache(t *testing.T) {
	ctx := t.Context()
	s := &logical.InmemStorage{}
	var rc renderingCache
	if r, err := rc.get(ctx, s, "acme"); r != nil || err != nil {
		t.Fatalf("missing integration: %v, %v", r, err)
	}
	if err := putIntegration(ctx, s, renderingIntegration()); err != nil {
		t.Fatal(err)
	}
	if r, err := rc.get(ctx, s, "acme"); r != nil || err != nil {
		t.Fatalf("a missing integration is remembered until the cache is cleared: %v, %v", r, err)
	}
	rc.clear() // as the integration write that stored it does
	first, err := rc.get(ctx, s, "acme")
	if err != nil || first == nil {
		t.Fatalf("get: %v, %v", first, err)
	}
	if again, _ := rc.get(ctx, s, "acme"); again != first {
		t.Fatal("a second read parsed the integration again")
	}
	rc.clear()
	if after, _ := rc.get(ctx, s, "acme"); after == first {
		t.Fatal("a cleared cache served the old rendering")
	}
}

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
		"credentials_schema": map[string]any{"api_key": map[string]any{"type": "string", "pattern": "key_[A-Za-z0-9]+", "secret": true}},
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

// A write and a forced refresh answer what a read answers: base_url and
// the rendered headers too, so a client can use the connection it just
// wrote without a second request.
func TestWritesAnswerWhatAReadAnswers(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/keyed", map[string]any{
		"auth_mode": "API_KEY", "api_base_url": "https://api.example.test/v1", "request_headers": map[string]any{"Authorization": "Bearer ${apiKey}"},
	})
	written := e.mustDo(logical.CreateOperation, "connections/keyed/acme", map[string]any{"api_key": "k-123"})
	read := e.mustDo(logical.ReadOperation, "connections/keyed/acme", nil)
	for _, field := range []string{"base_url", "headers"} {
		if read[field] == nil || fmt.Sprint(written[field]) != fmt.Sprint(read[field]) {
			t.Errorf("write answered %s = %v, a read %v", field, written[field], read[field])
		}
	}
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"api_base_url": "https://api.github.test", "request_headers": map[string]any{"Authorization": "Bearer ${accessToken}"}})
	importExpiring(e, srv, "c1", time.Hour)
	refreshed := e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	headers, _ := refreshed["headers"].(map[string]any)
	if refreshed["base_url"] != "https://api.github.test" || headers["Authorization"] != "Bearer "+refreshed["access_token"].(string) {
		t.Errorf("refresh answered base_url %v, headers %v", refreshed["base_url"], refreshed["headers"])
	}
}

// Missing names are remembered apart: asking for many that do not exist
// (any name a session offering every integration may ask for) never
// pushes out a cached rendering.
func TestRenderingCacheMissesKeepRenderings(t *testing.T) {
	ctx := t.Context()
	s := &logical.InmemStorage{}
	if err := putIntegration(ctx, s, renderingIntegration()); err != nil {
		t.Fatal(err)
	}
	var rc renderingCache
	first, err := rc.get(ctx, s, "acme")
	if err != nil || first == nil {
		t.Fatalf("get: %v, %v", first, err)
	}
	for i := range maxCachedRenderings + 10 {
		if r, err := rc.get(ctx, s, fmt.Sprintf("missing-%d", i)); r != nil || err != nil {
			t.Fatalf("missing-%d: %v, %v", i, r, err)
		}
	}
	if again, _ := rc.get(ctx, s, "acme"); again != first {
		t.Fatal("misses pushed a cached rendering out")
	}
}
