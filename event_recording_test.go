// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestEventRecordingFailure(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	events := captureEvents(e)
	events.setFail(errors.New("outbox unavailable"))

	// A write whose event cannot be recorded is stored, answers 500 so that
	// the caller repeats it, and owes its event to the periodic hook.
	msg := e.mustFail(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1"}, http.StatusInternalServerError)
	if !strings.Contains(msg, "connection.created") || !strings.Contains(msg, "repeat") {
		t.Fatalf("error = %q", msg)
	}
	if c, _ := getConnection(t.Context(), e.storage, "stripe", "acme"); c == nil {
		t.Fatal("the connection was not stored")
	}
	// A delete whose event cannot be recorded is done (the event is
	// recorded only once the entry is gone), owes its event and says so.
	resp, status := e.do(logical.DeleteOperation, "connections/stripe/acme", nil)
	if status/100 != 2 || resp == nil || !strings.Contains(strings.Join(resp.Warnings, " "), "connection.deleted") {
		t.Fatalf("a delete whose event failed: %d %v", status, resp)
	}
	// Still failing: the periodic hook says so and keeps it owed.
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: e.storage}); err == nil || !strings.Contains(err.Error(), "outbox unavailable") {
		t.Fatalf("periodic with the outbox failing: %v", err)
	}
	events.setFail(nil)
	e.tick()
	expectEvents(t, events, "acme", eventConnectionCreated, eventConnectionDeleted)
	e.tick()
	expectEvents(t, events, "acme")
}

func TestRefreshWhoseEventFailsStillServesTheToken(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 10*time.Minute)
	events := captureEvents(e)
	srv.Fail("server_error", http.StatusInternalServerError)
	events.setFail(errors.New("outbox unavailable"))
	e.mustFail(logical.UpdateOperation, "connections/github/c1/refresh", nil, http.StatusFailedDependency)
	srv.Fail("", 0)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	events.setFail(nil)
	e.tick()
	expectEvents(t, events, "c1", eventRefreshFailed, eventRefreshRecovered)
}

// blockingCapture holds its first recording until released, to show that a
// connection's next change waits for it.
type blockingCapture struct {
	eventCapture
	entered, release chan struct{}
	first            atomic.Bool
}

func (c *blockingCapture) record(ctx context.Context, s logical.Storage, typ eventType, data eventData) error {
	if c.first.CompareAndSwap(false, true) {
		close(c.entered)
		<-c.release
	}
	return c.eventCapture.record(ctx, s, typ, data)
}

// TestEventsAreRecordedUnderTheConnectionsLock: a write whose event is
// being recorded holds the connection, so a concurrent write of it records
// its event after, and a write of another connection does not wait.
func TestEventsAreRecordedUnderTheConnectionsLock(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	rec := &blockingCapture{entered: make(chan struct{}), release: make(chan struct{})}
	recordInto(e, rec)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.mustDo(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1"})
	}()
	<-rec.entered
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_2"})
	}()
	// Another connection is not held up.
	e.mustDo(logical.CreateOperation, "connections/stripe/other", map[string]any{"api_key": "sk_3"})
	time.Sleep(50 * time.Millisecond)
	if got := rec.take(); len(got) != 1 || got[0].data.ConnectionID != "other" {
		t.Fatalf("while acme's create records: %+v", got)
	}
	close(rec.release)
	wg.Wait()
	expectEvents(t, &rec.eventCapture, "acme", eventConnectionCreated, eventConnectionUpdated)
}

// TestOwedEventsBeyondTheBoundAreCountedAndLogged: events owed beyond
// maxOwedEvents are dropped, oldest first; each drop is logged (naming the
// connection, no secret) and counted, and status shows the owed events and
// the drops.
func TestOwedEventsBeyondTheBoundAreCountedAndLogged(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	events := captureEvents(e)
	events.setFail(errors.New("outbox unavailable"))
	for i := range 3 {
		e.mustFail(logical.CreateOperation, fmt.Sprintf("connections/stripe/first%d", i), map[string]any{"api_key": "sk_secret_first"}, http.StatusInternalServerError)
	}
	st := e.mustDo(logical.ReadOperation, "status", nil)
	if st["events_owed"] != 3 || st["events_owed_dropped"] != int64(0) {
		t.Fatalf("status before the bound: events_owed=%v events_owed_dropped=%v", st["events_owed"], st["events_owed_dropped"])
	}
	// Filling the bound through requests would take ten thousand of them.
	filler := &connectionEntry{Integration: "stripe", ConnectionID: "filler"}
	for range maxOwedEvents - 1 {
		e.b.store.owe([]owedEvent{{key: connectionKey("stripe", "filler"), typ: eventConnectionUpdated, data: eventDataOf(filler, nil)}})
	}
	st = e.mustDo(logical.ReadOperation, "status", nil)
	if st["events_owed"] != maxOwedEvents || st["events_owed_dropped"] != int64(2) {
		t.Fatalf("status beyond the bound: events_owed=%v events_owed_dropped=%v, want %d and 2", st["events_owed"], st["events_owed_dropped"], maxOwedEvents)
	}
	logs := e.logs.String()
	for _, dropped := range []string{"first0", "first1"} {
		if !strings.Contains(logs, dropped) {
			t.Errorf("no log line names the dropped event of %s", dropped)
		}
	}
	if strings.Contains(logs, "first2") || strings.Contains(logs, "sk_secret_first") {
		t.Errorf("the log names a kept event or carries a secret:\n%s", logs)
	}
	events.setFail(nil)
	e.tick()
	if got := len(events.take()); got != maxOwedEvents {
		t.Fatalf("%d owed events recorded after the outbox came back, want %d", got, maxOwedEvents)
	}
}

// TestOwedEventsKeepTheirTimeAndOrder: an event whose recording failed is
// recorded later with the time of its change and before every newer event
// of its connection, so that a receiver never sees a connection's events
// out of the order of its changes.
func TestOwedEventsKeepTheirTimeAndOrder(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	now, advance := fixedClock(time.Now().UTC())
	e.b.now = now
	events := captureEvents(e)
	events.setFail(errors.New("outbox unavailable"))
	created := now()
	e.mustFail(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1"}, http.StatusInternalServerError)
	events.setFail(nil)
	advance(time.Minute)
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_2"})
	e.tick()
	got := expectEvents(t, events, "acme", eventConnectionCreated, eventConnectionUpdated)
	// The newer one, recorded with its change, is stamped by the recorder.
	if !got[0].data.at.Equal(created) || !(got[1].data.at.IsZero() || got[1].data.at.After(created)) {
		t.Fatalf("times: created %v (want %v), updated %v", got[0].data.at, created, got[1].data.at)
	}
}

// TestOutboxStampsAnEventWithTheTimeOfItsChange: an event that carries the
// time of its change (an owed one) is stamped with it, not the time of its
// recording.
func TestOutboxStampsAnEventWithTheTimeOfItsChange(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{}, retryHourly)
	r := newHookReceiver(t, always(http.StatusInternalServerError))
	e.mustDo(logical.CreateOperation, "webhooks/r1", map[string]any{"url": r.URL})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := e.b.outbox.record(t.Context(), e.storage, eventConnectionCreated, eventData{Integration: "github", ConnectionID: "c1", at: at}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a delivery", func() bool { return len(r.requests()) > 0 })
	var body struct {
		Timestamp string `json:"timestamp"`
	}
	if err := json.Unmarshal(r.requests()[0].body, &body); err != nil || body.Timestamp != at.Format(time.RFC3339Nano) {
		t.Fatalf("timestamp %q (%v), want %s", body.Timestamp, err, at.Format(time.RFC3339Nano))
	}
}

// gatedRecorder logs the types it records, in order, and holds the first
// recording of hold until release is closed.
type gatedRecorder struct {
	mu      sync.Mutex
	types   []eventType
	hold    eventType
	held    chan struct{}
	release chan struct{}
	once    sync.Once
}

func (r *gatedRecorder) record(_ context.Context, _ logical.Storage, typ eventType, _ eventData) error {
	if typ == r.hold {
		r.once.Do(func() {
			close(r.held)
			<-r.release
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.types = append(r.types, typ)
	return nil
}

// TestOwedEventPrecedesTheDeleteOfAForcedIntegrationDelete (review rev2):
// docs/events.md promises that an owed event is recorded before any newer
// event of its connection. RecordOwed records a connection's owed events
// under the connection's lock; since wal2 a forced integration delete takes
// no connection lock, so its connection.deleted is recorded while the owed
// connection.updated of the same connection is still being recorded, and
// a receiver gets the update after the delete.
func TestOwedEventPrecedesTheDeleteOfAForcedIntegrationDelete(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", time.Hour)
	rec := &gatedRecorder{hold: eventConnectionUpdated, held: make(chan struct{}), release: make(chan struct{})}
	recordInto(e, rec)
	c1 := &connectionEntry{Integration: "github", ConnectionID: "c1"}
	e.b.store.owe([]owedEvent{{key: connectionKey("github", "c1"), typ: eventConnectionUpdated, data: eventDataOf(c1, nil)}})
	owedDone := make(chan error, 1)
	go func() { owedDone <- e.b.store.RecordOwed(context.Background(), e.storage) }()
	<-rec.held // the owed update is being recorded, under c1's lock
	deleted := make(chan int, 1)
	go func() {
		_, status := e.do(logical.DeleteOperation, "integrations/github", map[string]any{"force": true})
		deleted <- status
	}()
	select {
	case <-deleted:
		deleted <- 0 // done before the owed event was recorded
	case <-time.After(500 * time.Millisecond):
	}
	close(rec.release)
	if err := <-owedDone; err != nil {
		t.Fatal(err)
	}
	<-deleted
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if fmt.Sprint(rec.types) != fmt.Sprint([]eventType{eventConnectionUpdated, eventConnectionDeleted}) {
		t.Fatalf("c1's events were recorded as %v: the owed update must come before the delete", rec.types)
	}
}

// TestCreateRetriedAfterThePluginDiedRecordsCreated: when the plugin
// process dies under a request, Vault's plugin backend starts a new one
// and hands it the same request again (same id, still a create), and
// answers the client with that retry's result. A create whose process
// saved the connection and died before its connection.created was stored
// records connection.created on that retry, not connection.updated: the
// write is answered with success, so its event must not be lost.
func TestCreateRetriedAfterThePluginDiedRecordsCreated(t *testing.T) {
	reliabilityCase(t, "a create saves its connection and the plugin dies while its event's batch is being written; Vault retries the request in a new process",
		"the retry records connection.created, which the receiver gets")
	base := &logical.InmemStorage{}
	rcv := newHookReceiver(t, always(http.StatusOK))
	setup := newEventsEnv(t, base)
	setup.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	setup.mustDo(logical.CreateOperation, "integrations/svc", map[string]any{"auth_mode": "API_KEY"})
	setup.b.Cleanup(context.Background())

	// The first process: its batch write never ends (the process dies
	// under it), after the connection is saved.
	gated := &batchGateStorage{Storage: base, gate: make(chan struct{})}
	gated.refuse.Store(true)
	first := newTestEnvOn(t, gated)
	initializeMount(t, first)
	t.Cleanup(func() {
		close(gated.gate)
		first.b.Cleanup(context.Background())
	})
	req := logical.Request{ID: "2b1f7c3e-9a61-4f0e-8d55-6c2d0c1e4a77", Operation: logical.CreateOperation,
		Path: "connections/svc/acme", Data: map[string]any{"api_key": "sk-retried"}}
	go func() {
		r := req
		r.Storage = gated
		_, _ = first.b.HandleRequest(context.Background(), &r)
	}()
	waitFor(t, "the first process's batch write", func() bool { return gated.batches.Load() == 1 })
	if c, err := getConnection(context.Background(), base, "svc", "acme"); err != nil || c == nil {
		t.Fatalf("the connection is not saved before its event: %v %v", c, err)
	}

	// Vault's retry, in a new process on the same storage.
	second := newEventsEnv(t, base)
	retry := req
	retry.Storage = base
	resp, err := second.b.HandleRequest(context.Background(), &retry)
	if status := httpStatus(retry.Operation, resp, err); status >= 300 {
		t.Fatalf("the retried create: status %d: %v %v", status, resp, err)
	}
	waitFor(t, "the retry's event", func() bool { return len(rcv.accepted()) == 1 })
	time.Sleep(100 * time.Millisecond) // any other event would have come
	var types []string
	for _, r := range rcv.requests() {
		var ev struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type)
	}
	if len(types) != 1 || types[0] != string(eventConnectionCreated) {
		t.Fatalf("events delivered for the acknowledged create: %v, want [connection.created]", types)
	}

	// An update that gives credentials again, as another request, is
	// still an update.
	again := retry
	again.ID, again.Operation = "5d0a9e42-1c7b-4b8e-9f0d-3e6a2b7c8d11", logical.UpdateOperation
	if resp, err := second.b.HandleRequest(context.Background(), &again); httpStatus(again.Operation, resp, err) >= 300 {
		t.Fatalf("the update: %v %v", resp, err)
	}
	waitFor(t, "the update's event", func() bool { return len(rcv.accepted()) == 2 })
	var last struct {
		Type string `json:"type"`
	}
	reqs := rcv.requests()
	if err := json.Unmarshal(reqs[len(reqs)-1].body, &last); err != nil || last.Type != string(eventConnectionUpdated) {
		t.Fatalf("the update's event: %+v %v", last, err)
	}
}
