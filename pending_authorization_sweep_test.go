// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// putStates stores n pending authorizations of the github integration,
// for connections prefix0…, expiring at expiresAt.
func putStates(t *testing.T, e *testEnv, prefix string, n int, expiresAt time.Time) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("%s%d", prefix, i)
		st := &pendingAuthorization{Integration: "github", ConnectionID: id, ExpiresAt: expiresAt}
		if err := e.b.pendingAuths.Put(t.Context(), e.storage, hashState(id), st); err != nil {
			t.Fatal(err)
		}
	}
}

// initializeMount runs the backend's initialization, as Vault does when it
// mounts or unseals.
func initializeMount(t *testing.T, e *testEnv) {
	t.Helper()
	if err := e.b.Initialize(t.Context(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
}

// pendingStates is how many pending authorizations storage holds.
func pendingStates(t *testing.T, e *testEnv) int {
	t.Helper()
	keys, err := e.storage.List(t.Context(), statePrefix)
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// TestStateSweepListsOnlyExpiredStates: a sweep lists the expired states,
// a page of which it deletes, and no key of a state still pending; a sweep
// with nothing expired lists next to nothing, however many are pending.
func TestStateSweepListsOnlyExpiredStates(t *testing.T) {
	e, _ := authEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now
	initializeMount(t, e)
	const live, expired = 5000, stateSweepPage + 500
	putStates(t, e, "live", live, now().Add(time.Hour))
	putStates(t, e, "soon", expired, now().Add(time.Minute))
	advance(2 * time.Minute)
	counting := &listCountingStorage{Storage: e.storage}
	sweep := func() int64 {
		t.Helper()
		before := counting.keys.Load()
		if err := e.b.pendingAuths.SweepExpired(t.Context(), counting); err != nil {
			t.Fatal(err)
		}
		return counting.keys.Load() - before
	}
	if n := sweep(); n > expired+100 {
		t.Fatalf("a sweep listed %d keys for %d expired states of %d", n, expired, live+expired)
	}
	if left := pendingStates(t, e); left != live+expired-stateSweepPage {
		t.Fatalf("%d states left after one sweep, want %d", left, live+expired-stateSweepPage)
	}
	sweep()
	if left := pendingStates(t, e); left != live {
		t.Fatalf("%d states left after two sweeps, want the %d live ones", left, live)
	}
	if n := sweep(); n > 10 {
		t.Fatalf("a sweep with nothing expired listed %d keys", n)
	}
}

// TestStateSweepCleansStatesOfEarlierVersions: a pending authorization
// stored before the sweep's expiry index existed is swept all the same,
// with its connection's index entry.
func TestStateSweepCleansStatesOfEarlierVersions(t *testing.T) {
	e, _ := authEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now
	hash := hashState("earlier")
	putJSON(t.Context(), e.storage, stateKey(hash), &pendingAuthorization{Integration: "github", ConnectionID: "old", ExpiresAt: now().Add(time.Minute)})
	putJSON(t.Context(), e.storage, stateIndexKey("github", "old"), &stateIndexEntry{StateHash: hash})
	initializeMount(t, e) // the upgraded plugin starts
	advance(2 * time.Minute)
	if err := e.b.pendingAuths.SweepExpired(t.Context(), e.storage); err != nil {
		t.Fatal(err)
	}
	if left := pendingStates(t, e); left != 0 {
		t.Fatalf("%d states left", left)
	}
	if idx, _ := e.storage.List(t.Context(), stateIndexPrefix+"github/"); len(idx) != 0 {
		t.Fatalf("index entries left: %v", idx)
	}
}
