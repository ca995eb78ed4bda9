// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/webhook"
)

func TestWebhookDeliversSignedEvent(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{})
	rcv := newHookReceiver(t, always(http.StatusNoContent))
	created := e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	secret, _ := created["secret"].(string)
	if _, err := webhook.ParseSecret(secret); err != nil {
		t.Fatalf("create returned no usable generated secret: %v", err)
	}
	read := e.mustDo(logical.ReadOperation, "webhooks/app", nil)
	if _, shown := read["secret"]; shown || read["secret_set"] != true {
		t.Fatalf("read shows the secret or no secret_set: %v", read)
	}

	recordTestEvent(t, e, eventConnectionCreated, "c1")
	waitFor(t, "the delivery", func() bool { return len(rcv.accepted()) == 1 })
	req := rcv.requests()[0]
	if verifyStandardWebhook(t, secret, req.header, req.body) != 1 {
		t.Fatalf("signature %q does not verify", req.header.Get("webhook-signature"))
	}
	if err := verifyWithLibrary(t, secret, req.header, req.body); err != nil {
		t.Fatalf("the Standard Webhooks library refuses the delivery: %v", err)
	}
	other, _ := webhook.GenerateSecret()
	if verifyWithLibrary(t, other, req.header, req.body) == nil {
		t.Fatal("the library verifies the delivery with an unrelated secret")
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body) != 4 || body["type"] == nil || body["id"] == nil || body["timestamp"] == nil || body["data"] == nil {
		t.Fatalf("body has members other than type, id, timestamp, data: %s", req.body)
	}
	var ev struct {
		Type, ID, Timestamp string
		Data                eventData
	}
	json.Unmarshal(req.body, &ev)
	if ev.Type != "connection.created" || ev.ID != req.header.Get("webhook-id") || ev.Data.ConnectionID != "c1" || ev.Data.Tags["organization_id"] != "acme" {
		t.Fatalf("body %s, header id %q", req.body, req.header.Get("webhook-id"))
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err != nil {
		t.Fatalf("timestamp %q: %v", ev.Timestamp, err)
	}
	waitFor(t, "the delivery figures", func() bool {
		return e.mustDo(logical.ReadOperation, "webhooks/app", nil)["delivered"] == int64(1)
	})
	read = e.mustDo(logical.ReadOperation, "webhooks/app", nil)
	if read["pending"] != 0 || read["last_status"] != http.StatusNoContent || read["last_delivery_at"] == "" || read["last_error"] != "" {
		t.Fatalf("read after delivery: %v", read)
	}
}

// TestWebhookRetriesUntilReceiverRecovers: a receiver answering 500, then
// 429, then hanging past the timeout, then 200, gets every event, each
// accepted exactly once, with the same webhook-id on every attempt.
func TestWebhookRetriesUntilReceiverRecovers(t *testing.T) {
	reliabilityCase(t, "a webhook receiver answering 500, then 429, then not answering within the timeout",
		"every event is retried with the same webhook-id and accepted exactly once when the receiver recovers")
	e := newEventsEnv(t, &logical.InmemStorage{})
	var mu sync.Mutex
	failures := []int{500, 429, 0, 500, 429, 0}
	rcv := newHookReceiver(t, func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		if n < len(failures) {
			return failures[n]
		}
		return http.StatusOK
	})
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	for _, id := range []string{"a", "b", "c"} {
		recordTestEvent(t, e, eventRefreshFailed, id)
	}
	waitFor(t, "three accepted events", func() bool { return len(rcv.accepted()) == 3 })
	time.Sleep(200 * time.Millisecond) // room for a wrong extra delivery
	for id, n := range rcv.accepted() {
		if n != 1 {
			t.Fatalf("event %s accepted %d times", id, n)
		}
	}
	statuses := map[int]int{}
	for _, r := range rcv.requests() {
		statuses[r.status]++
	}
	if statuses[500] != 2 || statuses[429] != 2 || statuses[0] != 2 || statuses[200] != 3 {
		t.Fatalf("answers given: %v", statuses)
	}
	// The figures are written at most once per figuresEvery.
	var read map[string]any
	waitFor(t, "the figures of every attempt", func() bool {
		read = e.mustDo(logical.ReadOperation, "webhooks/app", nil)
		return read["failed"] == int64(6) && read["delivered"] == int64(3)
	})
	if read["pending"] != 0 {
		t.Fatalf("figures: %v", read)
	}
	ids := map[string]bool{}
	for _, r := range rcv.requests() {
		ids[r.header.Get("webhook-id")] = true
	}
	if len(ids) != 3 {
		t.Fatalf("%d distinct webhook-ids over the retries, want 3", len(ids))
	}
}

func TestWebhookDeadAfterSchedule(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{}, giveUpAfter(150*time.Millisecond))
	rcv := newHookReceiver(t, always(http.StatusBadGateway))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	recordTestEvent(t, e, eventConnectionCreated, "a")
	waitFor(t, "the event to die", func() bool { return e.b.outbox.stats().Dead == 1 })
	status := e.mustDo(logical.ReadOperation, "status", nil)
	if status["events_dead"] != 1 || status["events_pending"] != 0 {
		t.Fatalf("status: %v", status)
	}
	dead := e.mustDo(logical.ListOperation, "webhooks/app/dead", nil)
	ids := dead["keys"].([]string)
	info := dead["key_info"].(map[string]any)[ids[0]].(map[string]any)
	if len(ids) != 1 || info["last_status"] != http.StatusBadGateway || info["type"] != "connection.created" || info["attempts"].(int) < 2 {
		t.Fatalf("dead list: %v", dead)
	}
	attempts := len(rcv.requests())
	time.Sleep(200 * time.Millisecond)
	if len(rcv.requests()) != attempts {
		t.Fatal("a dead event is still tried")
	}
	// The figures are written at most once per figuresEvery.
	waitFor(t, "the figures of the last attempt", func() bool {
		read := e.mustDo(logical.ReadOperation, "webhooks/app", nil)
		return read["dead"] == 1 && read["last_error"] == "receiver answered 502"
	})
}

// TestWebhookStandbyNeverDelivers: a performance standby that starts (and
// ticks) on storage holding pending events sends none of them; status says
// it does not deliver.
func TestWebhookStandbyNeverDelivers(t *testing.T) {
	rcv := newHookReceiver(t, always(http.StatusOK))
	active := newTestEnv(t)
	active.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	recordTestEvent(t, active, eventConnectionCreated, "a") // no worker: stays pending

	e, _ := replicaEnv(t, consts.ReplicationPerformanceStandby)
	e.storage = active.storage
	initializeMount(t, e)
	t.Cleanup(func() { e.b.Cleanup(context.Background()) })
	if err := e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(rcv.requests()); n != 0 {
		t.Fatalf("a performance standby sent %d requests", n)
	}
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "status", Storage: e.storage})
	if err != nil || resp.Data["events_delivering"] != false {
		t.Fatalf("status on a standby: %v %v", err, resp)
	}
}

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

// concurrencyReceiver answers after delay and records the most requests it
// had in flight at once.
type concurrencyReceiver struct {
	*httptest.Server
	inFlight, most, got atomic.Int64
}

func newConcurrencyReceiver(t *testing.T, delay time.Duration) *concurrencyReceiver {
	r := &concurrencyReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := r.inFlight.Add(1)
		for m := r.most.Load(); n > m && !r.most.CompareAndSwap(m, n); m = r.most.Load() {
		}
		time.Sleep(delay)
		r.inFlight.Add(-1)
		r.got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

// TestDeliveryConcurrencyIsPerReceiver: a receiver that answers slowly
// gets defaultDeliveryConcurrency attempts at once, and its backlog
// holds back no other receiver's events.
func TestDeliveryConcurrencyIsPerReceiver(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{}, func(s *webhook.Schedule) {})
	e.b.outbox.sender = webhook.NewSender(5*time.Second, nil)
	slow := newConcurrencyReceiver(t, 300*time.Millisecond)
	e.mustDo(logical.CreateOperation, "webhooks/slow", map[string]any{"url": slow.URL, "events": []string{string(eventConnectionCreated)}})
	fast := newConcurrencyReceiver(t, 0)
	e.mustDo(logical.CreateOperation, "webhooks/fast", map[string]any{"url": fast.URL, "events": []string{string(eventConnectionDeleted)}})
	// All recorded first, the fast receiver's last, then delivered.
	e.b.outbox.stopDelivery()
	const n = 64
	for i := range n {
		recordTestEvent(t, e, eventConnectionCreated, fmt.Sprintf("c%d", i))
	}
	recordTestEvent(t, e, eventConnectionDeleted, "c1")
	e.b.outbox.startDelivery(e.storage)
	waitFor(t, "the fast receiver's event", func() bool { return fast.got.Load() == 1 })
	if got := slow.got.Load(); got >= n/2 {
		t.Errorf("the fast receiver's event waited until the slow one had %d of its %d", got, n)
	}
	waitFor(t, "the slow receiver's events", func() bool { return slow.got.Load() == n })
	if most := slow.most.Load(); most != defaultDeliveryConcurrency {
		t.Fatalf("the slow receiver had at most %d attempts at once, want %d", most, defaultDeliveryConcurrency)
	}
}

// TestDeliveryConcurrencyIsTheReceiversSetting: a receiver's concurrency
// bounds its attempts in flight, above the default as below it, and a
// change applies to the attempts that start after it.
func TestDeliveryConcurrencyIsTheReceiversSetting(t *testing.T) {
	for _, limit := range []int{3, 40} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			e := newEventsEnv(t, &logical.InmemStorage{}, func(s *webhook.Schedule) {})
			e.b.outbox.sender = webhook.NewSender(5*time.Second, nil)
			slow := newConcurrencyReceiver(t, 300*time.Millisecond)
			e.mustDo(logical.CreateOperation, "webhooks/slow", map[string]any{"url": slow.URL, "concurrency": limit})
			if got := e.mustDo(logical.ReadOperation, "webhooks/slow", nil)["concurrency"]; got != limit {
				t.Fatalf("read concurrency %v, want %d", got, limit)
			}
			e.b.outbox.stopDelivery()
			n := 2 * limit
			for i := range n {
				recordTestEvent(t, e, eventConnectionCreated, fmt.Sprintf("c%d", i))
			}
			e.b.outbox.startDelivery(e.storage)
			waitFor(t, "the receiver's events", func() bool { return slow.got.Load() == int64(n) })
			if most := slow.most.Load(); most != int64(limit) {
				t.Fatalf("at most %d attempts at once, want %d", most, limit)
			}
		})
	}
}

// slowStatsStorage takes 20 ms for each write of delivery figures, as a
// replicated storage may, and counts them.
type slowStatsStorage struct {
	logical.Storage
	statsPuts atomic.Int64
}

func (s *slowStatsStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if strings.HasPrefix(e.Key, webhookStatsPrefix) {
		s.statsPuts.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
	return s.Storage.Put(ctx, e)
}

// TestDeliveryFiguresAreWrittenTogether: attempts that end while the
// receiver's figures are being written are stored together by the next
// write, rather than each waiting its turn for a write of its own; the
// stored figures end exact.
func TestDeliveryFiguresAreWrittenTogether(t *testing.T) {
	s := &slowStatsStorage{Storage: &logical.InmemStorage{}}
	e := newEventsEnv(t, s)
	rcv := newConcurrencyReceiver(t, 0)
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	e.b.outbox.stopDelivery()
	const n = 64
	for i := range n {
		recordTestEvent(t, e, eventConnectionCreated, fmt.Sprintf("c%d", i))
	}
	s.statsPuts.Store(0)
	e.b.outbox.startDelivery(e.storage)
	waitFor(t, "the stored figures", func() bool {
		return e.mustDo(logical.ReadOperation, "webhooks/app", nil)["delivered"] == int64(n)
	})
	if puts := s.statsPuts.Load(); puts > n/2 {
		t.Fatalf("%d writes of the figures for %d attempts", puts, n)
	}
}

// TestOneConnectionsEventsArriveInOrder: with 16 attempts in flight to a
// receiver, the events of one connection still reach it one at a time, in
// the order they were recorded, while other connections' overlap.
func TestOneConnectionsEventsArriveInOrder(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{})
	e.b.outbox.sender = webhook.NewSender(5*time.Second, nil)
	var mu sync.Mutex
	var order []string // connection/event id, as they arrive
	var most, inFlight atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		var ev struct {
			ID   string    `json:"id"`
			Data eventData `json:"data"`
		}
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &ev)
		time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
		mu.Lock()
		order = append(order, ev.Data.ConnectionID+" "+ev.ID)
		mu.Unlock()
		inFlight.Add(-1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	e.b.outbox.stopDelivery()
	const conns, each = 8, 12
	for i := range conns * each {
		recordTestEvent(t, e, eventConnectionUpdated, fmt.Sprintf("c%d", i%conns))
	}
	e.b.outbox.startDelivery(e.storage)
	waitFor(t, "every event", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == conns*each })
	last := map[string]string{}
	for _, got := range order {
		conn, id, _ := strings.Cut(got, " ")
		if id <= last[conn] {
			t.Fatalf("%s's event %s arrived after its %s", conn, id, last[conn])
		}
		last[conn] = id
	}
	if most.Load() < 2 {
		t.Fatalf("at most %d attempts at once: connections did not overlap", most.Load())
	}
}

// TestStoppedDeliveryResumesItsBacklog: deliveries waiting for their
// receiver when the worker stops are delivered by the next worker of the
// same process, not left until a restart.
func TestStoppedDeliveryResumesItsBacklog(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{})
	e.b.outbox.sender = webhook.NewSender(5*time.Second, nil)
	rcv := newConcurrencyReceiver(t, 200*time.Millisecond)
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	e.b.outbox.stopDelivery()
	const n = 40
	for i := range n {
		recordTestEvent(t, e, eventConnectionCreated, fmt.Sprintf("c%d", i))
	}
	e.b.outbox.startDelivery(e.storage)
	waitFor(t, "the first attempts", func() bool { return rcv.inFlight.Load() > 0 })
	e.b.outbox.stopDelivery() // 16 in flight, the rest waiting
	e.b.outbox.startDelivery(e.storage)
	waitFor(t, "every event", func() bool { return e.b.outbox.stats().Pending == 0 })
}
