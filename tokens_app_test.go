// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

func rsaKeyPEM(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}

func appEnv(t *testing.T) (*testEnv, *oauthtest.Server, string) {
	t.Helper()
	srv := oauthtest.New()
	t.Cleanup(srv.Close)
	key, keyPEM := rsaKeyPEM(t)
	srv.SetApp("4242", &key.PublicKey)
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/ghapp", map[string]any{
		"provider": "github-app", "app_id": "4242", "private_key": keyPEM, "api_base_url": srv.URL,
	})
	return e, srv, keyPEM
}

func TestAppInstallationTokens(t *testing.T) {
	e, srv, keyPEM := appEnv(t)
	in := e.mustDo(logical.ReadOperation, "integrations/ghapp", nil)
	if in["auth_mode"] != "APP" || in["private_key_set"] != true {
		t.Fatalf("integration read = %v", in)
	}
	if _, ok := in["private_key"]; ok {
		t.Fatal("integration read returns the private key")
	}
	data := e.mustDo(logical.CreateOperation, "connections/ghapp/acme", map[string]any{"installation_id": "987"})
	tok := data["access_token"].(string)
	if !strings.HasPrefix(tok, "ghs_") || !srv.AccessTokenValid(tok) || srv.LastTenant() != "987" {
		t.Fatalf("token %q for installation %q", tok, srv.LastTenant())
	}
	exp, _ := time.Parse(time.RFC3339, data["expires_at"].(string))
	if time.Until(exp) < 50*time.Minute {
		t.Fatalf("expires_at = %v", data["expires_at"])
	}
	// Renewed like an OAuth token once within the margin.
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"refresh_margin": "2h"})
	if renewed := e.mustDo(logical.ReadOperation, "connections/ghapp/acme", nil)["access_token"]; renewed == tok {
		t.Fatal("installation token within the margin was not renewed")
	}
	e.assertNoSecretLogged(keyPEM, tok)
}

func TestAppRejects(t *testing.T) {
	e, _, _ := appEnv(t)
	before := e.snapshot()
	e.assertRejected([]rejection{
		{"no installation", "connections/ghapp/acme", map[string]any{}, "installation_id is required"},
		{"installation not a number", "connections/ghapp/acme", map[string]any{"installation_id": "1/../2"}, "must be a number"},
		{"bad key", "integrations/ghapp", map[string]any{"private_key": "-----BEGIN RSA PRIVATE KEY-----\nzzz\n-----END RSA PRIVATE KEY-----"}, "PEM"},
		{"no app id", "integrations/other", map[string]any{"auth_mode": "APP", "private_key": "x"}, "PEM"},
	}, "zzz")
	e.assertUnchanged(before)

	// A key the provider does not know: 424, nothing stored.
	_, otherPEM := rsaKeyPEM(t)
	e.mustDo(logical.UpdateOperation, "integrations/ghapp", map[string]any{"private_key": otherPEM})
	msg := e.mustFail(logical.CreateOperation, "connections/ghapp/acme", map[string]any{"installation_id": "1"}, http.StatusFailedDependency)
	if !strings.Contains(msg, "HTTP 401") {
		t.Fatalf("error = %q", msg)
	}
	e.mustFail(logical.ReadOperation, "connections/ghapp/acme", nil, http.StatusNotFound)
}

// TestAppInstallationIsNotCustomerWritable: whoever may write a
// connection's config (a customer's policy) cannot move its tokens to
// another installation. An APP connection's config may not hold an
// installation_id key on any surface that writes it (400 naming the key,
// nothing changed); only the connection's own field sets the installation.
func TestAppInstallationIsNotCustomerWritable(t *testing.T) {
	e, srv, _ := appEnv(t)
	e.mustDo(logical.CreateOperation, "connections/ghapp/acme", map[string]any{"installation_id": "987"})
	before := e.snapshot()
	inConfig := map[string]any{"installation_id": "555"}
	for _, w := range []struct {
		name string
		op   logical.Operation
		path string
		body map[string]any
	}{
		{"config write", logical.UpdateOperation, "connections/ghapp/acme/config", inConfig},
		{"config patch", logical.PatchOperation, "connections/ghapp/acme/config", inConfig},
		{"connection update", logical.UpdateOperation, "connections/ghapp/acme", map[string]any{"connection_config": inConfig}},
		{"connection create", logical.CreateOperation, "connections/ghapp/other", map[string]any{"installation_id": "987", "connection_config": inConfig}},
	} {
		resp, status := e.do(w.op, w.path, w.body)
		if msg := errorText(resp); status != http.StatusBadRequest || !strings.Contains(msg, "installation_id") {
			t.Errorf("%s: status %d, error %q; want a 400 naming installation_id", w.name, status, msg)
		}
	}
	got := e.mustDo(logical.UpdateOperation, "import/ghapp", map[string]any{"connections": []any{
		map[string]any{"connection_id": "acme", "connection_config": inConfig},
		map[string]any{"connection_id": "other", "installation_id": "987", "connection_config": inConfig},
	}, "overwrite": true})
	for _, r := range got["results"].([]any) {
		if m := r.(map[string]any); m["status"] != "failed" || !strings.Contains(fmt.Sprint(m["error"]), "installation_id") {
			t.Errorf("import item %v; want failed naming installation_id", m)
		}
	}
	e.assertUnchanged(before)

	// Metadata is the application's own: an installation_id key there
	// means nothing.
	e.mustDo(logical.UpdateOperation, "connections/ghapp/acme/metadata", map[string]any{"installation_id": "557"})
	e.mustDo(logical.UpdateOperation, "connections/ghapp/acme/refresh", nil)
	if srv.LastTenant() != "987" {
		t.Fatalf("a config or metadata write moved the connection to installation %s", srv.LastTenant())
	}
	// The operator's connection write does move it.
	e.mustDo(logical.UpdateOperation, "connections/ghapp/acme", map[string]any{"installation_id": "988"})
	e.mustDo(logical.UpdateOperation, "connections/ghapp/acme/refresh", nil)
	if srv.LastTenant() != "988" {
		t.Fatalf("installation after the connection write: %s", srv.LastTenant())
	}
}

// TestAppEntryOfEarlierVersionIsUpgraded: an entry stored with the
// installation in its config keeps working, and the config no longer
// decides it.
func TestAppEntryOfEarlierVersionIsUpgraded(t *testing.T) {
	e, srv, _ := appEnv(t)
	putConnection(t.Context(), e.storage, &connectionEntry{Integration: "ghapp", ConnectionID: "old", AuthMode: catalog.App,
		ConnectionConfig: map[string]any{"installation_id": "987"}, Metadata: map[string]any{}})
	data := e.mustDo(logical.UpdateOperation, "connections/ghapp/old/refresh", nil)
	if srv.LastTenant() != "987" || data["installation_id"] != "987" {
		t.Fatalf("upgraded entry refreshed for installation %s, reads %v", srv.LastTenant(), data["installation_id"])
	}
	if _, ok := data["connection_config"].(map[string]any)["installation_id"]; ok {
		t.Fatalf("upgraded entry's config still holds installation_id: %v", data["connection_config"])
	}
}

// TestAppEntryOfEarlierVersionKeepsItsOwnInstallation: an entry of an
// earlier version whose config holds an installation_id besides its own
// (written through the config sub-path, which earlier versions allowed)
// mints for its own installation after any later write: the stray key is
// dropped when the entry is loaded, and nothing copies config into the
// installation.
func TestAppEntryOfEarlierVersionKeepsItsOwnInstallation(t *testing.T) {
	e, srv, _ := appEnv(t)
	putConnection(t.Context(), e.storage, &connectionEntry{Integration: "ghapp", ConnectionID: "acme", AuthMode: catalog.App,
		InstallationID: "987", ConnectionConfig: map[string]any{"installation_id": "555"}, Metadata: map[string]any{}})

	// An operator's write of metadata alone.
	data := e.mustDo(logical.UpdateOperation, "connections/ghapp/acme", map[string]any{"metadata": map[string]any{"plan": "pro"}})
	if data["installation_id"] != "987" {
		t.Fatalf("a metadata write moved the connection to installation %v", data["installation_id"])
	}
	e.mustDo(logical.UpdateOperation, "connections/ghapp/acme/refresh", nil)
	if srv.LastTenant() != "987" {
		t.Fatalf("after a metadata write the connection mints for installation %s", srv.LastTenant())
	}
	stored, err := getConnection(t.Context(), e.storage, "ghapp", "acme")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	entry, _ := e.storage.Get(t.Context(), connectionKey("ghapp", "acme"))
	if err := entry.DecodeJSON(&raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["connection_config"].(map[string]any)["installation_id"]; ok || stored.InstallationID != "987" {
		t.Fatalf("stored entry: installation %s, config %v", stored.InstallationID, raw["connection_config"])
	}
}

// TestAppInstallationChangeReissuesToken: a connection write that moves an
// APP connection to another installation discards the old installation's
// token and answers with one for the new installation; if the provider
// refuses that, the write fails and the connection keeps its installation
// and token.
func TestAppInstallationChangeReissuesToken(t *testing.T) {
	e, srv, _ := appEnv(t)
	first := e.mustDo(logical.CreateOperation, "connections/ghapp/acme", map[string]any{"installation_id": "987"})["access_token"].(string)

	moved := e.mustDo(logical.UpdateOperation, "connections/ghapp/acme", map[string]any{"installation_id": "988"})
	tok := moved["access_token"].(string)
	if tok == first || !srv.AccessTokenValid(tok) || srv.LastTenant() != "988" || moved["installation_id"] != "988" {
		t.Fatalf("after the move: token changed %v, asked for installation %s, reads %v", tok != first, srv.LastTenant(), moved["installation_id"])
	}
	if read := e.mustDo(logical.ReadOperation, "connections/ghapp/acme", nil); read["access_token"] != tok {
		t.Fatal("a read after the move serves another token than the write answered")
	}

	// The provider refuses the next installation: nothing changes.
	before := e.snapshot()
	srv.Fail("not_found", http.StatusNotFound)
	msg := e.mustFail(logical.UpdateOperation, "connections/ghapp/acme", map[string]any{"installation_id": "989", "metadata": map[string]any{"plan": "x"}}, http.StatusFailedDependency)
	if !strings.Contains(msg, "404") {
		t.Fatalf("error = %q", msg)
	}
	e.assertUnchanged(before)
	read := e.mustDo(logical.ReadOperation, "connections/ghapp/acme", nil)
	if read["access_token"] != tok || read["installation_id"] != "988" {
		t.Fatalf("after a refused move: installation %v, token kept %v", read["installation_id"], read["access_token"] == tok)
	}

	// An unrelated write keeps the token and asks the provider nothing.
	srv.Fail("", 0)
	requests := srv.Requests()
	if again := e.mustDo(logical.UpdateOperation, "connections/ghapp/acme", map[string]any{"installation_id": "988", "metadata": map[string]any{"plan": "y"}}); again["access_token"] != tok || srv.Requests() != requests {
		t.Fatal("a write that keeps the installation replaced the token")
	}
}
