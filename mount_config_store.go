// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"
)

// mountConfigStore loads, caches and saves the mount's configuration (the
// config path's entry), which every read consults. "Config" alone means
// this entry; a connection's own config is always "connection config".
type mountConfigStore struct {
	mu   sync.RWMutex
	cfg  *configEntry // nil: not loaded
	last *configEntry // the last one loaded, kept through invalidations
}

// newMountConfigStore returns a store that loads the configuration on
// first use.
func newMountConfigStore() *mountConfigStore {
	return &mountConfigStore{}
}

// maxPendingEvents is config's max_pending_events, or its default when the
// configuration cannot be read (an event is not refused for that): the
// outbox's bound.
func (ms *mountConfigStore) maxPendingEvents(ctx context.Context, s logical.Storage) int {
	cfg, err := ms.getOrLast(ctx, s)
	if err != nil || cfg.MaxPendingEvents < 1 {
		return defaultMaxPendingEvents
	}
	return cfg.MaxPendingEvents
}

// invalidate drops the cached entry: another node changed it.
func (ms *mountConfigStore) invalidate() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.cfg = nil
}

// getOrLast is get for the connection store, which needs the configuration
// to schedule a save: when storage cannot be read it falls back to the last
// configuration seen (else the defaults), because the save may hold tokens
// a provider just issued, which must not fail for want of a refresh margin.
func (ms *mountConfigStore) getOrLast(ctx context.Context, s logical.Storage) (*configEntry, error) {
	cfg, err := ms.get(ctx, s)
	if err == nil {
		return cfg, nil
	}
	ms.mu.RLock()
	last := ms.last
	ms.mu.RUnlock()
	if last == nil {
		return defaultConfig(), nil
	}
	cp := *last
	return &cp, nil
}

// get returns the caller's own copy of the mount's configuration.
func (ms *mountConfigStore) get(ctx context.Context, s logical.Storage) (*configEntry, error) {
	ms.mu.RLock()
	cfg := ms.cfg
	ms.mu.RUnlock()
	if cfg != nil {
		cp := *cfg
		return &cp, nil
	}
	ms.mu.Lock()
	defer ms.mu.Unlock()
	cfg, err := getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	ms.cfg, ms.last = cfg, cfg
	cp := *cfg
	return &cp, nil
}

// save stores the configuration and caches it.
func (ms *mountConfigStore) save(ctx context.Context, s logical.Storage, cfg *configEntry) error {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.cfg = nil
	if err := putConfig(ctx, s, cfg); err != nil {
		return err
	}
	cp := *cfg
	ms.cfg, ms.last = &cp, &cp
	return nil
}
