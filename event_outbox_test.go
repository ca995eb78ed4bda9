// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
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

// TestWebhookOutboxSurvivesRestart: events recorded while the receiver is
// down, and by a process that stops (or dies) before delivering them, are
// delivered by the next process on the same storage.
func TestWebhookOutboxSurvivesRestart(t *testing.T) {
	reliabilityCase(t, "events recorded while the receiver is down; the plugin stops, or dies before delivering",
		"the next process on the same storage delivers every event, each accepted once")
	s := &logical.InmemStorage{}
	rcv := newHookReceiver(t, always(http.StatusServiceUnavailable))
	first := newEventsEnv(t, s)
	first.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	recordTestEvent(t, first, eventConnectionCreated, "a")
	recordTestEvent(t, first, eventConnectionDeleted, "b")
	waitFor(t, "failed attempts", func() bool { return len(rcv.requests()) >= 2 })
	first.b.Cleanup(context.Background())

	// A process that records, alone and then 20 events at once, and dies
	// before its worker starts: its batches are all that holds them.
	crashed := newTestEnvOn(t, s)
	recordTestEvent(t, crashed, eventConnectionUpdated, "c")
	for _, err := range recordConcurrently(crashed, 20) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if batches, _ := s.List(context.Background(), outboxBatchPrefix); len(batches) == 0 {
		t.Fatal("no batch stored for 21 events")
	}

	rcv.setAnswer(always(http.StatusOK))
	before := len(rcv.requests())
	newEventsEnv(t, s)
	waitFor(t, "the 23 events after the restart", func() bool { return len(rcv.accepted()) == 23 })
	for id, n := range rcv.accepted() {
		if n != 1 {
			t.Fatalf("event %s accepted %d times", id, n)
		}
	}
	if len(rcv.requests())-before != 23 {
		t.Fatalf("%d requests after the restart, want 23", len(rcv.requests())-before)
	}
}

// TestWebhookOutboxBound: past max_pending_events a new event is kept as
// dead, unsent; status counts it and warns.
func TestWebhookOutboxBound(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{}, retryHourly)
	rcv := newHookReceiver(t, always(http.StatusInternalServerError))
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_pending_events": 2})
	e.mustFail(logical.UpdateOperation, "config", map[string]any{"max_pending_events": 0}, http.StatusBadRequest)
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	for _, id := range []string{"a", "b", "c"} {
		recordTestEvent(t, e, eventConnectionCreated, id)
	}
	resp, _ := e.do(logical.ReadOperation, "status", nil)
	if resp.Data["events_pending"] != 2 || resp.Data["events_dead"] != 1 || resp.Data["events_not_queued"] != int64(1) {
		t.Fatalf("status: %v", resp.Data)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "max_pending_events") {
		t.Fatalf("status warnings: %v", resp.Warnings)
	}
	dead := e.mustDo(logical.ListOperation, "webhooks/app/dead", nil)
	ids := dead["keys"].([]string)
	if info := dead["key_info"].(map[string]any)[ids[0]].(map[string]any); info["attempts"] != 0 || !strings.Contains(info["last_error"].(string), "max_pending_events") {
		t.Fatalf("dead: %v", dead)
	}
	if !strings.Contains(e.logs.String(), "pending events at the bound") {
		t.Fatal("no warning logged")
	}
}

// TestWebhookIdleCostsNoStorage: with nothing pending the worker makes no
// storage operation, and neither does recording an event no receiver takes.
func TestWebhookIdleCostsNoStorage(t *testing.T) {
	counting := &countingStorage{Storage: &logical.InmemStorage{}}
	e := newEventsEnv(t, counting)
	rcv := newHookReceiver(t, always(http.StatusOK))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL, "events": "connection.deleted"})
	recordTestEvent(t, e, eventConnectionDeleted, "warm") // loads the receivers
	waitFor(t, "the delivery", func() bool { return len(rcv.accepted()) == 1 })
	// The delivery's batch goes spareGrace after it ended, and its figures
	// are stored.
	waitFor(t, "the delivered batch deleted", func() bool {
		keys, _ := counting.List(context.Background(), outboxBatchPrefix)
		return len(keys) == 0
	})
	time.Sleep(50 * time.Millisecond)
	before := counting.ops.Load()
	recordTestEvent(t, e, eventConnectionCreated, "not-wanted")
	time.Sleep(300 * time.Millisecond)
	if n := counting.ops.Load() - before; n != 0 {
		t.Fatalf("%d storage operations while nothing was pending", n)
	}
}

// TestWebhookRecordFailsWhenStorageRefuses: an event whose batch storage
// refuses is reported to the caller and sent to none of its receivers
// (one entry holds it for all of them), and nothing of it stays in the
// outbox, since the caller records the event again (under a new id).
func TestWebhookRecordFailsWhenStorageRefuses(t *testing.T) {
	s := &flakyStorage{Storage: &logical.InmemStorage{}, failPrefix: outboxBatchPrefix}
	e := newEventsEnv(t, s)
	rcv := newHookReceiver(t, always(http.StatusOK))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	e.mustDo(logical.CreateOperation, "webhooks/zz-second", map[string]any{"url": rcv.URL})
	s.failPuts.Store(1)
	err := e.b.outbox.record(context.Background(), e.storage, eventConnectionCreated, eventData{Integration: "github", ConnectionID: "a"})
	if err == nil {
		t.Fatal("record reported success for an event storage refused")
	}
	if st := e.b.outbox.stats(); st.Pending != 0 {
		t.Fatalf("%d deliveries scheduled for an unrecorded event", st.Pending)
	}
	for _, prefix := range []string{outboxPendingPrefix, outboxBatchPrefix} {
		if keys, _ := logical.CollectKeysWithPrefix(context.Background(), e.storage, prefix); len(keys) != 0 {
			t.Fatalf("a refused event stays in the outbox: %v", keys)
		}
	}
	e.mustDo(logical.DeleteOperation, "webhooks/zz-second", nil)
	recordTestEvent(t, e, eventConnectionCreated, "b")
	waitFor(t, "the next event", func() bool { return len(rcv.accepted()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if got := len(rcv.requests()); got != 1 {
		t.Fatalf("the receiver got %d requests, want only the recorded event's", got)
	}
}

// batchGateStorage holds every batch write until its gate opens, and counts
// the batch writes.
type batchGateStorage struct {
	logical.Storage
	gate    chan struct{}
	batches atomic.Int64
	refuse  atomic.Bool
}

func (s *batchGateStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if strings.HasPrefix(e.Key, outboxBatchPrefix) {
		s.batches.Add(1)
		<-s.gate
		if s.refuse.Load() {
			return errors.New("storage unavailable")
		}
	}
	return s.Storage.Put(ctx, e)
}

// recordConcurrently records n connection.created events at once, one per
// goroutine, and returns their errors once all have returned.
func recordConcurrently(e *testEnv, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.b.outbox.record(context.Background(), e.storage, eventConnectionCreated,
				eventData{Integration: "github", ConnectionID: fmt.Sprintf("c%03d", i)})
		}()
	}
	wg.Wait()
	return errs
}

// TestConcurrentRecordingsShareABatch: events recorded while
// maxBatchWrites batch writes are in flight are written together by the
// next one, and none is answered before its own batch is stored: the first
// events alone, one per write in flight, then all the others that waited,
// in one write; each event delivered once.
func TestConcurrentRecordingsShareABatch(t *testing.T) {
	s := &batchGateStorage{Storage: &logical.InmemStorage{}, gate: make(chan struct{})}
	e := newEventsEnv(t, s)
	rcv := newHookReceiver(t, always(http.StatusOK))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	var answered atomic.Int64
	done := make(chan []error)
	go func() {
		errs := recordConcurrently(e, 50)
		answered.Add(int64(len(errs)))
		done <- errs
	}()
	waitFor(t, "the first batch writes", func() bool { return s.batches.Load() == int64(maxBatchWrites) })
	time.Sleep(100 * time.Millisecond) // the others queue behind them
	if answered.Load() != 0 || len(rcv.requests()) != 0 {
		t.Fatal("a recording answered, or an event was sent, before its batch was stored")
	}
	close(s.gate)
	for _, err := range <-done {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := s.batches.Load(); n != int64(maxBatchWrites)+1 {
		t.Fatalf("%d batch writes for 50 events recorded together, want %d", n, maxBatchWrites+1)
	}
	c := &e.b.outbox.commits
	c.mu.Lock()
	writing, next := c.writing, c.next
	c.mu.Unlock()
	if writing != 0 || next != nil {
		t.Fatalf("after the writes: %d counted in flight, next group %v", writing, next)
	}
	waitFor(t, "50 deliveries", func() bool { return len(rcv.accepted()) == 50 })
	for id, n := range rcv.accepted() {
		if n != 1 {
			t.Fatalf("event %s accepted %d times", id, n)
		}
	}
	// Every batch is deleted once its events are delivered.
	waitFor(t, "the batches deleted", func() bool {
		keys, _ := s.List(context.Background(), outboxBatchPrefix)
		return len(keys) == 0
	})
}

// TestRefusedBatchFailsEachOfItsRecordings: when storage refuses a batch,
// every recording in it is told so, and none of its events is sent.
func TestRefusedBatchFailsEachOfItsRecordings(t *testing.T) {
	s := &batchGateStorage{Storage: &logical.InmemStorage{}, gate: make(chan struct{})}
	e := newEventsEnv(t, s)
	rcv := newHookReceiver(t, always(http.StatusOK))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	s.refuse.Store(true)
	done := make(chan []error)
	go func() { done <- recordConcurrently(e, 20) }()
	waitFor(t, "the first batch writes", func() bool { return s.batches.Load() == int64(maxBatchWrites) })
	time.Sleep(50 * time.Millisecond)
	close(s.gate)
	for i, err := range <-done {
		if err == nil {
			t.Fatalf("recording %d reported success for a refused batch", i)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if st := e.b.outbox.stats(); st.Pending != 0 || len(rcv.requests()) != 0 {
		t.Fatalf("refused events: %d pending, %d sent", st.Pending, len(rcv.requests()))
	}
}

// TestPendingBoundIsPerReceiver: max_pending_events bounds each receiver's
// own pending deliveries, so that a receiver that is down and has filled
// its share does not keep events from a healthy one.
func TestPendingBoundIsPerReceiver(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{}, retryHourly)
	down := newHookReceiver(t, always(http.StatusInternalServerError))
	healthy := newHookReceiver(t, always(http.StatusOK))
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_pending_events": 2})
	e.mustDo(logical.CreateOperation, "webhooks/down", map[string]any{"url": down.URL})
	for _, id := range []string{"a", "b"} {
		recordTestEvent(t, e, eventConnectionCreated, id)
	}
	waitFor(t, "the down receiver's attempts", func() bool { return len(down.requests()) >= 2 })
	e.mustDo(logical.CreateOperation, "webhooks/healthy", map[string]any{"url": healthy.URL})
	recordTestEvent(t, e, eventConnectionCreated, "c")
	waitFor(t, "event c at the healthy receiver", func() bool { return len(healthy.requests()) == 1 })
	// The down receiver's own bound still holds: c is dead unsent for it.
	if got := e.mustDo(logical.ReadOperation, "webhooks/down", nil); got["pending"] != 2 || got["dead"] != 1 {
		t.Fatalf("down receiver: pending %v dead %v, want 2 and 1", got["pending"], got["dead"])
	}
	st := e.mustDo(logical.ReadOperation, "status", nil)
	if st["events_not_queued"] != int64(1) {
		t.Fatalf("events_not_queued = %v, want 1", st["events_not_queued"])
	}
	resp, _ := e.do(logical.ReadOperation, "status", nil)
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "down") || strings.Contains(resp.Warnings[0], "healthy") {
		t.Fatalf("status warnings = %v, want one naming the full receiver only", resp.Warnings)
	}
}

// TestLargeGroupsAreWrittenInBoundedBatches: a group of more events than
// a batch holds, or of more body bytes, is written as several batches,
// each within both bounds, and every event is in one of them.
func TestLargeGroupsAreWrittenInBoundedBatches(t *testing.T) {
	e := newTestEnvOn(t, &logical.InmemStorage{})
	var events []*batchedEvent
	for i := range 300 {
		body := "{}"
		if i >= 280 {
			body = strings.Repeat("x", 40<<10) // 20 large bodies
		}
		events = append(events, &batchedEvent{ID: fmt.Sprintf("evt_%04d", i), Type: eventConnectionCreated, Body: body,
			Receivers: []batchedReceiver{{Name: "app"}}})
	}
	bs, errs := e.b.outbox.writeBatches(context.Background(), e.storage, events)
	seen := map[string]int{}
	for i, b := range bs {
		if errs[i] != nil || b == nil {
			t.Fatalf("event %d: %v", i, errs[i])
		}
		seen[b.id]++
	}
	if len(seen) < 2+20*(40<<10)/maxBatchBytes {
		t.Fatalf("%d batches for 300 events with 800 KiB of bodies", len(seen))
	}
	for id, n := range seen {
		var stored outboxBatch
		if _, err := getJSON(context.Background(), e.storage, batchPath(id), &stored); err != nil || len(stored.Events) != n {
			t.Fatalf("batch %s holds %d events, want %d (%v)", id, len(stored.Events), n, err)
		}
		size := 0
		for _, ev := range stored.Events {
			size += len(ev.Body)
		}
		if n > maxBatchEvents || (n > 1 && size > maxBatchBytes) {
			t.Fatalf("batch %s: %d events, %d body bytes", id, n, size)
		}
	}
}

// TestEndedBatchesAreOverwrittenNotDeleted: under a stream of events each
// batch write overwrites a batch whose deliveries have all ended, so no
// batch costs a delete of its own; once the stream stops, the last is
// deleted after spareGrace and nothing stays.
func TestEndedBatchesAreOverwrittenNotDeleted(t *testing.T) {
	s := &prefixWritesStorage{Storage: &logical.InmemStorage{}, prefix: outboxBatchPrefix}
	e := newEventsEnv(t, s)
	rcv := newHookReceiver(t, always(http.StatusOK))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	const n = 20
	for i := range n {
		recordTestEvent(t, e, eventConnectionCreated, fmt.Sprintf("c%d", i))
		waitFor(t, "the delivery", func() bool { return len(rcv.accepted()) == i+1 && e.b.outbox.stats().Pending == 0 })
	}
	if puts, deletes := s.puts.Load(), s.deletes.Load(); puts != n || deletes != 0 {
		t.Fatalf("%d batch puts and %d deletes for %d events, want %d and none", puts, deletes, n, n)
	}
	if keys, _ := s.List(context.Background(), outboxBatchPrefix); len(keys) != 1 {
		t.Fatalf("%d batches stored during the stream, want the one ended last: %v", len(keys), keys)
	}
	waitFor(t, "the last batch deleted", func() bool {
		keys, _ := s.List(context.Background(), outboxBatchPrefix)
		return len(keys) == 0
	})
	if d := s.deletes.Load(); d != 1 {
		t.Fatalf("%d batch deletes, want 1", d)
	}
}
