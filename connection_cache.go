// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"hash/maphash"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Cache bounds: by count, and by the stored size of the entries so that a
// few connections with large documents cannot take the plugin's memory.
const (
	connectionCacheSize  = 10000
	connectionCacheBytes = 32 << 20
)

// cacheGenerationStripes spread the fill generations over a fixed array, so
// that they take constant memory; a bump on one key only costs the other
// keys of its stripe one skipped fill.
const cacheGenerationStripes = 4096

// connectionCache holds connection entries in memory, because an external
// plugin pays a gRPC round trip to Vault for every storage operation and the
// hot path is a read of a fresh token.
//
// A fill after a cache miss happens without the connection's lock, so it
// could put back an entry older than a concurrent save or invalidation. Each
// key therefore has a generation, bumped by every put and invalidation; a
// fill takes the generation before it reads storage and is dropped if the
// generation moved meanwhile.
type connectionCache struct {
	mu      sync.Mutex // orders generation checks with adds and removals
	entries *lru.Cache[string, cachedConnection]
	bytes   int // stored size of the cached entries
	gens    [cacheGenerationStripes]uint64
	seed    maphash.Seed
}

type cachedConnection struct {
	entry *connectionEntry
	size  int
}

func newConnectionCache() *connectionCache {
	cc := &connectionCache{seed: maphash.MakeSeed()}
	entries, err := lru.NewWithEvict(connectionCacheSize, func(_ string, v cachedConnection) {
		cc.bytes -= v.size // called with cc.mu held: every add and remove is
	})
	if err != nil {
		panic(err) // only for a size <= 0
	}
	cc.entries = entries
	return cc
}

func (cc *connectionCache) stripe(key string) *uint64 {
	return &cc.gens[maphash.String(cc.seed, key)%cacheGenerationStripes]
}

// get returns the caller's own copy of a cached entry.
func (cc *connectionCache) get(key string) (*connectionEntry, bool) {
	v, ok := cc.entries.Get(key)
	if !ok {
		return nil, false
	}
	return v.entry.clone(), true
}

// generation is what a fill of key must still see when it adds its entry.
func (cc *connectionCache) generation(key string) uint64 {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return *cc.stripe(key)
}

// fill caches an entry read from storage, unless key was saved or
// invalidated since gen was taken.
func (cc *connectionCache) fill(key string, c *connectionEntry, size int, gen uint64) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if *cc.stripe(key) != gen {
		return
	}
	cc.add(key, c, size)
}

// put caches an entry just saved.
func (cc *connectionCache) put(key string, c *connectionEntry, size int) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	*cc.stripe(key)++
	cc.add(key, c, size)
}

// invalidate forgets key and fails the fills in flight for it.
func (cc *connectionCache) invalidate(key string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	*cc.stripe(key)++
	cc.entries.Remove(key)
}

// add caches a copy of c; the caller holds cc.mu.
func (cc *connectionCache) add(key string, c *connectionEntry, size int) {
	cc.entries.Remove(key)
	if size > connectionCacheBytes/16 {
		return // one entry may not take a sixteenth of the budget
	}
	cc.entries.Add(key, cachedConnection{entry: c.clone(), size: size})
	cc.bytes += size
	for cc.bytes > connectionCacheBytes {
		cc.entries.RemoveOldest()
	}
}

// len is the number of cached entries.
func (cc *connectionCache) len() int { return cc.entries.Len() }
