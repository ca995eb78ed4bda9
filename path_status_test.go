// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// The status path shows the store's figures as the store counts them.
func TestStatusShowsTheStoreStats(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	e.mustDo(logical.CreateOperation, "connections/stripe/a", map[string]any{"api_key": "k"})
	st := e.mustDo(logical.ReadOperation, "status", nil)
	want := e.b.store.Stats()
	if st["cached_connections"] != want.Cached || st["unsaved_connections"] != want.Unsaved || want.Cached != 1 {
		t.Fatalf("status = %v, store stats = %+v", st, want)
	}
	if st["queue_ready"] == nil || st["goroutines"] == nil {
		t.Fatalf("status lacks the engine's or the process's figures: %v", st)
	}
}
