package connect

import (
	"context"
	"strings"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/vault/sdk/logical"
)

// An external plugin pays a gRPC round trip to Vault for every storage
// operation, so the hot path, a read of a fresh token, is served from memory:
// a bounded LRU of connection entries and the mount's configuration.
//
// The cache stays true on the node that writes: every save and delete of a
// connection goes through saveConnection/dropConnection, which update it
// under the connection's lock, and a miss fills it under the same lock held
// for reading, so a fill can never put back an entry older than a save.
// Other nodes (performance standbys, secondaries) hear of changes through the
// backend's Invalidate hook, which empties the key. A cached entry is never
// served past its refresh point: readConnection checks every entry's expiry,
// whichever way it came.

// connectionCacheSize bounds the cache: about 2 KB an entry, so ~20 MB.
const connectionCacheSize = 10000

type connectionCache struct {
	entries *lru.Cache[string, *connectionEntry]

	cfgMu sync.RWMutex
	cfg   *configEntry // nil: not loaded
}

func newConnectionCache() *connectionCache {
	entries, err := lru.New[string, *connectionEntry](connectionCacheSize)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &connectionCache{entries: entries}
}

// connection returns a connection for reading, from the cache if it holds it.
// The caller gets its own copy. Nil when the connection does not exist.
func (b *backend) connection(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, error) {
	key := connectionKey(integration, id)
	if c, ok := b.cache.entries.Get(key); ok {
		return c.clone(), nil
	}
	lock := b.connLock(integration, id)
	lock.RLock()
	defer lock.RUnlock()
	return b.loadConnection(ctx, s, integration, id)
}

// loadConnection reads a connection from storage and caches it. Callers
// hold the connection's lock (for reading or writing).
func (b *backend) loadConnection(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, error) {
	c, err := getConnection(ctx, s, integration, id)
	if err != nil || c == nil {
		return nil, err
	}
	b.cache.entries.Add(connectionKey(integration, id), c.clone())
	return c, nil
}

// saveConnection stores a connection and brings the cache, the refresh
// queue and the status counts up to date. Callers hold the connection's lock.
func (b *backend) saveConnection(ctx context.Context, s logical.Storage, c *connectionEntry) error {
	cfg, err := b.config(ctx, s)
	if err != nil {
		return err
	}
	b.engine.schedule(c, cfg, b.now())
	if err := putConnection(ctx, s, c); err != nil {
		// The stored entry is unknown now; let the next read find out.
		b.cache.entries.Remove(connectionKey(c.Integration, c.ConnectionID))
		return err
	}
	b.cache.entries.Add(connectionKey(c.Integration, c.ConnectionID), c.clone())
	b.engine.track(c)
	return nil
}

// dropConnection deletes a connection from storage, the cache and the
// queue. Callers hold the connection's lock.
func (b *backend) dropConnection(ctx context.Context, s logical.Storage, integration, id string) error {
	key := connectionKey(integration, id)
	b.cache.entries.Remove(key)
	b.engine.untrack(key)
	return deleteConnection(ctx, s, integration, id)
}

// config returns the mount's configuration, cached.
func (b *backend) config(ctx context.Context, s logical.Storage) (*configEntry, error) {
	b.cache.cfgMu.RLock()
	cfg := b.cache.cfg
	b.cache.cfgMu.RUnlock()
	if cfg != nil {
		cp := *cfg
		return &cp, nil
	}
	b.cache.cfgMu.Lock()
	defer b.cache.cfgMu.Unlock()
	cfg, err := getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	b.cache.cfg = cfg
	cp := *cfg
	return &cp, nil
}

// saveConfig stores the configuration and caches it.
func (b *backend) saveConfig(ctx context.Context, s logical.Storage, cfg *configEntry) error {
	b.cache.cfgMu.Lock()
	defer b.cache.cfgMu.Unlock()
	b.cache.cfg = nil
	if err := putConfig(ctx, s, cfg); err != nil {
		return err
	}
	cp := *cfg
	b.cache.cfg = &cp
	return nil
}

// invalidate is the backend's Invalidate hook: another node changed key.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configStoragePath:
		b.cache.cfgMu.Lock()
		b.cache.cfg = nil
		b.cache.cfgMu.Unlock()
	case strings.HasPrefix(key, connectionPrefix):
		b.cache.entries.Remove(key)
	}
}
