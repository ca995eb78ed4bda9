// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// Catalog entries corrected against their providers' documentation, each
// checked through the API as an integration of that provider uses it.
func TestCatalogCorrections(t *testing.T) {
	env := func(t *testing.T) *testEnv {
		e := newTestEnv(t)
		e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL})
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
