// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// TestDeletedReceiversAttemptInFlightIsNotKept: an attempt in flight while
// its receiver is deleted does not write its entry back, so a new receiver
// of the same name inherits none of the deleted one's events, now or after
// a restart.
func TestDeletedReceiversAttemptInFlightIsNotKept(t *testing.T) {
	s := &logical.InmemStorage{}
	e := newEventsEnv(t, s, retryHourly)
	old := newHookReceiver(t, always(0)) // hangs past the sender's timeout
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": old.URL})
	recordTestEvent(t, e, eventConnectionCreated, "a")
	waitFor(t, "the attempt in flight", func() bool { return len(old.requests()) == 1 })
	e.mustDo(logical.DeleteOperation, "webhooks/app", nil)
	time.Sleep(600 * time.Millisecond) // the attempt times out after 300ms
	successor := newHookReceiver(t, always(http.StatusOK))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": successor.URL})
	if got := e.mustDo(logical.ReadOperation, "webhooks/app", nil)["pending"]; got != 0 {
		t.Errorf("a new receiver starts with %v pending events of the deleted one", got)
	}
	e.b.Cleanup(context.Background())
	e2 := newEventsEnv(t, s, retryHourly)
	waitFor(t, "the outbox to load", func() bool { return e2.b.outbox.stats().Ready })
	if st := e2.b.outbox.stats(); st.Pending > 0 {
		t.Fatalf("after a restart, %d of the deleted receiver's events are scheduled for the new receiver's URL", st.Pending)
	}
	if n := len(successor.requests()); n > 0 {
		t.Fatalf("the new receiver got %d of the deleted one's events", n)
	}
}

// TestPredecessorsPendingEntryIsNotDelivered: a pending entry a deleted
// receiver left behind (written by a recording that raced the delete) is
// dropped, not sent to a new receiver of the same name.
func TestPredecessorsPendingEntryIsNotDelivered(t *testing.T) {
	s := &logical.InmemStorage{}
	e := newEventsEnv(t, s, retryHourly)
	successor := newHookReceiver(t, always(http.StatusOK))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": successor.URL})
	stale := &outboxEntry{ID: "evt_0000000000000001aaaaaaaaaaaaaaaa", Type: eventConnectionCreated, Receiver: "app",
		ReceiverID: "a-deleted-receiver", Body: `{}`, NextAttemptAt: time.Now()}
	k := deliveryKey{"app", stale.ID}
	if err := putJSON(t.Context(), s, k.pendingPath(), stale); err != nil {
		t.Fatal(err)
	}
	e.b.Cleanup(context.Background())
	e2 := newEventsEnv(t, s, retryHourly)
	waitFor(t, "the outbox to load", func() bool { return e2.b.outbox.stats().Ready })
	recordTestEvent(t, e2, eventConnectionCreated, "fresh")
	waitFor(t, "the fresh event", func() bool { return len(successor.requests()) >= 1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(successor.requests()); n != 1 {
		t.Fatalf("the new receiver got %d deliveries, want only its own event", n)
	}
	if entry, err := s.Get(t.Context(), k.pendingPath()); err != nil || entry != nil {
		t.Fatalf("the predecessor's pending entry is still stored (%v)", err)
	}
}
