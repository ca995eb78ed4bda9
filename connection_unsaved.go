// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// unsavedEntry is an entry storage refused, and the WAL record (if storage
// took that) of its latest credentials, which lets a restarted plugin
// store it. The store keeps provider-issued credentials so, in memory and
// in a WAL record (connection_wal.go), until storage takes them: a rotated
// refresh token is never lost.
type unsavedEntry struct {
	entry *connectionEntry
	walID string
	// created: storage has never held the connection.
	created bool
	// base is the stored entry the unsaved changes started from (nil when
	// created), which its records carry.
	base *walBase
	// marks are the schedule marks of the stored entry and of each entry
	// held in turn since: deleted once one is stored (dropEarlierMarks).
	marks []scheduleMark
}

// SaveUnsaved retries the saves that failed, and the deletions of WAL
// records they superseded, from the periodic hook. An entry whose
// integration is gone is dropped.
func (cs *connectionStore) SaveUnsaved(ctx context.Context, s logical.Storage) error {
	firstErr := cs.deleteSupersededWALs(ctx, s)
	cs.unsavedMu.Lock()
	keys := make([]string, 0, len(cs.unsaved))
	for k := range cs.unsaved {
		keys = append(keys, k)
	}
	cs.unsavedMu.Unlock()
	for _, key := range keys {
		integration, id, _ := splitConnectionKey(key)
		_, err := cs.update(ctx, s, integration, id, func(c *connectionEntry) (*connectionEntry, error) {
			if c == nil {
				return nil, errUnchanged
			}
			c.issued = true
			return c, nil
		})
		if errors.Is(err, errIntegrationGone) && cs.unsavedEntry(key) == nil {
			err = nil // dropped with its integration
		}
		if err == nil && cs.unsavedEntry(key) != nil {
			err = fmt.Errorf("connection %q is still not stored", key)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// unsavedMarks are the marks written for key's entry held unsaved and the
// stored one under it; none when nothing is held.
func (cs *connectionStore) unsavedMarks(key string) []scheduleMark {
	if cs.unsavedCount.Load() == 0 {
		return nil
	}
	cs.unsavedMu.Lock()
	defer cs.unsavedMu.Unlock()
	if u, ok := cs.unsaved[key]; ok {
		return slices.Clone(u.marks)
	}
	return nil
}

// Unsaved is the number of entries waiting for storage.
func (cs *connectionStore) Unsaved() int {
	cs.unsavedMu.Lock()
	defer cs.unsavedMu.Unlock()
	return len(cs.unsaved)
}

func (cs *connectionStore) unsavedEntry(key string) *connectionEntry {
	if cs.unsavedCount.Load() == 0 {
		return nil // the hot path: nothing waits for storage
	}
	cs.unsavedMu.Lock()
	defer cs.unsavedMu.Unlock()
	if u, ok := cs.unsaved[key]; ok {
		return u.entry.clone()
	}
	return nil
}

// unsavedWALID is the id of the WAL record of key's unsaved entry, empty
// when there is none.
func (cs *connectionStore) unsavedWALID(key string) string {
	cs.unsavedMu.Lock()
	defer cs.unsavedMu.Unlock()
	if u, ok := cs.unsaved[key]; ok {
		return u.walID
	}
	return ""
}

// keepUnsaved keeps c, which storage refused, in memory and records it in a
// new WAL record, so that the record always holds the latest credentials
// (the earlier ones may be spent); the record before it is then deleted.
// previous is what the change started from: nil when storage held nothing.
// The caller holds c's lock.
func (cs *connectionStore) keepUnsaved(ctx context.Context, s logical.Storage, key string, c, previous *connectionEntry) {
	cs.unsavedMu.Lock()
	old := cs.unsaved[key]
	cs.unsavedMu.Unlock()
	u := &unsavedEntry{entry: c.clone(), created: previous == nil || (old != nil && old.created), base: walBaseOf(previous)}
	if old != nil {
		u.base = old.base // previous is the unsaved entry; storage holds old's base
		u.marks = slices.Clone(old.marks)
	}
	for _, e := range []*connectionEntry{previous, c} {
		// Once each: SaveUnsaved tries the same entry again every minute.
		if m, ok := scheduleMarkOf(e); ok && !slices.Contains(u.marks, m) {
			u.marks = append(u.marks, m)
		}
	}
	if old != nil && old.walID != "" && old.entry.CredentialsIssuedAt.Equal(c.CredentialsIssuedAt) {
		// A retry of the same credentials: their record stands.
		u.walID = old.walID
		cs.putUnsaved(key, u)
		return
	}
	walID, err := putIssuedTokensWAL(ctx, s, c, u.created, u.base)
	switch {
	case err != nil && old != nil:
		u.walID = old.walID // older credentials are still better than none
	case err == nil && old != nil && old.walID != "":
		u.walID = walID
		cs.deleteSupersededWAL(ctx, s, old.walID)
	default:
		u.walID = walID
	}
	cs.putUnsaved(key, u)
}

// rerecordUnsaved writes a new WAL record for key's unsaved entry, whose
// record a failed delete removed. If that write fails too, the entry keeps
// no record id, so the next failed save writes one instead of trusting a
// deleted id.
func (cs *connectionStore) rerecordUnsaved(ctx context.Context, s logical.Storage, key string) {
	cs.unsavedMu.Lock()
	u := cs.unsaved[key]
	cs.unsavedMu.Unlock()
	if u == nil {
		return
	}
	walID, err := putIssuedTokensWAL(ctx, s, u.entry, u.created, u.base)
	if err != nil {
		walID = ""
	}
	cs.putUnsaved(key, &unsavedEntry{entry: u.entry, walID: walID, created: u.created, base: u.base, marks: u.marks})
}

// putUnsaved holds u as key's unsaved entry, which reads then see instead
// of the cache.
func (cs *connectionStore) putUnsaved(key string, u *unsavedEntry) {
	cs.unsavedMu.Lock()
	cs.unsaved[key] = u
	cs.unsavedCount.Store(int64(len(cs.unsaved)))
	cs.unsavedMu.Unlock()
	cs.cache.invalidate(key)
}

// forgetUnsaved drops key's unsaved entry once its save succeeded, with the
// WAL record that backed it.
func (cs *connectionStore) forgetUnsaved(ctx context.Context, s logical.Storage, key string) {
	if walID := cs.dropUnsaved(key); walID != "" {
		cs.deleteSupersededWAL(ctx, s, walID)
	}
}

// discardUnsaved drops key's unsaved entry, whose integration is gone, and
// its WAL record; if the record cannot be deleted, both stay.
func (cs *connectionStore) discardUnsaved(ctx context.Context, s logical.Storage, key string) error {
	if walID := cs.unsavedWALID(key); walID != "" {
		if err := framework.DeleteWAL(ctx, s, walID); err != nil {
			return fmt.Errorf("deleting WAL record %q: %w", walID, err)
		}
	}
	cs.dropUnsaved(key)
	return nil
}

// dropUnsaved forgets key's unsaved entry and returns its WAL id.
func (cs *connectionStore) dropUnsaved(key string) string {
	cs.unsavedMu.Lock()
	defer cs.unsavedMu.Unlock()
	u, ok := cs.unsaved[key]
	if !ok {
		return ""
	}
	delete(cs.unsaved, key)
	cs.unsavedCount.Store(int64(len(cs.unsaved)))
	return u.walID
}

// deleteSupersededWAL deletes a record whose credentials storage, or a
// newer record, now holds; a failure is retried by SaveUnsaved.
func (cs *connectionStore) deleteSupersededWAL(ctx context.Context, s logical.Storage, walID string) {
	if err := framework.DeleteWAL(ctx, s, walID); err != nil {
		cs.unsavedMu.Lock()
		cs.supersededWALs[walID] = true
		cs.unsavedMu.Unlock()
	}
}

// deleteSupersededWALs retries the deletions deleteSupersededWAL could not
// do and returns the first failure.
func (cs *connectionStore) deleteSupersededWALs(ctx context.Context, s logical.Storage) error {
	cs.unsavedMu.Lock()
	ids := make([]string, 0, len(cs.supersededWALs))
	for id := range cs.supersededWALs {
		ids = append(ids, id)
	}
	cs.unsavedMu.Unlock()
	var firstErr error
	for _, id := range ids {
		err := framework.DeleteWAL(ctx, s, id)
		if err == nil {
			cs.unsavedMu.Lock()
			delete(cs.supersededWALs, id)
			cs.unsavedMu.Unlock()
		} else if firstErr == nil {
			firstErr = fmt.Errorf("deleting superseded WAL record %q: %w", id, err)
		}
	}
	return firstErr
}
