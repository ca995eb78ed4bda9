// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/armon/go-metrics"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/webhook"
)

// deliveryWorker sends the outbox's due deliveries. It runs only where
// storage is writable (the active node), from initialize until clean; it
// sleeps until the earliest delivery is due or an event is recorded, so
// that while nothing is pending it makes no storage operation at all.
type deliveryWorker struct {
	o       *eventOutbox
	storage logical.Storage
	stopC   chan struct{}
	ctx     context.Context
	wg      sync.WaitGroup

	// Each receiver's concurrency bounds its attempts in flight; a
	// receiver at its bound has its due deliveries parked, in the order
	// they fell due, and each of its attempts that ends takes the next, so
	// that a slow receiver holds back none of the others. A delivery whose
	// connection (lane) has an attempt in flight to the receiver, or an
	// earlier delivery parked, is parked too: one connection's events
	// reach a receiver in the order they were recorded.
	mu       sync.Mutex
	inFlight map[string]int
	parked   map[string][]parkedDelivery
	// laneInFlight marks the lanes with an attempt in flight, laneParked
	// counts each lane's parked deliveries.
	laneInFlight map[receiverLane]bool
	laneParked   map[receiverLane]int
}

// parkedDelivery is a due delivery waiting for its receiver or its lane.
type parkedDelivery struct {
	k    deliveryKey
	lane string
}

// receiverLane is one connection's deliveries to one receiver.
type receiverLane struct{ receiver, lane string }

// parkedScan bounds how far an ending attempt looks among its receiver's
// parked deliveries for one whose lane is free.
const parkedScan = 256

// startDelivery rebuilds the schedule from storage and starts delivering,
// in the background. It does nothing when already started.
func (o *eventOutbox) startDelivery(s logical.Storage) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopDelivering != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &deliveryWorker{
		o: o, storage: s, stopC: make(chan struct{}), ctx: ctx,
		inFlight: map[string]int{}, parked: map[string][]parkedDelivery{},
		laneInFlight: map[receiverLane]bool{}, laneParked: map[receiverLane]int{},
	}
	// Stopping waits for the attempts in flight, which the cancelled
	// context ends at once.
	o.stopDelivering = func() {
		close(w.stopC)
		cancel()
		w.wg.Wait()
		w.requeueParked()
		o.stopSweeping(context.Background(), s)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		start := time.Now()
		if err := o.rebuild(ctx, s); err != nil {
			// The deliveries stay in storage; the next start finds them.
			o.logger().Error("loading the event outbox; its deliveries wait for the next start", "error", err)
		} else {
			st := o.stats()
			o.logger().Info("event outbox loaded", "pending", st.Pending, "dead", st.Dead, "duration", time.Since(start))
		}
		w.loop()
	}()
}

// stopDelivery stops the worker, if one runs, and waits for it.
func (o *eventOutbox) stopDelivery() {
	o.mu.Lock()
	stop := o.stopDelivering
	o.stopDelivering = nil
	o.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (w *deliveryWorker) loop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		k, wait, ok := w.o.nextDue()
		if ok && wait <= 0 {
			w.dispatch(k)
			continue
		}
		var fire <-chan time.Time
		if ok {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-w.stopC:
			return
		case <-w.o.wake:
		case <-fire:
		}
		// Since Go 1.23 a stopped timer delivers nothing stale to Reset.
		timer.Stop()
	}
}

// dispatch starts an attempt at k, or parks k while its receiver has its
// concurrency's attempts in flight or its lane has one in flight or parked.
// A parked delivery stays pending in storage: if the worker stops first,
// the next start delivers it.
func (w *deliveryWorker) dispatch(k deliveryKey) {
	p := parkedDelivery{k: k, lane: w.o.lane(k)}
	rl := receiverLane{k.receiver, p.lane}
	limit := w.concurrency(k.receiver)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight[k.receiver] >= limit || (p.lane != "" && (w.laneInFlight[rl] || w.laneParked[rl] > 0)) {
		w.parked[k.receiver] = append(w.parked[k.receiver], p)
		if p.lane != "" {
			w.laneParked[rl]++
		}
		return
	}
	w.inFlight[k.receiver]++
	w.startLane(rl)
	w.wg.Add(1)
	go w.run(p)
}

// concurrency is receiver's bound on attempts in flight, as the loaded
// receivers say (the default while they are not loaded: the attempt loads
// them).
func (w *deliveryWorker) concurrency(receiver string) int {
	if rcv := w.o.receivers.loaded()[receiver]; rcv != nil {
		return rcv.concurrency()
	}
	return defaultDeliveryConcurrency
}

// run attempts p, then parked deliveries of its receiver one by one, until
// none can start or the worker stops.
func (w *deliveryWorker) run(p parkedDelivery) {
	defer w.wg.Done()
	for {
		w.deliver(p.k)
		next, ok := w.nextParked(p)
		if !ok {
			return
		}
		p = next
	}
}

// nextParked ends done's attempt and takes its receiver's earliest parked
// delivery whose lane has no attempt in flight (scanning in order, the
// first such of a lane is its earliest); when there is none within
// parkedScan, or the worker is stopping, it counts one attempt of the
// receiver less in flight and returns false. The attempts in flight of the
// lanes it passed over take theirs when they end.
func (w *deliveryWorker) nextParked(done parkedDelivery) (parkedDelivery, bool) {
	receiver := done.k.receiver
	limit := w.concurrency(receiver)
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.laneInFlight, receiverLane{receiver, done.lane})
	q := w.parked[receiver]
	if w.inFlight[receiver] > limit {
		q = nil // its concurrency was lowered: this attempt's place goes
	}
	for i := 0; w.ctx.Err() == nil && i < len(q) && i < parkedScan; i++ {
		p := q[i]
		rl := receiverLane{receiver, p.lane}
		if p.lane != "" && w.laneInFlight[rl] {
			continue
		}
		if i == 0 {
			q = q[1:]
		} else {
			q = append(q[:i], q[i+1:]...) // in place: parked is the only reference
		}
		if len(q) == 0 {
			delete(w.parked, receiver)
		} else {
			w.parked[receiver] = q
		}
		if p.lane != "" {
			if w.laneParked[rl]--; w.laneParked[rl] <= 0 {
				delete(w.laneParked, rl)
			}
		}
		w.startLane(rl)
		return p, true
	}
	if w.inFlight[receiver]--; w.inFlight[receiver] <= 0 {
		delete(w.inFlight, receiver)
	}
	return parkedDelivery{}, false
}

// startLane marks rl's attempt in flight; w.mu is held.
func (w *deliveryWorker) startLane(rl receiverLane) {
	if rl.lane != "" {
		w.laneInFlight[rl] = true
	}
}

// requeueParked gives the deliveries still parked when the worker stopped
// back to the outbox's schedule, so that a worker started again in this
// process delivers them (they are pending in storage all along).
func (w *deliveryWorker) requeueParked() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for receiver, q := range w.parked {
		for _, p := range q {
			w.o.push(p.k, w.o.now())
		}
		delete(w.parked, receiver)
	}
	clear(w.laneParked)
}

// nextDue pops the earliest delivery when it is due; otherwise it says how
// long until it is. ok is false when nothing is pending.
func (o *eventOutbox) nextDue() (k deliveryKey, wait time.Duration, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.queue.Len() > 0 {
		it := o.queue[0]
		if _, live := o.scheduled[it.key]; !live {
			heap.Pop(&o.queue) // delivered, dropped or given up meanwhile
			continue
		}
		if wait = it.at.Sub(o.now()); wait > 0 {
			return deliveryKey{}, wait, true
		}
		heap.Pop(&o.queue)
		return it.key, 0, true
	}
	return deliveryKey{}, 0, false
}

// deliver makes one attempt at k and stores its outcome: delivered
// (removed), retry (rescheduled, in its own entry) or dead.
func (w *deliveryWorker) deliver(k deliveryKey) {
	o, ctx, s := w.o, w.ctx, w.storage
	log := o.logger()
	all, err := o.receivers.all(ctx, s)
	if err != nil {
		w.retryLater(k, "loading the receivers", err)
		return
	}
	rcv := all[k.receiver]
	e, inBatch, found, err := o.pendingEntry(ctx, s, k)
	if err != nil {
		w.retryLater(k, "reading a pending event", err)
		return
	}
	if !found || rcv == nil || rcv.ID != e.ReceiverID {
		// Delivered meanwhile, or its receiver deleted (perhaps replaced
		// by one of the same name, which must not get it).
		o.forget(ctx, s, k)
		if found && !inBatch {
			_ = s.Delete(ctx, k.pendingPath())
		}
		return
	}
	now := o.now()
	keys, err := rcv.signingKeys(now)
	var res webhook.Result
	if err != nil {
		res = webhook.Result{Err: err}
	} else {
		res = o.sender.Send(ctx, webhook.Message{URL: rcv.URL, ID: e.ID, Body: []byte(e.Body), Keys: keys})
	}
	if ctx.Err() != nil {
		// Stopping: the attempt's outcome is unknown, the entry stays as
		// it was and the next start, or the next worker of this process,
		// tries again (at least once).
		o.push(k, o.now())
		return
	}
	e.Attempts++
	if e.FirstAttemptAt.IsZero() {
		e.FirstAttemptAt = now
	}
	e.LastAttemptAt, e.LastStatus = now, res.Status
	if res.Err == nil {
		e.LastError = ""
		if !inBatch {
			if err := s.Delete(ctx, k.pendingPath()); err != nil {
				// Delivered but still pending in storage: it is sent again
				// after the next start; receivers drop it by its id.
				log.Warn("removing a delivered event from the outbox", "receiver", k.receiver, "id", k.id, "error", err)
			}
		}
		o.forget(ctx, s, k) // a batch's last delivery deletes the batch
		w.count(k.receiver, *e, true, false)
		return
	}
	e.LastError = res.Err.Error()
	next, retry := o.schedule.Next(e.FirstAttemptAt, now, e.Attempts, nil)
	if retry {
		e.NextAttemptAt = next
		kept := w.storeOutcome(k, e.ReceiverID, inBatch, func() {
			// A delivery of a batch moves to its own entry, which its
			// retries rewrite; should storage refuse it, it stays in the
			// batch with its attempts counted in memory.
			if err := putJSON(ctx, s, k.pendingPath(), e); err != nil {
				log.Warn("storing a failed attempt; the event is tried again", "receiver", k.receiver, "id", k.id, "error", err)
				if inBatch {
					o.keepAttempt(k, e)
				}
				return
			}
			if inBatch {
				o.movedOut(ctx, s, k)
			}
		})
		if kept {
			o.push(k, next)
			w.count(k.receiver, *e, false, false)
		}
		return
	}
	e.DeadAt = now
	var deadErr error
	if kept := w.storeOutcome(k, e.ReceiverID, inBatch, func() { deadErr = o.putDead(ctx, s, k, e) }); !kept {
		return
	}
	log.Warn("event delivery given up", "receiver", k.receiver, "id", k.id, "type", string(e.Type), "attempts", e.Attempts, "last_status", e.LastStatus, "last_error", e.LastError)
	if deadErr != nil {
		log.Warn("storing a dead event; it stays pending", "receiver", k.receiver, "id", k.id, "error", deadErr)
		if inBatch {
			o.keepAttempt(k, e)
		}
		o.push(k, now.Add(o.schedule.Every))
		return
	}
	if !inBatch {
		if err := s.Delete(ctx, k.pendingPath()); err != nil {
			log.Warn("removing a dead event from the outbox", "receiver", k.receiver, "id", k.id, "error", err)
		}
	}
	o.forget(ctx, s, k)
	w.count(k.receiver, *e, false, true)
}

// storeOutcome runs store, which writes k's entry back (pending or dead),
// under the receivers' write lock and only if k's receiver is still the
// one the entry was recorded for. Otherwise the receiver was deleted while
// the attempt was in flight (and perhaps replaced by one of the same name):
// the delivery is dropped, so that it is neither written back after the
// delete removed it nor inherited by the new receiver. kept says which.
func (w *deliveryWorker) storeOutcome(k deliveryKey, receiverID string, inBatch bool, store func()) (kept bool) {
	o := w.o
	unlock := o.receivers.lockWrites()
	defer unlock()
	// Receiver writes and deletes invalidate the set under this lock, so
	// what all returns here is what storage holds.
	all, err := o.receivers.all(w.ctx, w.storage)
	if err == nil && (all[k.receiver] == nil || all[k.receiver].ID != receiverID) {
		o.forget(w.ctx, w.storage, k)
		if !inBatch {
			if err := w.storage.Delete(w.ctx, k.pendingPath()); err != nil {
				o.logger().Warn("removing a deleted receiver's event from the outbox", "receiver", k.receiver, "id", k.id, "error", err)
			}
		}
		return false
	}
	// When the receivers cannot be read the outcome is stored: the entry
	// carries its receiver's id, so the next attempt or start drops it
	// if its receiver is gone.
	store()
	return true
}

// retryLater puts k back after a storage failure of the worker itself
// (not of the receiver), without counting an attempt.
func (w *deliveryWorker) retryLater(k deliveryKey, what string, err error) {
	if w.ctx.Err() != nil {
		w.o.push(k, w.o.now()) // stopping: for the next worker
		return
	}
	w.o.logger().Warn("event delivery: "+what+"; trying again", "receiver", k.receiver, "id", k.id, "error", err)
	w.o.push(k, w.o.now().Add(w.o.schedule.Delays[0]))
}

// count adds an attempt's outcome to the receiver's stored figures and
// metrics.
func (w *deliveryWorker) count(receiver string, e outboxEntry, delivered, dead bool) {
	labels := []metrics.Label{{Name: "receiver", Value: receiver}}
	if delivered {
		metrics.IncrCounterWithLabels([]string{"connect", "webhook", "delivered"}, 1, labels)
	} else {
		metrics.IncrCounterWithLabels([]string{"connect", "webhook", "failure"}, 1, labels)
	}
	if dead {
		metrics.IncrCounterWithLabels([]string{"connect", "webhook", "dead"}, 1, labels)
	}
	outcome := attemptOutcome{at: e.LastAttemptAt, status: e.LastStatus, errText: e.LastError, delivered: delivered, dead: dead}
	if w.o.figures.queue(receiver, outcome) {
		w.wg.Add(1)
		go w.flushFigures(receiver)
	}
}

// flushFigures writes receiver's queued outcomes into its stored figures,
// at most once per figuresEvery, until none is queued; the worker's stop
// has it write what is queued at once.
func (w *deliveryWorker) flushFigures(receiver string) {
	defer w.wg.Done()
	// The last write happens as the worker stops: not the stop's to cancel.
	ctx := context.WithoutCancel(w.ctx)
	exists := func() bool {
		all, err := w.o.receivers.all(ctx, w.storage)
		return err != nil || all[receiver] != nil
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if wait := w.o.figures.due(receiver, time.Now()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-w.stopC:
			}
		}
		batch, ok := w.o.figures.take(receiver, time.Now())
		if !ok {
			return
		}
		if err := w.o.figures.store(ctx, w.storage, receiver, exists, batch); err != nil {
			w.o.logger().Warn("storing a receiver's delivery figures", "receiver", receiver, "error", err)
		}
	}
}
