// SPDX-License-Identifier: MPL-2.0

// The root package's storage fakes (storage that fails or counts as told)
// and the helpers that read and write stored connections past the store,
// shared by tests beside many files.

package connect

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// getConnection reads a connection straight from storage, past the store's
// cache, as a test's view of what is really stored.
func getConnection(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, error) {
	c, _, err := readConnectionEntry(ctx, s, connectionKey(integration, id))
	return c, err
}

// putConnection writes a connection straight to storage, as another node or
// an earlier version would have.
func putConnection(ctx context.Context, s logical.Storage, c *connectionEntry) error {
	entry, err := logical.StorageEntryJSON(connectionKey(c.Integration, c.ConnectionID), c)
	if err != nil {
		return err
	}
	return s.Put(ctx, entry)
}

// replaceWith is a store change that stores c whatever was there.
func replaceWith(c *connectionEntry) func(*connectionEntry) (*connectionEntry, error) {
	return func(*connectionEntry) (*connectionEntry, error) { return c.clone(), nil }
}

// flakyStorage fails writes the way a sealed, unavailable or full storage
// backend does: Put of any key under failPrefix while failPuts > 0 (each
// failure counts one down), Delete of any key under failDeletePrefix while
// failDeletes > 0 (likewise), and Get of failGetKey while failGet is set.
type flakyStorage struct {
	logical.Storage
	failPrefix       string
	failPuts         atomic.Int64
	failDeletePrefix string
	failDeletes      atomic.Int64
	failGetKey       string
	failGet          atomic.Bool
}

func (s *flakyStorage) Delete(ctx context.Context, key string) error {
	if s.failDeletePrefix != "" && strings.HasPrefix(key, s.failDeletePrefix) && s.failDeletes.Load() > 0 {
		s.failDeletes.Add(-1)
		return errors.New("storage unavailable")
	}
	return s.Storage.Delete(ctx, key)
}

func (s *flakyStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if strings.HasPrefix(entry.Key, s.failPrefix) && s.failPuts.Load() > 0 {
		s.failPuts.Add(-1)
		return errors.New("storage unavailable")
	}
	return s.Storage.Put(ctx, entry)
}

func (s *flakyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if key == s.failGetKey && s.failGet.Load() {
		return nil, errors.New("storage unavailable")
	}
	return s.Storage.Get(ctx, key)
}

// reliabilityCase marks a test as a row of docs/reliability.md: what it
// injects and what it expects (scripts/reliability reads the line).
func reliabilityCase(t testing.TB, injected, expectation string) {
	t.Helper()
	t.Logf("reliability|%s|%s", injected, expectation)
}

// rewriteStoredConnection changes a stored connection past every check, as
// an earlier version of the plugin may have stored it, and drops the cached
// copy as Vault's invalidation would.
func (e *testEnv) rewriteStoredConnection(integration, id string, change func(*connectionEntry)) {
	e.t.Helper()
	ctx := context.Background()
	c, err := getConnection(ctx, e.storage, integration, id)
	if err != nil || c == nil {
		e.t.Fatalf("reading stored %s/%s: %v", integration, id, err)
	}
	change(c)
	if err := putConnection(ctx, e.storage, c); err != nil {
		e.t.Fatal(err)
	}
	e.b.invalidate(ctx, connectionKey(integration, id))
}

// listCountingStorage counts List calls and the keys they return: what a
// sweep or a count costs as storage grows.
type listCountingStorage struct {
	logical.Storage
	lists atomic.Int64
	keys  atomic.Int64
}

func (s *listCountingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.Storage.List(ctx, prefix)
	s.lists.Add(1)
	s.keys.Add(int64(len(keys)))
	return keys, err
}

// prefixWritesStorage counts the puts and deletes of keys under prefix.
type prefixWritesStorage struct {
	logical.Storage
	prefix        string
	puts, deletes atomic.Int64
}

func (s *prefixWritesStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if strings.HasPrefix(e.Key, s.prefix) {
		s.puts.Add(1)
	}
	return s.Storage.Put(ctx, e)
}

func (s *prefixWritesStorage) Delete(ctx context.Context, key string) error {
	if strings.HasPrefix(key, s.prefix) {
		s.deletes.Add(1)
	}
	return s.Storage.Delete(ctx, key)
}
