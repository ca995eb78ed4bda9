// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// sessionsCreatable creates sessions until max_sessions refuses one (at
// most tries) and returns how many it created.
func sessionsCreatable(e *testEnv, tries int) int {
	e.t.Helper()
	created := 0
	for i := 0; i < tries; i++ {
		if _, status := e.do(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "c2"}); status == http.StatusOK {
			created++
		}
	}
	return created
}

// Revokes of one session that wait on its lock together lower the count
// once: the later ones find it gone.
func TestSessionConcurrentRevokesCountOnce(t *testing.T) {
	e := sessionEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_sessions": 1})
	secret, id := newSession(e, map[string]any{"connection_id": "c1"})
	unlock := e.b.sessions.Lock(hashSessionSecret(secret))
	statuses := make([]int, 5)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.DeleteOperation, Path: "sessions/" + id, Storage: e.storage})
			if err == nil && resp != nil && resp.Data != nil {
				if s, ok := resp.Data[logical.HTTPStatusCode].(int); ok {
					statuses[i] = s
				}
			}
		}()
	}
	// Let every revoke reach the session's lock before it is released.
	time.Sleep(300 * time.Millisecond)
	unlock()
	wg.Wait()
	if created := sessionsCreatable(e, 5); created != 1 {
		t.Fatalf("max_sessions=1: %d sessions created after concurrent revokes of one session (%d stored, revoke statuses %v)", created, countPrefix(e, sessionIDPrefix), statuses)
	}
}

// A revoke that deleted the id entry but failed to delete the session
// lowered the count already; the sweep that later deletes the session does
// not lower it again.
func TestSessionSweepAfterFailedRevokeCountsOnce(t *testing.T) {
	e := sessionEnv(t)
	clock, advance := fixedClock(time.Now())
	e.b.now = clock
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_sessions": 1})
	_, id := newSession(e, map[string]any{"connection_id": "c1", "ttl": "1m"})
	flaky := &flakyStorage{Storage: e.storage, failDeletePrefix: sessionPrefix}
	flaky.failDeletes.Store(1)
	if _, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.DeleteOperation, Path: "sessions/" + id, Storage: flaky}); err == nil {
		t.Fatal("the revoke whose session delete failed reported no error")
	}
	if n := countPrefix(e, sessionPrefix); n != 1 {
		t.Fatalf("%d sessions stored after the failed revoke, want the one left for the sweep", n)
	}
	advance(3 * time.Minute)
	if err := e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(e, sessionPrefix); n != 0 {
		t.Fatalf("%d sessions stored after the sweep, want 0", n)
	}
	if created := sessionsCreatable(e, 3); created != 1 {
		t.Fatalf("max_sessions=1: %d sessions created after a failed revoke and the sweep", created)
	}
}

// TestSweepSkipsASessionWhoseLockIsHeld: a callback holds its session's
// lock across the provider exchange (up to the provider timeout); the
// periodic hook, which also runs the refresh tick, does not wait for it.
// The busy session is swept by a later run.
func TestSweepSkipsASessionWhoseLockIsHeld(t *testing.T) {
	e := sessionEnv(t)
	clock, advance := fixedClock(time.Now())
	e.b.now = clock
	secret, _ := newSession(e, map[string]any{"connection_id": "c1", "ttl": "1m"})
	before := countPrefix(e, sessionIDPrefix)
	unlock := e.b.sessions.Lock(hashSessionSecret(secret))
	advance(3 * time.Minute)
	done := make(chan error, 1)
	go func() { done <- e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("periodic: %v", err)
		}
	case <-time.After(2 * time.Second):
		unlock()
		<-done
		t.Fatal("the periodic hook waited on a session lock held by another request")
	}
	unlock()
	if got := countPrefix(e, sessionIDPrefix); got != before {
		t.Fatalf("a session whose lock was held was swept anyway: %d of %d left", got, before)
	}
	if err := e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	if got := countPrefix(e, sessionIDPrefix); got != before-1 {
		t.Fatalf("the next sweep did not remove the expired session: %d left", got)
	}
}
