// SPDX-License-Identifier: MPL-2.0

// Second adversarial review of the schedule marks, of the fixes in d9def22
// (connection_schedule_marks.go): each test fails on d9def22 and says the
// sequence and what breaks.

package connect

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// hookStorage runs put (when set) before each Put: an error refuses it.
type hookStorage struct {
	logical.Storage
	mu  sync.Mutex
	put func(key string) error
}

func (h *hookStorage) setPut(put func(key string) error) {
	h.mu.Lock()
	h.put = put
	h.mu.Unlock()
}

func (h *hookStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	h.mu.Lock()
	put := h.put
	h.mu.Unlock()
	if put != nil {
		if err := put(entry.Key); err != nil {
			return err
		}
	}
	return h.Storage.Put(ctx, entry)
}

// Sequence: c1 is imported expiring in 3 h (marked ~2 h 45 m) and a start
// records the marks complete. A forced refresh gets a one-hour token
// (entry: next ~45 m): storage refuses its mark, markBeforeSave bumps
// marksWithdrawn and deletes schedule_marks_complete (the fix of the first
// review), then the entry's first put is refused too and save() retries it
// 20/100/400 ms later. In that pause a check runs start to end (the
// start's build, which runs while requests are served, or Recheck from the
// periodic hook): it loads marksWithdrawn AFTER the bump, reads c1 as still
// stored (old entry, old mark: consistent, nothing mended), and, the
// counter unchanged since it began, writes schedule_marks_complete. The
// retried put then stores the new entry without its mark. The next start
// is ready from marks and queues c1 by the stale mark, ~2 h after its
// entry's next refresh: the token lapses before the background refreshes
// it (until the check reaches it; minutes on a large mount, never if the
// check keeps failing).
// Breaks: "after queue_ready every stored token connection is queued no
// later than its entry says" (late refresh). The counter guards only a
// withdrawal that begins after the check; the entry's store ends later.
func TestAttack2CheckBetweenWithdrawalAndRetriedEntryPutRecordsMarksComplete(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	checkedStart(t, e.storage)

	base := e.storage
	h := &hookStorage{Storage: base}
	e.storage = h
	srv.SetExpiresIn(3600)
	var markRefused, entryRefused, checked atomic.Bool
	h.setPut(func(key string) error {
		switch {
		case strings.HasPrefix(key, scheduleMarkPrefix) && markRefused.CompareAndSwap(false, true):
			return errRefusedForTest
		case key == connectionKey("github", "c1") && markRefused.Load() && entryRefused.CompareAndSwap(false, true):
			// The check runs while the save waits to retry its put.
			if err := e.b.buildRefreshQueue(context.Background(), h, func() {}); err != nil {
				t.Errorf("the check: %v", err)
			}
			checked.Store(true)
			return errRefusedForTest
		}
		return nil
	})
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	h.setPut(nil)
	if !checked.Load() {
		t.Fatal("no check ran between the withdrawal and the entry's put")
	}
	if e.b.store.Unsaved() != 0 {
		t.Fatal("the retried put did not store the entry")
	}

	restartQueuesAsStored(t, base, connectionKey("github", "c1"))
}

// Sequence: c1 is stored without its mark (stored by a release before
// marks, or its mark lost). A start's check finds it unmarked and mends
// it: mendScheduleMarks takes c1's lock, reads the stored entry, and is
// about to put its mark. Meanwhile a forced delete of the integration runs
// (it takes the integration's write lock, not the connection's): it
// deletes c1's entry and its current mark (none yet) and untracks it. The
// mend then puts the mark of the deleted entry and tracks it: a mark under
// a deleted integration (an orphan every later start restores as a queued
// connection with its status, until that start's check deletes it; beside
// the marks of a re-created integration's connection of the same id), and
// this process keeps the deleted connection queued.
// Breaks: "a delete removes the mark after the entry" / no queued
// connection that is not stored (cosmetic: ghost queue entries and
// statuses, an early refresh of a same-named connection).
func TestAttack2MendRacingForcedIntegrationDeleteResurrectsMark(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	ctx := context.Background()
	for _, name := range storedMarks(t, e.storage) {
		if err := e.storage.Delete(ctx, scheduleMarkPrefix+name); err != nil {
			t.Fatal(err)
		}
	}

	h := &hookStorage{Storage: e.storage}
	reached, proceed := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	h.setPut(func(key string) error {
		if strings.HasPrefix(key, scheduleMarksPrefix("github")+"c1"+scheduleMarkSep) && once.CompareAndSwap(false, true) {
			close(reached)
			<-proceed
		}
		return nil
	})
	restarted := startOn(t, h)
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the check did not mend c1's mark")
	}
	// Fixed by the mend holding the integration's read lock: the delete
	// waits for it, then deletes the entry and the mark the mend wrote.
	deleted := make(chan struct{})
	go func() {
		defer close(deleted)
		restarted.mustDo(logical.DeleteOperation, "integrations/github", map[string]any{"force": true})
	}()
	time.Sleep(50 * time.Millisecond)
	close(proceed)
	<-deleted
	waitFor(t, "queue checked", restarted.b.engine.Checked)

	if got := storedMarks(t, e.storage); len(got) != 0 {
		t.Errorf("marks %v left of a deleted integration's connection", got)
	}
	if at, queued := restarted.b.engine.Scheduled(connectionKey("github", "c1")); queued {
		t.Errorf("the deleted connection is queued at %v", at)
	}
}

// Sequence: c1 is imported expiring in 3 h (mark A, ~2 h 45 m). A forced
// refresh gets a 5-hour token while storage refuses connection entries:
// its mark B (~4 h 45 m) is written, the entry is held unsaved with a WAL
// record. Storage recovers; the periodic SaveUnsaved stores it: save()
// with held=true writes B again and drops the held entry's mark (B, kept:
// the same), but never the stored entry's A, which the first review's fix
// drops only on a delete of a held connection. A is left beside B for
// good; the user then deletes c1, which drops only B: A is an orphan mark
// that every start restores as a queued connection (a ghost "ok" status in
// the stats, a refresh that finds nothing) until its check deletes it.
// Breaks: "every save leaves exactly its one current mark" (cosmetic).
func TestAttack2SaveOverHeldEntryLeavesTheStoredEntrysMark(t *testing.T) {
	e, _, refusing := refreshHeldUnsaved(t, 5*3600)
	refusing.refuse()
	if err := e.b.store.SaveUnsaved(context.Background(), refusing); err != nil {
		t.Fatal(err)
	}
	if got, want := storedMarks(t, refusing.Storage), markOfStored(t, refusing.Storage, "github", "c1"); len(got) != 1 || got[0] != want {
		t.Errorf("marks after the held entry was stored %v, want only %v", got, want)
	}
	e.mustDo(logical.DeleteOperation, "connections/github/c1", nil)
	if got := storedMarks(t, refusing.Storage); len(got) != 0 {
		t.Errorf("marks %v left after the connection's delete", got)
	}
}

// Sequence: c1 is imported expiring in 3 h (mark ~2 h 45 m). A new
// process starts; its check reads every connection (all marked as their
// entries say) and computes complete (marksWithdrawn unchanged), but
// storage refuses the put of schedule_marks_complete, so finishCheck
// pauses (250 ms, doubling to 10 s) and tries again. In that pause a
// forced refresh gets a one-hour token (next ~45 m) whose mark storage
// refuses: markBeforeSave bumps marksWithdrawn and deletes the (absent)
// schedule_marks_complete, and stores the entry without its mark. The
// check's retry, which never looks at the counter again, then writes
// schedule_marks_complete. The next start is ready from marks and queues c1
// by its stale mark ~2 h after its entry says (a token lapses: until that
// start's check reaches it). The window is widest exactly when storage
// refuses writes, which is when marks are refused.
// Breaks: queued no later than its entry after queue_ready (late refresh).
func TestAttack2WithdrawalDuringFinishCheckRetryIsOverwritten(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	base := e.storage

	h := &hookStorage{Storage: base}
	envs := make(chan *testEnv, 1)
	var completeRefused, markRefused atomic.Bool
	refreshed := make(chan struct{})
	h.setPut(func(key string) error {
		switch {
		case key == scheduleMarksCompleteKey && completeRefused.CompareAndSwap(false, true):
			// The refresh runs while the check waits to try again.
			running := <-envs
			srv.SetExpiresIn(3600)
			go func() {
				defer close(refreshed)
				running.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
			}()
			return errRefusedForTest
		case strings.HasPrefix(key, scheduleMarkPrefix) && completeRefused.Load() && markRefused.CompareAndSwap(false, true):
			return errRefusedForTest
		}
		return nil
	})
	running := startOn(t, h)
	envs <- running
	waitFor(t, "queue checked", running.b.engine.Checked)
	<-refreshed
	if !markRefused.Load() {
		t.Fatal("the refresh wrote its mark: the test needs it refused")
	}
	running.b.Cleanup(context.Background())

	restartQueuesAsStored(t, base, connectionKey("github", "c1"))
}

// getCounter counts the reads of one key.
type getCounter struct {
	logical.Storage
	key  string
	gets atomic.Int64
}

func (s *getCounter) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if key == s.key {
		s.gets.Add(1)
	}
	return s.Storage.Get(ctx, key)
}

// Sequence: one connection entry does not decode (damaged, here truncated
// JSON: errUndecodableEntry, which a delete already tolerates; a newer
// release's entry still scans). Every check fails on it (EachSchedule's
// decode error), so the engine is never checked, and Engine.Recheck (fix 4
// of d9def22) runs the whole build again from every periodic tick: a list
// of every mark and a read of every connection each minute, forever (on
// Raft at 100,000 connections ~8 s of round trips a minute), an ERROR log
// line each time, and schedule_marks_complete never written, so every
// start waits for the full read. Before d9def22 the one failure was final.
// Breaks: the cost the docs give for a start (one read of everything);
// Recheck is meant for a failure storage may recover from.
func TestAttack2UndecodableEntryRereadsEveryConnectionEveryTick(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	ctx := context.Background()
	if err := e.storage.Put(ctx, &logical.StorageEntry{Key: connectionKey("github", "newer"), Value: []byte(`{"format_version": 99, "auth_mode": `)}); err != nil {
		t.Fatal(err)
	}
	counting := &getCounter{Storage: e.storage, key: connectionKey("github", "c1")}
	r := startOn(t, counting)
	// Fixed by counting the entry out of the check, which ends.
	waitFor(t, "the check to end", r.b.engine.Checked)
	for range 5 {
		time.Sleep(50 * time.Millisecond)
		r.tick()
	}
	time.Sleep(50 * time.Millisecond)
	if n := counting.gets.Load(); n > 2 {
		t.Errorf("c1 read %d times by a start and five ticks: every tick reads every connection again", n)
	}
}
