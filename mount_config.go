// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"
)

// configCache holds the mount's configuration, which every read consults.
type configCache struct {
	mu   sync.RWMutex
	cfg  *configEntry // nil: not loaded
	last *configEntry // the last one loaded, kept through invalidations
}

func (cc *configCache) invalidate() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.cfg = nil
}

// configOrLast is config for the connection store, which needs it to
// schedule a save: when storage cannot be read it falls back to the last
// configuration seen (else the defaults), because the save may hold tokens
// a provider just issued, which must not fail for want of a refresh margin.
func (b *backend) configOrLast(ctx context.Context, s logical.Storage) (*configEntry, error) {
	cfg, err := b.config(ctx, s)
	if err == nil {
		return cfg, nil
	}
	b.configCache.mu.RLock()
	last := b.configCache.last
	b.configCache.mu.RUnlock()
	if last == nil {
		return defaultConfig(), nil
	}
	cp := *last
	return &cp, nil
}

// config returns the caller's own copy of the mount's configuration.
func (b *backend) config(ctx context.Context, s logical.Storage) (*configEntry, error) {
	cc := b.configCache
	cc.mu.RLock()
	cfg := cc.cfg
	cc.mu.RUnlock()
	if cfg != nil {
		cp := *cfg
		return &cp, nil
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cfg, err := getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	cc.cfg, cc.last = cfg, cfg
	cp := *cfg
	return &cp, nil
}

// saveConfig stores the configuration and caches it.
func (b *backend) saveConfig(ctx context.Context, s logical.Storage, cfg *configEntry) error {
	cc := b.configCache
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.cfg = nil
	if err := putConfig(ctx, s, cfg); err != nil {
		return err
	}
	cp := *cfg
	cc.cfg, cc.last = &cp, &cp
	return nil
}
