// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/vault/sdk/logical"
)

// listedCount is the number of storage entries under one prefix (an
// integration's pending authorizations, the mount's sessions), checked
// against a cap without listing. It is derived by one List the first time
// this process needs it and kept by every change since. The entries change
// only on the active node (their writes are forwarded; sweeps run where
// storage is writable), and a node that becomes active builds a new
// backend that derives the counts afresh: so a count survives restarts and
// failovers without a stored counter that a crash between two writes would
// leave wrong.
type listedCount struct {
	// derive is held for writing while the count is listed from storage,
	// and for reading around every change of the entries: a change is then
	// either in the listing or counted after it, never both or neither.
	derive sync.RWMutex
	loaded bool // written under derive's write lock
	n      atomic.Int64
}

// load derives the count by listing prefix unless it has been; what names
// the entries in an error. It must not be called while holding changing.
func (c *listedCount) load(ctx context.Context, s logical.Storage, prefix, what string) error {
	c.derive.RLock()
	loaded := c.loaded
	c.derive.RUnlock()
	if loaded {
		return nil
	}
	c.derive.Lock()
	defer c.derive.Unlock()
	if c.loaded {
		return nil
	}
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("counting %s: %w", what, err)
	}
	c.n.Store(int64(len(keys)))
	c.loaded = true
	return nil
}

// changing holds the count for one change of the entries; call the result
// when the change is done.
func (c *listedCount) changing() func() {
	c.derive.RLock()
	return c.derive.RUnlock
}

// reserve takes a place for a new entry if fewer than max are taken. The
// count must be loaded and held.
func (c *listedCount) reserve(max int) bool {
	for {
		n := c.n.Load()
		if n >= int64(max) {
			return false
		}
		if c.n.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives back a place reserved for an entry that was not written.
func (c *listedCount) release() { c.n.Add(-1) }

// removed counts an entry deleted while holding the count; a count not
// derived yet will see the deletion in its listing.
func (c *listedCount) removed() {
	if c.loaded {
		c.n.Add(-1)
	}
}
