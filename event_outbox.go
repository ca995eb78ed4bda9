// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/webhook"
)

// The outbox holds one storage entry per event and receiver:
//
//	events/pending/<receiver>/<event id>   to deliver (body, attempts, next attempt)
//	events/dead/<receiver>/<event id>      given up, kept for a read
//
// One entry per receiver lets each delivery change only its own entry,
// lets deleting a receiver drop exactly its deliveries, and lets a
// receiver's pending figure be a count of its keys. Event ids start with
// their recording time in hex, so that keys sort by age.
const (
	outboxPendingPrefix = "events/pending/"
	outboxDeadPrefix    = "events/dead/"
)

const (
	// maxMaxPendingEvents bounds what config's max_pending_events (its
	// default is with the config's, in entries.go) may be set to.
	maxMaxPendingEvents = 10000000
	// maxDeadPerReceiver bounds the dead deliveries kept per receiver;
	// beyond it the oldest are removed.
	maxDeadPerReceiver = 1000
	// deliveryConcurrencyPerReceiver bounds each receiver's attempts in
	// flight at once: a receiver answering in 100 ms gets up to 160 events
	// a second. The sender keeps as many connections to a host alive.
	deliveryConcurrencyPerReceiver = webhook.MaxIdleConnsPerHost
)

// errOutboxFull is a dead delivery's last_error when its receiver had
// max_pending_events deliveries pending as the event was recorded.
var errOutboxFull = errors.New("not queued: the receiver had config's max_pending_events deliveries pending")

// outboxEntry is one event for one receiver.
type outboxEntry struct {
	entryFormat
	ID       string    `json:"id"`
	Type     eventType `json:"type"`
	Receiver string    `json:"receiver"`
	// ReceiverID is the receiver's webhookEntry.ID when the event was
	// recorded: an entry is delivered only to that receiver, never to a
	// new receiver of the same name.
	ReceiverID string    `json:"receiver_id,omitempty"`
	Body       string    `json:"body"`
	Timestamp  time.Time `json:"timestamp"`
	// Attempts counts the attempts made; FirstAttemptAt and LastAttemptAt
	// are when the first and the last were made.
	Attempts       int       `json:"attempts"`
	FirstAttemptAt time.Time `json:"first_attempt_at,omitzero"`
	LastAttemptAt  time.Time `json:"last_attempt_at,omitzero"`
	NextAttemptAt  time.Time `json:"next_attempt_at"`
	LastStatus     int       `json:"last_status,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	DeadAt         time.Time `json:"dead_at,omitzero"`
}

// eventBody is what receivers get, byte for byte on every attempt.
type eventBody struct {
	Type      eventType `json:"type"`
	ID        string    `json:"id"`
	Timestamp string    `json:"timestamp"`
	Data      eventData `json:"data"`
}

// deliveryKey names one event for one receiver.
type deliveryKey struct{ receiver, id string }

func (k deliveryKey) pendingPath() string { return outboxPendingPrefix + k.receiver + "/" + k.id }
func (k deliveryKey) deadPath() string    { return outboxDeadPrefix + k.receiver + "/" + k.id }

// eventOutbox records events in storage and delivers them from there.
// It is the plugin's eventRecorder.
type eventOutbox struct {
	receivers webhookSet
	// figures are the receivers' delivery figures, cached.
	figures webhookFigures
	// wake tells the delivery worker that the schedule changed.
	wake     chan struct{}
	sender   *webhook.Sender
	schedule webhook.Schedule
	now      func() time.Time
	logger   func() hclog.Logger
	// maxPending reads config's max_pending_events.
	maxPending func(ctx context.Context, s logical.Storage) int

	mu sync.Mutex
	// scheduled holds every pending delivery this process knows of, and
	// queue when each is due; an item whose key left scheduled is stale.
	scheduled map[deliveryKey]struct{}
	queue     deliveryQueue
	// pendingBy counts scheduled's deliveries by receiver, for the
	// per-receiver bound.
	pendingBy map[string]int
	// lanes names the connection of each scheduled delivery that has one
	// (integration/connection_id): the delivery worker keeps one attempt
	// per connection and receiver in flight, so that a connection's events
	// reach a receiver in the order they were recorded.
	lanes map[deliveryKey]string
	// dead lists each receiver's dead event ids, oldest first.
	dead map[string][]string
	// overflows counts events not queued because the outbox was full.
	overflows int64
	// stopDelivering stops the delivery worker; nil while none runs.
	stopDelivering func()
	// ready is set once the schedule has been rebuilt from storage.
	ready bool
}

func newEventOutbox(now func() time.Time, logger func() hclog.Logger, maxPending func(context.Context, logical.Storage) int) *eventOutbox {
	sender := webhook.NewSender(webhook.DefaultTimeout, nil)
	sender.Now = now
	return &eventOutbox{
		sender:     sender,
		schedule:   webhook.DefaultSchedule,
		now:        now,
		logger:     logger,
		maxPending: maxPending,
		scheduled:  map[deliveryKey]struct{}{},
		pendingBy:  map[string]int{},
		lanes:      map[deliveryKey]string{},
		dead:       map[string][]string{},
		wake:       make(chan struct{}, 1),
	}
}

// newEventID returns an id that sorts by recording time: 16 hex digits of
// Unix nanoseconds, then 16 random ones.
func newEventID(now time.Time) (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("evt_%016x%s", uint64(now.UnixNano()), hex.EncodeToString(r[:])), nil
}

// record writes the event to the outbox, once for each enabled receiver
// that takes its type, before it returns; the first attempts follow at
// once in the background. With no such receiver it costs no storage
// operation (once the receivers are loaded).
func (o *eventOutbox) record(ctx context.Context, s logical.Storage, typ eventType, data eventData) error {
	all, err := o.receivers.all(ctx, s)
	if err != nil {
		return fmt.Errorf("recording %s: %w", typ, err)
	}
	var targets []string
	for name, w := range all {
		if w.wants(typ) {
			targets = append(targets, name)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	sort.Strings(targets)
	now := o.now()
	at := now
	if !data.at.IsZero() {
		at = data.at // an owed event: the time of its change
	}
	id, err := newEventID(at)
	if err != nil {
		return err
	}
	body, err := json.Marshal(eventBody{Type: typ, ID: id, Timestamp: at.UTC().Format(time.RFC3339Nano), Data: data})
	if err != nil {
		return err
	}
	limit := o.maxPending(ctx, s)
	var written []deliveryKey
	for _, name := range targets {
		e := &outboxEntry{ID: id, Type: typ, Receiver: name, ReceiverID: all[name].ID, Body: string(body), Timestamp: at, NextAttemptAt: now}
		k := deliveryKey{name, id}
		if o.reserve(k, limit) {
			if err := putJSON(ctx, s, k.pendingPath(), e); err != nil {
				o.forget(k)
				o.unrecord(ctx, s, written)
				return fmt.Errorf("recording %s: %w", typ, err)
			}
			written = append(written, k)
			continue
		}
		o.logger().Warn("receiver's pending events at the bound: event kept as dead, not delivered", "receiver", name, "type", string(typ), "id", id, "max_pending_events", limit)
		e.DeadAt, e.LastError = now, errOutboxFull.Error()
		if err := o.putDead(ctx, s, k, e); err != nil {
			o.unrecord(ctx, s, written)
			return fmt.Errorf("recording %s: %w", typ, err)
		}
	}
	// Scheduled only once every receiver's entry is stored, so that an
	// event whose recording failed (and that its caller records again,
	// under a new id) was sent to none of them.
	for _, k := range written {
		o.setLane(k, laneOf(data))
		o.push(k, now)
	}
	return nil
}

// unrecord removes the entries of an event whose recording failed for
// another receiver. One that cannot be removed stays pending: sent under
// this id as well as the id of the event recorded again, at least once.
func (o *eventOutbox) unrecord(ctx context.Context, s logical.Storage, keys []deliveryKey) {
	for _, k := range keys {
		if err := s.Delete(ctx, k.pendingPath()); err != nil {
			o.logger().Warn("removing a partly recorded event; it is delivered anyway", "receiver", k.receiver, "id", k.id, "error", err)
			o.push(k, o.now())
			continue
		}
		o.forget(k)
	}
}

// reserve counts k among its receiver's pending deliveries unless limit
// are. The bound is each receiver's own, so that one receiver that is down
// does not keep events from the others.
func (o *eventOutbox) reserve(k deliveryKey, limit int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pendingBy[k.receiver] >= limit {
		o.overflows++
		return false
	}
	o.scheduleLocked(k)
	return true
}

// scheduleLocked counts k as pending; o.mu is held.
func (o *eventOutbox) scheduleLocked(k deliveryKey) {
	if _, ok := o.scheduled[k]; !ok {
		o.scheduled[k] = struct{}{}
		o.pendingBy[k.receiver]++
	}
}

// laneOf is the connection an event is of, "" for none.
func laneOf(data eventData) string {
	if data.ConnectionID == "" {
		return ""
	}
	return data.Integration + "/" + data.ConnectionID
}

// laneOfBody is the connection of a stored event's body, "" when it names
// none.
func laneOfBody(body string) string {
	var b struct {
		Data eventData `json:"data"`
	}
	if json.Unmarshal([]byte(body), &b) != nil {
		return ""
	}
	return laneOf(b.Data)
}

// setLane records k's connection, if it has one.
func (o *eventOutbox) setLane(k deliveryKey, lane string) {
	if lane == "" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.scheduled[k]; ok {
		o.lanes[k] = lane
	}
}

// lane is k's connection, "" when it has none or is not known.
func (o *eventOutbox) lane(k deliveryKey) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lanes[k]
}

// forgetLocked counts k as pending no more; o.mu is held.
func (o *eventOutbox) forgetLocked(k deliveryKey) {
	delete(o.lanes, k)
	if _, ok := o.scheduled[k]; ok {
		delete(o.scheduled, k)
		if o.pendingBy[k.receiver]--; o.pendingBy[k.receiver] <= 0 {
			delete(o.pendingBy, k.receiver)
		}
	}
}

func (o *eventOutbox) forget(k deliveryKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.forgetLocked(k)
}

// push schedules k's next attempt at at and wakes the worker.
func (o *eventOutbox) push(k deliveryKey, at time.Time) {
	o.mu.Lock()
	heap.Push(&o.queue, &queuedDelivery{key: k, at: at})
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default: // a wake-up is already due
	}
}

// putDead stores e as dead and keeps at most maxDeadPerReceiver of its
// receiver's.
func (o *eventOutbox) putDead(ctx context.Context, s logical.Storage, k deliveryKey, e *outboxEntry) error {
	if err := putJSON(ctx, s, k.deadPath(), e); err != nil {
		return err
	}
	o.mu.Lock()
	ids := append(o.dead[k.receiver], k.id)
	sort.Strings(ids)
	var drop []string
	if len(ids) > maxDeadPerReceiver {
		drop = append(drop, ids[:len(ids)-maxDeadPerReceiver]...)
		ids = ids[len(ids)-maxDeadPerReceiver:]
	}
	o.dead[k.receiver] = ids
	o.mu.Unlock()
	for _, id := range drop {
		if err := s.Delete(ctx, deliveryKey{k.receiver, id}.deadPath()); err != nil {
			o.logger().Warn("removing an old dead event", "receiver", k.receiver, "id", id, "error", err)
		}
	}
	return nil
}

// dropReceiver deletes a deleted receiver's pending and dead deliveries.
func (o *eventOutbox) dropReceiver(ctx context.Context, s logical.Storage, name string) error {
	o.receivers.invalidate()
	o.mu.Lock()
	for k := range o.scheduled {
		if k.receiver == name {
			o.forgetLocked(k)
		}
	}
	delete(o.dead, name)
	o.mu.Unlock()
	o.figures.forget(name)
	for _, prefix := range []string{outboxPendingPrefix, outboxDeadPrefix} {
		ids, err := s.List(ctx, prefix+name+"/")
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := s.Delete(ctx, prefix+name+"/"+id); err != nil {
				return err
			}
		}
	}
	return s.Delete(ctx, webhookStatsPrefix+name)
}

// resetFigures clears the delivery figures a receiver of the same name
// may have left, so that a new receiver starts from zero.
func (o *eventOutbox) resetFigures(ctx context.Context, s logical.Storage, name string) error {
	o.figures.forget(name)
	return s.Delete(ctx, webhookStatsPrefix+name)
}

// rebuild loads the pending deliveries from storage into the schedule:
// what a previous process (or the previous active node) left undelivered.
// Deliveries of receivers that no longer exist are removed.
func (o *eventOutbox) rebuild(ctx context.Context, s logical.Storage) error {
	all, err := o.receivers.all(ctx, s)
	if err != nil {
		return err
	}
	receivers, err := s.List(ctx, outboxPendingPrefix)
	if err != nil {
		return err
	}
	for _, r := range receivers {
		name := r[:len(r)-1] // "name/"
		ids, err := s.List(ctx, outboxPendingPrefix+r)
		if err != nil {
			return err
		}
		for _, id := range ids {
			k := deliveryKey{name, id}
			if all[name] == nil {
				if err := s.Delete(ctx, k.pendingPath()); err != nil {
					return err
				}
				continue
			}
			var e outboxEntry
			found, err := getJSON(ctx, s, k.pendingPath(), &e)
			if err != nil {
				return err
			}
			if found && e.ReceiverID != all[name].ID {
				// Left by a deleted receiver of the same name.
				if err := s.Delete(ctx, k.pendingPath()); err != nil {
					return err
				}
				continue
			}
			o.mu.Lock()
			_, known := o.scheduled[k]
			if found && !known {
				o.scheduleLocked(k)
			}
			o.mu.Unlock()
			if found && !known {
				o.setLane(k, laneOfBody(e.Body))
				o.push(k, e.NextAttemptAt)
			}
		}
	}
	deadReceivers, err := s.List(ctx, outboxDeadPrefix)
	if err != nil {
		return err
	}
	for _, r := range deadReceivers {
		ids, err := s.List(ctx, outboxDeadPrefix+r)
		if err != nil {
			return err
		}
		sort.Strings(ids)
		o.mu.Lock()
		o.dead[r[:len(r)-1]] = ids
		o.mu.Unlock()
	}
	o.mu.Lock()
	o.ready = true
	o.mu.Unlock()
	return nil
}

// outboxStats are the outbox's figures for status.
type outboxStats struct {
	Pending, Dead int
	Overflows     int64
	Delivering    bool
	Ready         bool
}

func (o *eventOutbox) stats() outboxStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := outboxStats{Pending: len(o.scheduled), Overflows: o.overflows, Delivering: o.stopDelivering != nil, Ready: o.ready}
	for _, ids := range o.dead {
		st.Dead += len(ids)
	}
	return st
}

// receiversAtBound names, sorted, the receivers with limit or more
// deliveries pending.
func (o *eventOutbox) receiversAtBound(limit int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var names []string
	for name, n := range o.pendingBy {
		if n >= limit {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// queuedDelivery is a delivery's place in the schedule.
type queuedDelivery struct {
	key deliveryKey
	at  time.Time
}

// deliveryQueue is a min-heap of deliveries by due time.
type deliveryQueue []*queuedDelivery

func (q deliveryQueue) Len() int           { return len(q) }
func (q deliveryQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q deliveryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *deliveryQueue) Push(x any)        { *q = append(*q, x.(*queuedDelivery)) }
func (q *deliveryQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return it
}

// deadEntries reads a receiver's dead deliveries from storage, newest
// first.
func deadEntries(ctx context.Context, s logical.Storage, receiver string) ([]string, map[string]*outboxEntry, error) {
	ids, err := s.List(ctx, outboxDeadPrefix+receiver+"/")
	if err != nil {
		return nil, nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	entries := make(map[string]*outboxEntry, len(ids))
	for _, id := range ids {
		var e outboxEntry
		found, err := getJSON(ctx, s, deliveryKey{receiver, id}.deadPath(), &e)
		if err != nil {
			return nil, nil, err
		}
		if found {
			entries[id] = &e
		}
	}
	return ids, entries, nil
}
