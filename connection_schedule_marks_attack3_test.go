// SPDX-License-Identifier: MPL-2.0

// Third adversarial review of the schedule marks, of the fixes in e7eeb1e
// (connection_schedule_marks.go, connection_unsaved.go,
// internal/refresh/engine.go): each test fails on e7eeb1e and says the
// sequence and what breaks.

package connect

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/refresh"
)

// Sequence: c1's refreshed tokens are held unsaved (storage refuses the
// connection's entry, not its mark). Every periodic tick SaveUnsaved runs
// save(held entry over held entry, held=true), the put is refused again and
// keepUnsaved builds the new unsavedEntry from old.marks plus previous's and
// c's marks: the held entry's mark, the same each time, is appended twice
// per tick (10 ticks: 22 marks, 2 distinct). A connection held for 10 hours at one tick a minute carries
// ~1200 copies of one mark (per held connection, and per refresh attempt).
// Breaks: memory of a held entry bounded (cosmetic: unbounded growth; the
// marks deleted once stored are deduplicated, so storage is not hurt).
func TestAttack3HeldEntryMarksGrowEveryRetry(t *testing.T) {
	e, _, refusing := refreshHeldUnsaved(t, 5*3600)
	key := connectionKey("github", "c1")
	for range 10 { // 10 periodic ticks with storage still refusing
		_ = e.b.store.SaveUnsaved(context.Background(), refusing)
	}
	marks := e.b.store.unsavedMarks(key)
	distinct := map[scheduleMark]bool{}
	for _, m := range marks {
		distinct[m] = true
	}
	if len(marks) > len(distinct) {
		t.Errorf("after 10 refused retries the held entry carries %d marks, %d distinct: grows without bound", len(marks), len(distinct))
	}
}

// deleteRefusing refuses Delete of one key while refuse is set.
type deleteRefusing struct {
	*refusePrefixes
	key    string
	refuse atomic.Bool
}

func (d *deleteRefusing) Delete(ctx context.Context, key string) error {
	if d.refuse.Load() && key == d.key {
		return errRefusedForTest
	}
	return d.refusePrefixes.Delete(ctx, key)
}

// Sequence: c1 is imported (stored entry, mark A). A refresh's entry is
// refused (its mark B written): held unsaved, unsavedEntry.marks = [A, B].
// The user deletes c1; storage refuses the entry's delete, so deleteLocked
// calls rerecordUnsaved, which rebuilds the unsavedEntry from entry, walID,
// created and base only: marks are dropped. Storage heals; SaveUnsaved
// stores the held entry and dropEarlierMarks finds no unsaved marks: it
// drops only previous's (the held entry's, B, equal to current) and the
// stored entry's A is left beside the current mark for good (until a start's
// check mends it; with marks complete the next start queues c1 early by A).
// Breaks: "every save leaves exactly its one current mark" (the e7eeb1e fix
// of TestAttack2SaveOverHeldEntryLeavesTheStoredEntrysMark undone by a
// failed delete); cosmetic (an early refresh, an extra mark).
func TestAttack3RerecordUnsavedForgetsTheEarlierMarks(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	key := connectionKey("github", "c1")
	refusing := &deleteRefusing{refusePrefixes: &refusePrefixes{Storage: e.storage}, key: key}
	e.storage = refusing
	srv.SetExpiresIn(5 * 3600)
	refusing.refusePrefixes.refuse(connectionPrefix)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	if e.b.store.Unsaved() != 1 {
		t.Fatal("the refreshed entry is not held unsaved")
	}
	before := len(e.b.store.unsavedMarks(key))
	refusing.refuse.Store(true)
	resp, _ := e.do(logical.DeleteOperation, "connections/github/c1", nil)
	if resp == nil || !resp.IsError() {
		t.Logf("delete with the entry's delete refused: %v", resp)
	}
	refusing.refuse.Store(false)
	if after := len(e.b.store.unsavedMarks(key)); after < before {
		t.Errorf("a failed delete dropped the held entry's earlier marks: %d before, %d after", before, after)
	}
	refusing.refusePrefixes.refuse()
	if err := e.b.store.SaveUnsaved(context.Background(), refusing); err != nil {
		t.Fatal(err)
	}
	if got, want := storedMarks(t, refusing.refusePrefixes.Storage), markOfStored(t, refusing.refusePrefixes.Storage, "github", "c1"); len(got) != 1 || got[0] != want {
		t.Errorf("marks after the held entry was stored %v, want only %v", got, want)
	}
}

// Sequence: the backend's clock (b.now, which periodic hands Recheck) is
// not the wall clock: a test clock, or a backend clock set behind. The
// start's build fails, then Recheck's first check fails too: build() sets
// recheckAt from time.Now() (+1 min), while Recheck compares it with the
// now it is given. A clock 1 day behind the wall never reaches recheckAt:
// a failed check is never run again, 2 hours later by that clock, though
// the pause is at most an hour (the queue is never checked, never ready if
// the build never became ready). One ahead skips every pause.
// Breaks: Recheck backs off by the clock it is given (late refresh where
// the clocks differ; in production both are time.Now: test-only).
func TestAttack3RecheckBackoffMixesClocks(t *testing.T) {
	e := refresh.NewEngine()
	defer e.Stop()
	var runs atomic.Int32
	fail := func(context.Context, func()) error { runs.Add(1); return errRefusedForTest }
	clock := time.Now().Add(-24 * time.Hour) // the backend's clock
	e.Start(fail)
	waitFor(t, "the check ran", func() bool { return runs.Load() == 1 })
	time.Sleep(100 * time.Millisecond) // its failure recorded, building over
	e.Recheck(clock, fail)             // first retry: at once
	waitFor(t, "the check ran", func() bool { return runs.Load() == 2 })
	time.Sleep(100 * time.Millisecond)
	e.Recheck(clock.Add(2*time.Hour), fail) // beyond the longest pause
	time.Sleep(200 * time.Millisecond)
	if runs.Load() != 3 {
		t.Errorf("2 h after the second failure by the clock Recheck is given, the check ran %d times, want 3", runs.Load())
	}
}

// Sequence: c1 is imported (stored entry, mark A). Storage refuses the
// connection's entry (not its marks) for a while: a refresh's tokens
// (5 h, mark B) are held unsaved, then a second refresh of the held entry
// (2 h, mark C) is held in turn; unsavedEntry.marks = [A, B, B, C]. The
// user deletes c1 and storage takes it: deleteLocked drops the marks of
// the held entry (C) and of the stored one (A) only, not unsavedEntry.marks:
// B is an orphan mark that every start restores as a queued connection (a
// refresh that finds nothing, a ghost in the stats) until its check
// deletes it. e7eeb1e records those marks for the save; the delete of a
// held connection does not use them.
// Breaks: "a deleted connection leaves no mark" (cosmetic).
func TestAttack3DeleteOfAHeldEntryLeavesItsIntermediateMarks(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	refusing := &refusePrefixes{Storage: e.storage}
	e.storage = refusing
	refusing.refuse(connectionPrefix)
	srv.SetExpiresIn(5 * 3600)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	srv.SetExpiresIn(2 * 3600)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	if e.b.store.Unsaved() != 1 {
		t.Fatal("the refreshed entry is not held unsaved")
	}
	refusing.refuse()
	e.mustDo(logical.DeleteOperation, "connections/github/c1", nil)
	if got := storedMarks(t, refusing.Storage); len(got) != 0 {
		t.Errorf("marks %v left after the held connection's delete", got)
	}
}
