// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"strings"
	"testing"

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
// exist, and starts over when cleared (an integration or provider write).
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
