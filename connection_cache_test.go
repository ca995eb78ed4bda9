// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// countingStorage counts the storage operations that reach Vault; in a
// plugin each is a gRPC round trip.
type countingStorage struct {
	logical.Storage
	ops atomic.Int64
}

func (s *countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	s.ops.Add(1)
	return s.Storage.List(ctx, prefix)
}

func (s *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.ops.Add(1)
	return s.Storage.Get(ctx, key)
}

func (s *countingStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	s.ops.Add(1)
	return s.Storage.Put(ctx, entry)
}

func (s *countingStorage) Delete(ctx context.Context, key string) error {
	s.ops.Add(1)
	return s.Storage.Delete(ctx, key)
}

func TestCachedReadsTouchNoStorage(t *testing.T) {
	e := newTestEnv(t)
	counting := &countingStorage{Storage: e.storage}
	e.storage = counting
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/c", map[string]any{"api_key": "sk"})
	e.mustDo(logical.ReadOperation, "connections/stripe/c", nil)
	before := counting.ops.Load()
	for range 10 {
		e.mustDo(logical.ReadOperation, "connections/stripe/c", nil)
	}
	if n := counting.ops.Load() - before; n != 0 {
		t.Fatalf("10 cached reads made %d storage operations", n)
	}
}

func TestCacheNeverServesPastRefreshPoint(t *testing.T) {
	e, srv := oauthEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now
	access, _ := importExpiring(e, srv, "c1", 20*time.Minute) // outside the 15m margin
	if got := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)["access_token"]; got != access {
		t.Fatal("fresh token not served")
	}
	advance(6 * time.Minute) // now inside it; the cache still holds the old entry
	if got := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)["access_token"]; got == access {
		t.Fatal("the cache served a token past its refresh point")
	}
	if srv.Requests() != 1 {
		t.Fatalf("token requests = %d", srv.Requests())
	}
}

func TestCacheForgetsDeletes(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/c", map[string]any{"api_key": "sk"})
	e.mustDo(logical.ReadOperation, "connections/stripe/c", nil)
	e.mustDo(logical.DeleteOperation, "connections/stripe/c", nil)
	e.mustFail(logical.ReadOperation, "connections/stripe/c", nil, http.StatusNotFound)
	e.mustFail(logical.ReadOperation, "connections/stripe/c/metadata", nil, http.StatusNotFound)
	// So do force-deletes of the integration.
	e.mustDo(logical.CreateOperation, "connections/stripe/d", map[string]any{"api_key": "sk"})
	e.mustDo(logical.ReadOperation, "connections/stripe/d", nil)
	e.mustDo(logical.DeleteOperation, "integrations/stripe", map[string]any{"force": true})
	e.mustFail(logical.ReadOperation, "connections/stripe/d", nil, http.StatusNotFound)
}

func TestInvalidateEmptiesTheCache(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/c", map[string]any{"api_key": "old"})
	e.mustDo(logical.ReadOperation, "connections/stripe/c", nil)
	// Another node writes (replication delivers the entry and calls
	// Invalidate on this one).
	c, _ := getConnection(t.Context(), e.storage, "stripe", "c")
	c.Credentials.APIKey = "new"
	putConnection(t.Context(), e.storage, c)
	if got := e.mustDo(logical.ReadOperation, "connections/stripe/c", nil)["api_key"]; got != "old" {
		t.Fatalf("without invalidation the cache should still answer; got %v", got)
	}
	e.b.InvalidateKey(context.Background(), "connections/stripe/c")
	if got := e.mustDo(logical.ReadOperation, "connections/stripe/c", nil)["api_key"]; got != "new" {
		t.Fatalf("after Invalidate: %v", got)
	}
	// The config too.
	cfg, _ := getConfig(t.Context(), e.storage)
	cfg.RefreshMargin = time.Hour
	putConfig(t.Context(), e.storage, cfg)
	e.b.InvalidateKey(context.Background(), "config")
	if got := e.mustDo(logical.ReadOperation, "config", nil)["refresh_margin"]; got != int64(3600) {
		t.Fatalf("config after Invalidate: %v", got)
	}
}

func TestCacheIsBounded(t *testing.T) {
	c := newConnectionCache()
	for i := range connectionCacheSize + 50 {
		c.put(fmt.Sprint(i), &connectionEntry{}, 100)
	}
	if c.len() != connectionCacheSize {
		t.Fatalf("cache holds %d, bound %d", c.len(), connectionCacheSize)
	}
}

func TestCacheIsBoundedByBytes(t *testing.T) {
	c := newConnectionCache()
	size := connectionCacheBytes / 100
	for i := range 150 {
		c.put(fmt.Sprint(i), &connectionEntry{}, size)
	}
	if c.len() > 100 || c.bytes > connectionCacheBytes {
		t.Fatalf("cache holds %d entries, %d bytes; budget %d bytes", c.len(), c.bytes, connectionCacheBytes)
	}
	if _, ok := c.get("149"); !ok {
		t.Fatal("the newest entry was evicted")
	}
	c.put("huge", &connectionEntry{}, connectionCacheBytes/2)
	if _, ok := c.get("huge"); ok {
		t.Fatal("an entry over a sixteenth of the budget was cached")
	}
}

// gatedStorage holds a Get of one key after it has read storage, until the
// test lets it go: a cache fill caught between its read and its add.
type gatedStorage struct {
	logical.Storage
	key     string
	gotOld  chan struct{}
	release chan struct{}
	armed   atomic.Bool
}

func (s *gatedStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	entry, err := s.Storage.Get(ctx, key)
	if key == s.key && s.armed.CompareAndSwap(true, false) {
		close(s.gotOld)
		<-s.release
	}
	return entry, err
}

func TestInvalidateDuringCacheFillServesNoStaleEntry(t *testing.T) {
	reliabilityCase(t, "another node's write and Invalidate during a cache fill", "the stale entry is not served")
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/c", map[string]any{"api_key": "old"})
	key := connectionKey("stripe", "c")
	e.b.store.Invalidate(key) // start from a cold cache
	gated := &gatedStorage{Storage: e.storage, key: key, gotOld: make(chan struct{}), release: make(chan struct{})}
	gated.armed.Store(true)

	done := make(chan string)
	go func() {
		c, err := e.b.store.Get(context.Background(), gated, "stripe", "c")
		if err != nil {
			done <- err.Error()
			return
		}
		done <- c.Credentials.APIKey
	}()
	<-gated.gotOld // the reader holds the old entry, not yet cached
	// Another node writes; replication calls Invalidate on this one.
	c, _ := getConnection(t.Context(), e.storage, "stripe", "c")
	c.Credentials.APIKey = "new"
	putConnection(t.Context(), e.storage, c)
	e.b.InvalidateKey(context.Background(), key)
	close(gated.release)
	if got := <-done; got != "old" {
		t.Fatalf("the racing reader got %q; it read before the write", got)
	}
	if got := e.mustDo(logical.ReadOperation, "connections/stripe/c", nil)["api_key"]; got != "new" {
		t.Fatalf("after the invalidation a read served %v: the racing fill put the stale entry back", got)
	}
}

func TestCachedEntriesAreCopies(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/c", map[string]any{"api_key": "sk", "metadata": map[string]any{"a": "1"}})
	got, _ := e.b.store.Get(t.Context(), e.storage, "stripe", "c")
	got.Metadata["a"] = "changed"
	got.Credentials.APIKey = "changed"
	again := e.mustDo(logical.ReadOperation, "connections/stripe/c", nil)
	if again["api_key"] != "sk" || again["metadata"].(map[string]any)["a"] != "1" {
		t.Fatal("changing a read entry changed the cache")
	}
}
