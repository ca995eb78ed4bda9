// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// An import writes each item as a single write would, on its own: good
// items are stored, a bad one fails alone with its reason, and the answer
// lists every item in order.
func TestImportWritesEachItemOnItsOwn(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/crm", map[string]any{
		"auth_mode":                "API_KEY",
		"connection_config_schema": map[string]any{"subdomain": map[string]any{"type": "string", "pattern": "[a-z]+"}},
	})
	e.mustDo(logical.CreateOperation, "connections/crm/existing", map[string]any{"api_key": "old-key", "connection_config": map[string]any{"subdomain": "old"}})

	got := e.mustDo(logical.UpdateOperation, "import/crm", map[string]any{"overwrite": true, "connections": []any{
		map[string]any{"connection_id": "acme", "api_key": "key-acme", "connection_config": map[string]any{"subdomain": "acme"}, "metadata": map[string]any{"plan": "pro"}},
		map[string]any{"connection_id": "bad-config", "api_key": "key-bad", "connection_config": map[string]any{"subdomain": "NOT VALID"}},
		map[string]any{"connection_id": "existing", "api_key": "new-key"},
		map[string]any{"connection_id": "wrong-mode", "access_token": "at-secret"},
	}})
	results := got["results"].([]any)
	want := []string{"acme:created", "bad-config:failed", "existing:updated", "wrong-mode:failed"}
	for i, r := range results {
		m := r.(map[string]any)
		if s := fmt.Sprintf("%s:%s", m["connection_id"], m["status"]); s != want[i] {
			t.Errorf("results[%d] = %v, want %s", i, m, want[i])
		}
	}
	if got["created"] != 1 || got["updated"] != 1 || got["failed"] != 2 {
		t.Fatalf("counts = %v", got)
	}
	if msg := results[1].(map[string]any)["error"].(string); !strings.Contains(msg, "connection_config.subdomain") {
		t.Errorf("schema failure says %q", msg)
	}
	if msg := results[3].(map[string]any)["error"].(string); !strings.Contains(msg, "access_token") || strings.Contains(msg, "at-secret") {
		t.Errorf("wrong-mode failure says %q", msg)
	}
	if c := e.mustDo(logical.ReadOperation, "connections/crm/acme", nil); c["api_key"] != "key-acme" || c["metadata"].(map[string]any)["plan"] != "pro" {
		t.Fatalf("acme = %v", c)
	}
	if c := e.mustDo(logical.ReadOperation, "connections/crm/existing", nil); c["api_key"] != "new-key" || c["connection_config"].(map[string]any)["subdomain"] != "old" {
		t.Fatalf("existing = %v", c)
	}
	e.mustFail(logical.ReadOperation, "connections/crm/bad-config", nil, http.StatusNotFound)
	e.mustFail(logical.ReadOperation, "connections/crm/wrong-mode", nil, http.StatusNotFound)
}

// Imported OAuth connections are scheduled like written ones.
func TestImportedTokensAreScheduled(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/gh", map[string]any{"auth_mode": "OAUTH2", "client_id": "c", "client_secret": "s",
		"auth_url": "https://p.example/a", "token_url": "https://p.example/t"})
	items := make([]any, 0, 50)
	for i := range 50 {
		items = append(items, map[string]any{"connection_id": fmt.Sprintf("c%02d", i), "access_token": "at", "refresh_token": "rt", "expires_in": 3600 + i})
	}
	if got := e.mustDo(logical.UpdateOperation, "import/gh", map[string]any{"connections": items}); got["created"] != 50 {
		t.Fatalf("import = %v", got)
	}
	if n := e.b.engine.QueueLen(); n != 50 {
		t.Fatalf("refresh queue holds %d, want 50", n)
	}
}

// A request that is itself wrong is refused whole and writes nothing.
func TestImportRefusesBadRequests(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/crm", map[string]any{"auth_mode": "API_KEY"})
	before := e.snapshot()
	tooMany := make([]any, maxImportItems+1)
	for i := range tooMany {
		tooMany[i] = map[string]any{"connection_id": fmt.Sprintf("c%d", i), "api_key": "k"}
	}
	e.assertRejected([]rejection{
		{"no list", "import/crm", map[string]any{}, "connections is required"},
		{"too many", "import/crm", map[string]any{"connections": tooMany}, "at most 1000"},
		{"duplicate", "import/crm", map[string]any{"connections": []any{
			map[string]any{"connection_id": "a", "api_key": "k1"}, map[string]any{"connection_id": "a", "api_key": "k2"}}}, "both"},
		{"bad id", "import/crm", map[string]any{"connections": []any{map[string]any{"connection_id": "a/b", "api_key": "k"}}}, "connection_id"},
		{"not an object", "import/crm", map[string]any{"connections": []any{"a"}}, "not an object"},
		{"no integration", "import/nope", map[string]any{"connections": []any{map[string]any{"connection_id": "a", "api_key": "k"}}}, "does not exist"},
	}, "zzz")
	e.assertUnchanged(before)
}

// Storage failing under an item is no per-item answer: the caller gets an
// error and retries the batch, which is safe because every item is whole.
func TestImportStorageFailureIsAnError(t *testing.T) {
	s := &flakyStorage{Storage: &logical.InmemStorage{}, failPrefix: "connections/"}
	e := newTestEnvOn(t, s)
	e.mustDo(logical.CreateOperation, "integrations/crm", map[string]any{"auth_mode": "API_KEY"})
	s.failPuts.Store(1 << 20)
	resp, status := e.do(logical.UpdateOperation, "import/crm", map[string]any{"connections": []any{map[string]any{"connection_id": "a", "api_key": "k"}}})
	if status != http.StatusInternalServerError {
		t.Fatalf("import with failing storage: status %d, resp %v", status, resp)
	}
}

// An import creates connections; one whose id exists already fails alone
// and is left as it was, unless the request sets overwrite=true. Import is
// a batch create, not a way around the write that each connection's own
// path (and its policy) guards.
func TestImportCreatesOnlyUnlessOverwrite(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/crm", map[string]any{"auth_mode": "API_KEY"})
	e.mustDo(logical.CreateOperation, "connections/crm/existing", map[string]any{"api_key": "old-key", "metadata": map[string]any{"plan": "pro"}})

	got := e.mustDo(logical.UpdateOperation, "import/crm", map[string]any{"connections": []any{
		map[string]any{"connection_id": "existing", "api_key": "new-key-secret", "metadata": map[string]any{"plan": "free"}},
		map[string]any{"connection_id": "fresh", "api_key": "fresh-key"},
	}})
	if got["created"] != 1 || got["updated"] != 0 || got["failed"] != 1 {
		t.Fatalf("import without overwrite: counts = %v", got)
	}
	first := got["results"].([]any)[0].(map[string]any)
	msg, _ := first["error"].(string)
	if first["status"] != "failed" || !strings.Contains(msg, "already exists") || !strings.Contains(msg, "overwrite=true") || strings.Contains(msg, "new-key-secret") {
		t.Fatalf("existing id without overwrite: %v", first)
	}
	if c := e.mustDo(logical.ReadOperation, "connections/crm/existing", nil); c["api_key"] != "old-key" || c["metadata"].(map[string]any)["plan"] != "pro" {
		t.Fatalf("existing connection changed by an import without overwrite: %v", c)
	}

	got = e.mustDo(logical.UpdateOperation, "import/crm", map[string]any{"overwrite": true, "connections": []any{
		map[string]any{"connection_id": "existing", "api_key": "new-key-secret"},
		map[string]any{"connection_id": "other", "api_key": "other-key"},
	}})
	if got["created"] != 1 || got["updated"] != 1 || got["failed"] != 0 {
		t.Fatalf("import with overwrite: counts = %v", got)
	}
	if c := e.mustDo(logical.ReadOperation, "connections/crm/existing", nil); c["api_key"] != "new-key-secret" {
		t.Fatalf("overwrite=true did not update: %v", c)
	}
}
