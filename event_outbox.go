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

// The outbox holds events in three kinds of storage entry:
//
//	events/batches/<batch id>              events recorded together, each once for all its receivers
//	events/pending/<receiver>/<event id>   one event for one receiver after a failed attempt (attempts, next attempt)
//	events/dead/<receiver>/<event id>      given up, kept for a read
//
// Recording is a group commit: the events that requests record while the
// outbox's previous batch write is in flight are written together, by one
// storage write, and each request answers once its batch is stored. A
// batch is deleted once each of its deliveries has ended (delivered, given
// up, dropped with its receiver, or moved to its own entry by a failed
// attempt, whose retries change only that entry). Event and batch ids
// start with their recording time in hex, so that keys sort by age.
const (
	outboxBatchPrefix   = "events/batches/"
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
	// defaultDeliveryConcurrency bounds a receiver's attempts in flight
	// at once unless its concurrency says otherwise: a receiver answering
	// in 100 ms gets up to 160 events a second. maxDeliveryConcurrency
	// bounds the setting; the sender keeps as many connections to a host
	// alive.
	defaultDeliveryConcurrency = 16
	maxDeliveryConcurrency     = webhook.MaxIdleConnsPerHost
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

// outboxBatch is one storage write of the group commit.
type outboxBatch struct {
	entryFormat
	ID     string         `json:"id"`
	Events []batchedEvent `json:"events"`
}

// batchedEvent is one event of a batch, with the receivers it is for.
type batchedEvent struct {
	ID        string            `json:"id"`
	Type      eventType         `json:"type"`
	Body      string            `json:"body"`
	Timestamp time.Time         `json:"timestamp"`
	Receivers []batchedReceiver `json:"receivers"`
}

// batchedReceiver names a receiver of a batched event, with its
// webhookEntry.ID when the event was recorded (see outboxEntry).
type batchedReceiver struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
}

// entryFor is ev's delivery to r as an outbox entry, not yet attempted.
func (ev *batchedEvent) entryFor(r batchedReceiver) *outboxEntry {
	return &outboxEntry{ID: ev.ID, Type: ev.Type, Receiver: r.Name, ReceiverID: r.ID, Body: ev.Body,
		Timestamp: ev.Timestamp, NextAttemptAt: ev.Timestamp}
}

func batchPath(id string) string { return outboxBatchPrefix + id }

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
	// commits groups concurrent recordings into batch writes.
	commits outboxCommitter
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
	scheduled map[deliveryKey]*pendingDelivery
	queue     deliveryQueue
	// pendingBy counts scheduled's deliveries by receiver, for the
	// per-receiver bound.
	pendingBy map[string]int
	// batches are the stored batches this process knows of, by id, until
	// their entry is deleted; spare lists those whose deliveries have all
	// ended, oldest first, for the next batch writes to overwrite, and
	// sweep deletes those left unused.
	batches map[string]*batchState
	spare   []*batchState
	sweep   *time.Timer
	// dead lists each receiver's dead event ids, oldest first.
	dead map[string][]string
	// overflows counts events not queued because the outbox was full.
	overflows int64
	// stopDelivering stops the delivery worker; nil while none runs.
	stopDelivering func()
	// ready is set once the schedule has been rebuilt from storage.
	ready bool
}

// pendingDelivery is what the outbox holds of one scheduled delivery.
type pendingDelivery struct {
	// lane names the delivery's connection (integration/connection_id),
	// "" for none: the delivery worker keeps one attempt per connection
	// and receiver in flight, so that a connection's events reach a
	// receiver in the order they were recorded.
	lane string
	// batch is the stored batch that holds the delivery, nil once it has
	// its own entry under events/pending/ (or before its batch is
	// stored). entry is then its state, kept here; a delivery with its
	// own entry is read from storage.
	batch *batchState
	entry *outboxEntry
}

// batchState counts a stored batch's deliveries that have not ended.
type batchState struct {
	id   string
	open int
	// endedAt is when its last delivery ended.
	endedAt time.Time
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
		scheduled:  map[deliveryKey]*pendingDelivery{},
		pendingBy:  map[string]int{},
		batches:    map[string]*batchState{},
		dead:       map[string][]string{},
		wake:       make(chan struct{}, 1),
	}
}

// newEventID returns an id that sorts by recording time: 16 hex digits of
// Unix nanoseconds, then 16 random ones.
func newEventID(now time.Time) (string, error) {
	return newTimedID("evt_", now)
}

// newTimedID is prefix, 16 hex digits of now's Unix nanoseconds and 16
// random ones.
func newTimedID(prefix string, now time.Time) (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s%016x%s", prefix, uint64(now.UnixNano()), hex.EncodeToString(r[:])), nil
}

// record writes the event to the outbox, once for all the enabled
// receivers that take its type, before it returns; the first attempts
// follow at once in the background. With no such receiver it costs no
// storage operation (once the receivers are loaded).
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
	ev := &batchedEvent{ID: id, Type: typ, Body: string(body), Timestamp: at}
	var keys []deliveryKey
	for _, name := range targets {
		k := deliveryKey{name, id}
		if o.reserve(k, limit) {
			keys = append(keys, k)
			ev.Receivers = append(ev.Receivers, batchedReceiver{Name: name, ID: all[name].ID})
			continue
		}
		o.logger().Warn("receiver's pending events at the bound: event kept as dead, not delivered", "receiver", name, "type", string(typ), "id", id, "max_pending_events", limit)
		e := &outboxEntry{ID: id, Type: typ, Receiver: name, ReceiverID: all[name].ID, Body: string(body), Timestamp: at, NextAttemptAt: now, DeadAt: now, LastError: errOutboxFull.Error()}
		if err := o.putDead(ctx, s, k, e); err != nil {
			o.release(ctx, s, keys)
			return fmt.Errorf("recording %s: %w", typ, err)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	b, err := o.commits.commit(ctx, s, o, ev)
	if err != nil {
		// Sent to none: the caller records the event again, under a new id.
		o.release(ctx, s, keys)
		return fmt.Errorf("recording %s: %w", typ, err)
	}
	// Scheduled only once the batch is stored, so that an event whose
	// recording failed was sent to none of its receivers.
	lane := laneOf(data)
	var ended []*batchState
	o.mu.Lock()
	for i, k := range keys {
		p := o.scheduled[k]
		if p == nil { // its receiver deleted meanwhile
			ended = o.endInBatchLocked(b, ended)
			continue
		}
		e := ev.entryFor(ev.Receivers[i])
		e.NextAttemptAt = now
		p.lane, p.batch, p.entry = lane, b, e
	}
	o.mu.Unlock()
	o.deleteBatches(ctx, s, ended)
	for _, k := range keys {
		o.push(k, now)
	}
	return nil
}

// release forgets deliveries reserved for an event that was not stored.
func (o *eventOutbox) release(ctx context.Context, s logical.Storage, keys []deliveryKey) {
	for _, k := range keys {
		o.forget(ctx, s, k)
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
	o.scheduleLocked(k, &pendingDelivery{})
	return true
}

// scheduleLocked counts k as pending, as p unless it is already; o.mu is
// held. It says whether k was new.
func (o *eventOutbox) scheduleLocked(k deliveryKey, p *pendingDelivery) bool {
	if _, ok := o.scheduled[k]; ok {
		return false
	}
	o.scheduled[k] = p
	o.pendingBy[k.receiver]++
	return true
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

// lane is k's connection, "" when it has none or is not known.
func (o *eventOutbox) lane(k deliveryKey) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if p := o.scheduled[k]; p != nil {
		return p.lane
	}
	return ""
}

// pendingEntry is k's delivery as an outbox entry: a copy of the one held
// in memory while k is in a batch, else its own entry read from storage.
// inBatch says which; found is false when k is no longer pending.
func (o *eventOutbox) pendingEntry(ctx context.Context, s logical.Storage, k deliveryKey) (e *outboxEntry, inBatch, found bool, err error) {
	o.mu.Lock()
	p := o.scheduled[k]
	if p != nil && p.batch != nil {
		c := *p.entry
		o.mu.Unlock()
		return &c, true, true, nil
	}
	o.mu.Unlock()
	var own outboxEntry
	found, err = getJSON(ctx, s, k.pendingPath(), &own)
	if err != nil || !found {
		return nil, false, found, err
	}
	return &own, false, true, nil
}

// movedOut records that k's delivery now has its own entry, holding e: its
// batch no longer counts it.
func (o *eventOutbox) movedOut(ctx context.Context, s logical.Storage, k deliveryKey) {
	o.mu.Lock()
	var ended []*batchState
	if p := o.scheduled[k]; p != nil && p.batch != nil {
		ended = o.endInBatchLocked(p.batch, nil)
		p.batch, p.entry = nil, nil
	}
	o.mu.Unlock()
	o.deleteBatches(ctx, s, ended)
}

// keepAttempt keeps e, the state of k's delivery after a failed attempt
// whose own entry storage refused, while k stays in its batch.
func (o *eventOutbox) keepAttempt(k deliveryKey, e *outboxEntry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if p := o.scheduled[k]; p != nil && p.batch != nil {
		c := *e
		p.entry = &c
	}
}

// endInBatchLocked counts one of b's deliveries as ended and adds b to
// ended once none is left; o.mu is held.
func (o *eventOutbox) endInBatchLocked(b *batchState, ended []*batchState) []*batchState {
	if b.open--; b.open == 0 {
		ended = append(ended, b)
	}
	return ended
}

// spareGrace is how long a batch whose deliveries have all ended is kept
// for the next batch write to overwrite before it is deleted: under a
// steady stream of events every batch write replaces an ended batch, and
// no batch costs a delete of its own.
const spareGrace = time.Second

// deleteBatches takes the batches whose deliveries have all ended as
// spares: the next batch writes overwrite them, and those still spare
// after spareGrace are deleted. Should the process stop before either,
// the next start delivers their events again (at least once).
func (o *eventOutbox) deleteBatches(_ context.Context, s logical.Storage, ended []*batchState) {
	if len(ended) == 0 {
		return
	}
	now := o.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range ended {
		b.endedAt = now
		o.spare = append(o.spare, b)
	}
	if o.sweep == nil {
		o.sweep = time.AfterFunc(spareGrace, func() { o.sweepSpares(context.Background(), s, false) })
	}
}

// takeSpare returns the oldest spare batch, nil when there is none: its
// key is overwritten by a new batch.
func (o *eventOutbox) takeSpare() *batchState {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.spare) == 0 {
		return nil
	}
	b := o.spare[0]
	o.spare = o.spare[1:]
	return b
}

// sweepSpares deletes the spare batches that ended spareGrace ago, or all
// of them; a delete that fails is tried again by the next sweep.
func (o *eventOutbox) sweepSpares(ctx context.Context, s logical.Storage, all bool) {
	cutoff := o.now().Add(-spareGrace)
	o.mu.Lock()
	var due []*batchState
	keep := o.spare[:0]
	for _, b := range o.spare {
		if all || !b.endedAt.After(cutoff) {
			due = append(due, b)
		} else {
			keep = append(keep, b)
		}
	}
	o.spare = keep
	o.mu.Unlock()
	var failed []*batchState
	for _, b := range due {
		if err := s.Delete(ctx, batchPath(b.id)); err != nil {
			o.logger().Warn("removing a delivered batch of events; its events are sent again after a restart unless a later try removes it", "batch", b.id, "error", err)
			failed = append(failed, b)
			continue
		}
		o.mu.Lock()
		if o.batches[b.id] == b {
			delete(o.batches, b.id)
		}
		o.mu.Unlock()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.spare = append(o.spare, failed...)
	o.sweep = nil
	if len(o.spare) > 0 && !all {
		o.sweep = time.AfterFunc(spareGrace, func() { o.sweepSpares(context.Background(), s, false) })
	}
}

// stopSweeping deletes every spare batch now and stops the sweep, when
// the worker stops: the next start finds only batches with deliveries
// left.
func (o *eventOutbox) stopSweeping(ctx context.Context, s logical.Storage) {
	o.mu.Lock()
	if o.sweep != nil {
		o.sweep.Stop()
		o.sweep = nil
	}
	o.mu.Unlock()
	o.sweepSpares(ctx, s, true)
}

// forgetLocked counts k as pending no more, appending its batch to ended
// when that was its last delivery; o.mu is held. own says whether k had
// its own entry.
func (o *eventOutbox) forgetLocked(k deliveryKey, ended []*batchState) (own bool, _ []*batchState) {
	p, ok := o.scheduled[k]
	if !ok {
		return false, ended
	}
	delete(o.scheduled, k)
	if o.pendingBy[k.receiver]--; o.pendingBy[k.receiver] <= 0 {
		delete(o.pendingBy, k.receiver)
	}
	if p.batch != nil {
		return false, o.endInBatchLocked(p.batch, ended)
	}
	return p.entry == nil, ended
}

// forget counts k as pending no more and deletes its batch if that was
// the batch's last delivery. own says whether k had its own entry, which
// the caller deletes.
func (o *eventOutbox) forget(ctx context.Context, s logical.Storage, k deliveryKey) (own bool) {
	o.mu.Lock()
	own, ended := o.forgetLocked(k, nil)
	o.mu.Unlock()
	o.deleteBatches(ctx, s, ended)
	return own
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

// dropReceiver deletes a deleted receiver's pending and dead deliveries:
// its own entries, and its share of the batches (a batch left with none of
// its deliveries is deleted; its events for this receiver stay in the
// others until they are deleted, never to be sent: the entry names the
// receiver's id).
func (o *eventOutbox) dropReceiver(ctx context.Context, s logical.Storage, name string) error {
	o.receivers.invalidate()
	var ended []*batchState
	o.mu.Lock()
	for k := range o.scheduled {
		if k.receiver == name {
			_, ended = o.forgetLocked(k, ended)
		}
	}
	delete(o.dead, name)
	o.mu.Unlock()
	o.deleteBatches(ctx, s, ended)
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
// Deliveries of receivers that no longer exist are removed. Own entries
// come first: a delivery that has one and is still in its batch (its
// batch not yet deleted when the process stopped) is the own entry's.
func (o *eventOutbox) rebuild(ctx context.Context, s logical.Storage) error {
	all, err := o.receivers.all(ctx, s)
	if err != nil {
		return err
	}
	if err := o.rebuildOwn(ctx, s, all); err != nil {
		return err
	}
	if err := o.rebuildBatches(ctx, s, all); err != nil {
		return err
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

// rebuildOwn schedules the deliveries with their own entry (retries, and
// every pending event of the versions before batches).
func (o *eventOutbox) rebuildOwn(ctx context.Context, s logical.Storage, all map[string]*webhookEntry) error {
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
			if !found {
				continue
			}
			o.mu.Lock()
			added := o.scheduleLocked(k, &pendingDelivery{lane: laneOfBody(e.Body)})
			o.mu.Unlock()
			if added {
				o.push(k, e.NextAttemptAt)
			}
		}
	}
	return nil
}

// rebuildBatches schedules the deliveries of the stored batches this
// process does not know, and deletes those left with none.
func (o *eventOutbox) rebuildBatches(ctx context.Context, s logical.Storage, all map[string]*webhookEntry) error {
	ids, err := s.List(ctx, outboxBatchPrefix)
	if err != nil {
		return err
	}
	sort.Strings(ids)
	for _, id := range ids {
		o.mu.Lock()
		_, known := o.batches[id]
		o.mu.Unlock()
		if known {
			continue
		}
		var stored outboxBatch
		found, err := getJSON(ctx, s, batchPath(id), &stored)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		b := &batchState{id: id}
		var due []queuedDelivery
		o.mu.Lock()
		for i := range stored.Events {
			ev := &stored.Events[i]
			lane := laneOfBody(ev.Body)
			for _, r := range ev.Receivers {
				if w := all[r.Name]; w == nil || w.ID != r.ID {
					continue // its receiver deleted (perhaps replaced)
				}
				k := deliveryKey{r.Name, ev.ID}
				if o.scheduleLocked(k, &pendingDelivery{lane: lane, batch: b, entry: ev.entryFor(r)}) {
					b.open++
					due = append(due, queuedDelivery{key: k, at: ev.Timestamp})
				}
			}
		}
		if b.open > 0 {
			o.batches[id] = b
		}
		o.mu.Unlock()
		if b.open == 0 {
			if err := s.Delete(ctx, batchPath(id)); err != nil {
				return err
			}
			continue
		}
		for _, d := range due {
			o.push(d.key, d.at)
		}
	}
	return nil
}

// pendingOf counts w's pending deliveries: from the schedule where this
// node delivers (a batch whose deliveries have all ended may still be
// stored for a while, see spareGrace), else as storage holds them.
func (o *eventOutbox) pendingOf(ctx context.Context, s logical.Storage, w *webhookEntry) (int, error) {
	o.mu.Lock()
	if o.ready && o.stopDelivering != nil {
		n := o.pendingBy[w.Name]
		o.mu.Unlock()
		return n, nil
	}
	o.mu.Unlock()
	return pendingFor(ctx, s, w)
}

// pendingFor counts receiver's pending deliveries as storage holds them:
// its share of the batches and its own entries, so that every node shows
// the same figure. The batches are read first: a delivery moves from its
// batch to its own entry by writing that entry before the batch goes, so
// it is counted once either way.
func pendingFor(ctx context.Context, s logical.Storage, w *webhookEntry) (int, error) {
	ids, err := s.List(ctx, outboxBatchPrefix)
	if err != nil {
		return 0, err
	}
	batched := map[string]bool{}
	for _, id := range ids {
		var b outboxBatch
		if _, err := getJSON(ctx, s, batchPath(id), &b); err != nil {
			return 0, err
		}
		for _, ev := range b.Events {
			for _, r := range ev.Receivers {
				if r.Name == w.Name && r.ID == w.ID {
					batched[ev.ID] = true
				}
			}
		}
	}
	own, err := s.List(ctx, outboxPendingPrefix+w.Name+"/")
	if err != nil {
		return 0, err
	}
	n := len(batched)
	for _, id := range own {
		if !batched[id] {
			n++
		}
	}
	return n, nil
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

// Bounds of one batch write: a group larger than either is written as
// several batches, at once. The bodies' bytes are bounded well below the
// smallest entry size a Vault storage takes (Consul's 512 KiB), since a
// body is escaped again inside the batch.
const (
	maxBatchEvents = 256
	maxBatchBytes  = 128 << 10
)

// outboxCommitter is the group commit of recordings. Up to
// maxBatchWrites batches are written at once, each by its group's leader
// (its first recording); while that many are in flight, the recordings
// that arrive join the next group, whose leader writes it as soon as one
// of them ends. An idle outbox so writes each event at once, alone; a
// busy one writes together the events that arrived while its writes were
// in flight.
type outboxCommitter struct {
	mu sync.Mutex
	// next is the group that recordings join; writing counts the groups
	// being written.
	next    *commitGroup
	writing int
}

// maxBatchWrites bounds the batch writes in flight at once. One: on Raft
// with 32 writers (make bench's -events row) two were no better and four
// cost more CPU per event, their batches being smaller.
const maxBatchWrites = 1

// commitGroup is the events one leader writes, through the storage its
// own request gave: every request of a mount holds a client of the same
// storage (Vault gives each request a new one).
type commitGroup struct {
	events []*batchedEvent
	// waiting says the leader waits for its turn, which is closed when it
	// may write; done is closed when it has written, with the batch of
	// each event (nil where its write failed) and the error of each.
	waiting    bool
	turn, done chan struct{}
	batches    []*batchState
	errs       []error
}

// commit stores ev in a batch and returns the batch once it is stored.
func (c *outboxCommitter) commit(ctx context.Context, s logical.Storage, o *eventOutbox, ev *batchedEvent) (*batchState, error) {
	c.mu.Lock()
	g := c.next
	leader := g == nil
	if leader {
		g = &commitGroup{turn: make(chan struct{}), done: make(chan struct{})}
		c.next = g
	}
	i := len(g.events)
	g.events = append(g.events, ev)
	if !leader {
		c.mu.Unlock()
		<-g.done
		return g.batches[i], g.errs[i]
	}
	if c.writing >= maxBatchWrites {
		g.waiting = true
		c.mu.Unlock()
		<-g.turn // the write that ended counted this one in writing
		c.mu.Lock()
	} else {
		c.writing++
	}
	c.next = nil // the group is closed: later recordings form the next
	c.mu.Unlock()
	// The requests waiting on this write are not the leader's to cancel.
	g.batches, g.errs = o.writeBatches(context.WithoutCancel(ctx), s, g.events)
	c.mu.Lock()
	if c.next != nil && c.next.waiting {
		c.next.waiting = false
		close(c.next.turn) // its leader writes in this write's place
	} else {
		c.writing--
	}
	c.mu.Unlock()
	close(g.done)
	return g.batches[i], g.errs[i]
}

// writeBatches stores events in batches within the bounds, at once, and
// returns each event's batch and error.
func (o *eventOutbox) writeBatches(ctx context.Context, s logical.Storage, events []*batchedEvent) ([]*batchState, []error) {
	bs, errs := make([]*batchState, len(events)), make([]error, len(events))
	var chunks [][2]int
	for first, size := 0, 0; first < len(events); {
		last := first
		for size = 0; last < len(events) && last-first < maxBatchEvents && (last == first || size+len(events[last].Body) <= maxBatchBytes); last++ {
			size += len(events[last].Body)
		}
		chunks = append(chunks, [2]int{first, last})
		first = last
	}
	if len(chunks) == 1 { // the common case: written here
		b, err := o.writeBatch(ctx, s, events)
		for i := range events {
			bs[i], errs[i] = b, err
		}
		return bs, errs
	}
	var wg sync.WaitGroup
	for _, ch := range chunks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := o.writeBatch(ctx, s, events[ch[0]:ch[1]])
			for i := ch[0]; i < ch[1]; i++ {
				bs[i], errs[i] = b, err
			}
		}()
	}
	wg.Wait()
	return bs, errs
}

// writeBatch stores events as one batch. The batch is known to the
// outbox before it is written, so that a rebuild running meanwhile leaves
// its deliveries to their recordings.
func (o *eventOutbox) writeBatch(ctx context.Context, s logical.Storage, events []*batchedEvent) (*batchState, error) {
	var id string
	if spare := o.takeSpare(); spare != nil {
		id = spare.id // overwritten: its deliveries have all ended
	} else {
		var err error
		if id, err = newTimedID("evb_", o.now()); err != nil {
			return nil, err
		}
	}
	stored := outboxBatch{ID: id, Events: make([]batchedEvent, len(events))}
	b := &batchState{id: id}
	for i, ev := range events {
		stored.Events[i] = *ev
		b.open += len(ev.Receivers)
	}
	o.mu.Lock()
	o.batches[id] = b
	o.mu.Unlock()
	if err := putJSON(ctx, s, batchPath(id), &stored); err != nil {
		// The entry holds the ended batch or this one: a spare either
		// way, deleted by the sweep.
		o.deleteBatches(ctx, s, []*batchState{b})
		return nil, err
	}
	return b, nil
}
