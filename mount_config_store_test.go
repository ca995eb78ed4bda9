// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The mount's configuration is read from storage once, served from memory
// after, as the caller's own copy; invalidate makes the next get read again;
// getOrLast falls back to the last one seen (else the defaults) when
// storage cannot be read, and get does not.
func TestMountConfigStore(t *testing.T) {
	ctx := context.Background()
	s := &flakyStorage{Storage: &logical.InmemStorage{}, failGetKey: configStoragePath}
	ms := &mountConfigStore{}

	s.failGet.Store(true)
	if _, err := ms.get(ctx, s); err == nil {
		t.Fatal("get hid a storage failure")
	}
	if cfg, err := ms.getOrLast(ctx, s); err != nil || !reflect.DeepEqual(cfg, defaultConfig()) {
		t.Fatalf("getOrLast before any load = %+v, %v; want the defaults", cfg, err)
	}
	s.failGet.Store(false)

	want := defaultConfig()
	want.RefreshMargin = 7 * time.Minute
	if err := ms.save(ctx, s, want); err != nil {
		t.Fatal(err)
	}
	got, err := ms.get(ctx, s)
	if err != nil || got.RefreshMargin != 7*time.Minute {
		t.Fatalf("get after save = %+v, %v", got, err)
	}
	got.RefreshMargin = time.Hour // the caller's copy, not the cache's
	if again, _ := ms.get(ctx, s); again.RefreshMargin != 7*time.Minute {
		t.Fatal("a caller's change reached the cached configuration")
	}

	// Another node writes; until invalidated this node serves its cache.
	other := defaultConfig()
	other.RefreshMargin = 9 * time.Minute
	if err := putConfig(ctx, s, other); err != nil {
		t.Fatal(err)
	}
	if got, _ := ms.get(ctx, s); got.RefreshMargin != 7*time.Minute {
		t.Fatal("served storage before an invalidation; the cache is not used")
	}
	ms.invalidate()
	if got, _ := ms.get(ctx, s); got.RefreshMargin != 9*time.Minute {
		t.Fatalf("after invalidate: %v, want the stored 9m", got.RefreshMargin)
	}

	// Storage fails after an invalidation: getOrLast serves the last loaded.
	ms.invalidate()
	s.failGet.Store(true)
	if cfg, err := ms.getOrLast(ctx, s); err != nil || cfg.RefreshMargin != 9*time.Minute {
		t.Fatalf("getOrLast with storage failing = %+v, %v; want the last loaded", cfg, err)
	}
}
