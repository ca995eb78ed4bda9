// SPDX-License-Identifier: MPL-2.0

// Adversarial tests of the schedule marks (connection_schedule_marks.go):
// each one fails on commit 1919e3a and says the sequence and what breaks.

package connect

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Sequence: a connection imported with a token expiring in 3 h is marked
// for ~2 h 45 m; a start records the marks complete. Storage then refuses
// one put under schedule/ while a forced refresh gets a one-hour token
// (issued credentials: save() logs the refused mark and stores the entry
// anyway, marked=false, so the old mark is not dropped either). The plugin
// restarts: the marks are complete, so the queue is declared ready from
// them, and the connection is queued by its stale mark ~2 h after what its
// entry says: its token lapses before the background refreshes it (and
// until the check reaches it, which on 1,000,000 connections is minutes,
// or never if the check fails).
// Breaks: "after queue_ready every stored token connection is queued no
// later than its entry's next_refresh_at".
func TestAttackRefusedMarkOfIssuedSaveQueuesLateAfterRestart(t *testing.T) {
	flaky := refreshWithItsMarkRefused(t)

	// Fixed by withdrawing the marks' completeness before storing the
	// entry without its mark: the restart is not ready before it has read
	// every connection, and then queues c1 as its entry says.
	gate := newGatedStorage(flaky.Storage)
	restarted := startOn(t, gate)
	time.Sleep(100 * time.Millisecond)
	if restarted.b.engine.Ready() {
		close(gate.release)
		t.Fatal("ready from marks that lack c1's current one")
	}
	close(gate.release)
	waitFor(t, "queue checked", restarted.b.engine.Checked)
	queuedAsStored(t, restarted, flaky.Storage, "connections/github/c1")
	if done, err := flaky.Storage.Get(context.Background(), scheduleMarksCompleteKey); err != nil || done == nil {
		t.Fatalf("the check did not record the mended marks complete: %v", err)
	}
}

// refreshWithItsMarkRefused imports github/c1 expiring in 3 h, records
// the marks complete, and refreshes c1 to a one-hour token while storage
// refuses the refresh's mark; it returns that storage.
func refreshWithItsMarkRefused(t *testing.T) *flakyStorage {
	t.Helper()
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	checkedStart(t, e.storage)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: scheduleMarkPrefix}
	e.storage = flaky
	srv.SetExpiresIn(3600)
	flaky.failPuts.Store(1)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	if flaky.failPuts.Load() != 0 {
		t.Fatal("the refresh wrote no mark: the test needs its mark put refused")
	}
	return flaky
}

// refusePrefixes refuses every Put under one of prefixes (set by refuse).
type refusePrefixes struct {
	logical.Storage
	mu       sync.Mutex
	prefixes []string
}

func (s *refusePrefixes) refuse(prefixes ...string) {
	s.mu.Lock()
	s.prefixes = prefixes
	s.mu.Unlock()
}

func (s *refusePrefixes) Put(ctx context.Context, entry *logical.StorageEntry) error {
	s.mu.Lock()
	prefixes := s.prefixes
	s.mu.Unlock()
	for _, p := range prefixes {
		if len(entry.Key) >= len(p) && entry.Key[:len(p)] == p {
			return errRefusedForTest
		}
	}
	return s.Storage.Put(ctx, entry)
}

var errRefusedForTest = errors.New("storage unavailable (test)")

// Sequence: a connection is imported with a refresh token and an
// expires_at of 1970-01-01T00:00:00Z (Unix 0, what exports write for "unknown"; accepted: the token is simply due). save()
// schedules it before the epoch and writes its mark with a negative
// next ("…~ok~-<ms>"), which parseScheduleMark refuses (next < 0). A start
// records the marks complete; the check's mend writes the same unparseable
// key again and so never fixes it. The plugin restarts: ready from marks,
// the connection (due since before it was imported) is not queued at all
// until the check reaches it, on every restart until a refresh moves it.
// Breaks: queued no later than its entry after queue_ready (late refresh).
func TestAttackMarkBeforeTheEpochIsNeverRestored(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.CreateOperation, "connections/github/old", map[string]any{
		"access_token": "a", "refresh_token": srv.IssueRefreshToken(), "expires_at": "1970-01-01T00:00:00Z",
	})
	checkedStart(t, e.storage)

	gate := newGatedStorage(e.storage)
	defer close(gate.release)
	restarted := startOn(t, gate)
	waitFor(t, "queue ready from marks", restarted.b.engine.Ready)
	queuedAsStored(t, restarted, e.storage, "connections/github/old")
}

// Sequence: c1 is imported expiring in 3 h; a start records the marks
// complete; c1 is updated to expire in 50 min while storage refuses the old
// mark's delete: marks [~2h45m, ~35m], its entry's the second (reachable:
// "left beside the new one"). A new process starts; before it lists the
// marks, a forced refresh gets a 3-hour token while storage refuses the
// connection's puts and its WAL record (an entry over storage's size limit
// does that; the tiny mark still goes in): the new mark (~2h45m) is
// written, the entry is held unsaved in memory with no record. The check
// then reads c1's stored entry, finds its listed marks differ, and
// mendScheduleMarks loads the HELD entry (loadLocked prefers it), keeps
// its mark and deletes the stored entry's. The process stops before
// storage takes the held entry (its tokens are lost, as they would be
// without marks; the stored refresh token still works at a provider that
// does not rotate). The next start is ready from the marks with c1 queued
// ~2 h after what its stored entry says.
// Breaks: queued no later than the stored entry's next_refresh_at; the
// check changed marks to match an entry that storage never held.
func TestAttackCheckReplacesTheStoredMarkByAHeldEntrys(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	checkedStart(t, e.storage)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "none/", failDeletePrefix: scheduleMarkPrefix}
	e.storage = flaky
	flaky.failDeletes.Store(1)
	e.mustDo(logical.UpdateOperation, "connections/github/c1", map[string]any{"expires_in": 3000})
	inner := flaky.Storage
	if n := len(storedMarks(t, inner)); n != 2 {
		t.Fatalf("%d marks, want the old one beside the new", n)
	}

	gated := &listGate{refusePrefixes: refusePrefixes{Storage: inner}, release: make(chan struct{})}
	b := startOn(t, gated)
	srv.SetExpiresIn(3 * 3600)
	gated.refuse(connectionPrefix, "wal/")
	b.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	if b.b.store.Unsaved() != 1 {
		t.Fatal("the refreshed entry is not held unsaved")
	}
	close(gated.release)
	waitFor(t, "queue checked", func() bool { return b.b.engine.Stats().QueueChecked })
	b.b.Cleanup(context.Background()) // the process stops; the held entry had no record

	gate := newGatedStorage(inner)
	defer close(gate.release)
	restarted := startOn(t, gate)
	waitFor(t, "queue ready from marks", restarted.b.engine.Ready)
	queuedAsStored(t, restarted, inner, "connections/github/c1")
}

// listGate holds the start's list of the schedule marks until release is
// closed, and refuses puts as refusePrefixes does.
type listGate struct {
	refusePrefixes
	release chan struct{}
}

func (g *listGate) List(ctx context.Context, prefix string) ([]string, error) {
	if prefix == scheduleMarkPrefix {
		<-g.release
	}
	return g.Storage.List(ctx, prefix)
}

// Sequence: an OAuth connection's metadata is updated (no token, no expiry
// change), or the periodic hook flushes its proxied-call count. save()
// schedules it again, and NextRefresh draws a new jitter on every save, so
// its mark moves: a put and a delete under schedule/ beside the entry's
// put, three writes where one was, on every save of every token connection
// (the proxied-call flush saves each busy connection every minute). The
// commit message counts "two per schedule change (a refresh)".
// Breaks: the write cost claimed (performance, cosmetic); also each such
// save replaces the queue time a refresh set.
func TestAttackMetadataUpdateMovesTheMark(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	counting := &prefixWritesStorage{Storage: e.storage, prefix: scheduleMarkPrefix}
	e.storage = counting
	for i := range 5 {
		e.mustDo(logical.UpdateOperation, "connections/github/c1", map[string]any{"metadata": map[string]any{"n": i}})
	}
	if n := counting.puts.Load() + counting.deletes.Load(); n != 0 {
		t.Fatalf("5 metadata updates wrote %d schedule marks (puts and deletes), want 0", n)
	}
}

// Sequence: as in TestAttackRefusedMarkOfIssuedSaveQueuesLateAfterRestart,
// c1's current mark is missing (an issued save whose mark storage refused)
// and only its old, later mark remains. The plugin restarts: ready from the
// marks, c1 queued late. The check's one read of c1 fails once (a storage
// hiccup): EachSchedule counts it out and the check returns the error;
// nothing ever runs the check again, so c1 stays queued at its stale mark
// for the whole life of the process (until its late refresh), and the
// marks are not mended either. Before this commit the same hiccup left
// queue_ready false; now queue_ready is true and only queue_checked says
// anything.
// Breaks: "queued no later than its entry"; a failed check is never retried.
func TestAttackFailedCheckIsNeverRetried(t *testing.T) {
	flaky := refreshWithItsMarkRefused(t)

	hiccup := &failFirstGet{Storage: flaky.Storage, key: connectionKey("github", "c1")}
	restarted := startOn(t, hiccup)
	waitFor(t, "the check to end", func() bool {
		return strings.Contains(restarted.logs.String(), "checking the refresh queue against every connection")
	})
	restarted.tick() // the periodic hook runs (and refreshes nothing due)
	time.Sleep(50 * time.Millisecond)
	queuedAsStored(t, restarted, flaky.Storage, "connections/github/c1")
}

// failFirstGet fails the first Get of key.
type failFirstGet struct {
	logical.Storage
	key    string
	failed atomic.Bool
}

func (s *failFirstGet) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if key == s.key && s.failed.CompareAndSwap(false, true) {
		return nil, errRefusedForTest
	}
	return s.Storage.Get(ctx, key)
}

// Sequence: c1 is imported (mark M1). Storage refuses connection puts while
// a forced refresh gets a new token: the new mark M2 is written, the entry
// is held unsaved (M1 stays, its entry still stored). c1 is deleted:
// deleteLocked loads the HELD entry (loadLocked prefers it) and drops its
// mark M2 only. M1 outlives the connection: the next start queues a
// refresh of nothing and counts a token connection that is gone (status
// refresh_status_counts) until its check ends.
// Breaks: "a delete removes the mark after the entry" (cosmetic).
func TestAttackDeleteOfAHeldConnectionLeavesTheStoredMark(t *testing.T) {
	e, _, refusing := refreshHeldUnsaved(t, 3600)
	e.mustDo(logical.DeleteOperation, "connections/github/c1", nil)
	if got := storedMarks(t, refusing.Storage); len(got) != 0 {
		t.Fatalf("marks %v left after the connection's delete", got)
	}
}

// Sequence: a mark name that parses but is not how scheduleMarkKey writes
// it ("c1~ok~+5", "c1~ok~05": ParseInt takes a sign and leading zeros) is
// in storage (a foreign or hand write: not reachable by this release's
// own writes). Every check "mends" it by deleting scheduleMarkKey of the
// parsed mark, another key, so it stays forever, and every start queues
// c1 at 1970 from it and writes nothing that would drop it.
// Breaks: the check's promise to delete the marks that differ from the
// entry (cosmetic: an early refresh each start).
func TestAttackMarkWrittenOtherwiseIsNeverDeleted(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	ctx := context.Background()
	for _, name := range []string{"c1~ok~+5", "c1~ok~05"} {
		if err := e.storage.Put(ctx, &logical.StorageEntry{Key: scheduleMarksPrefix("github") + name, Value: scheduleMarkValue}); err != nil {
			t.Fatal(err)
		}
	}
	checkedStart(t, e.storage)
	checkedStart(t, e.storage)
	if got, want := storedMarks(t, e.storage), []string{markOfStored(t, e.storage, "github", "c1")}; !slices.Equal(got, want) {
		t.Fatalf("marks after two checks %v, want %v", got, want)
	}
}
