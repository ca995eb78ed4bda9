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
	slots   chan struct{}
	wg      sync.WaitGroup
}

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
		slots: make(chan struct{}, deliveryConcurrency),
	}
	// Stopping waits for the attempts in flight, which the cancelled
	// context ends at once.
	o.stopDelivering = func() {
		close(w.stopC)
		cancel()
		w.wg.Wait()
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
			select {
			case w.slots <- struct{}{}:
			case <-w.stopC:
				return
			}
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				defer func() { <-w.slots }()
				w.deliver(k)
			}()
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
// (removed), retry (rescheduled) or dead.
func (w *deliveryWorker) deliver(k deliveryKey) {
	o, ctx, s := w.o, w.ctx, w.storage
	log := o.logger()
	all, err := o.receivers.all(ctx, s)
	if err != nil {
		w.retryLater(k, "loading the receivers", err)
		return
	}
	rcv := all[k.receiver]
	var e outboxEntry
	found, err := getJSON(ctx, s, k.pendingPath(), &e)
	if err != nil {
		w.retryLater(k, "reading a pending event", err)
		return
	}
	if !found || rcv == nil {
		o.forget(k)
		if found {
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
		// it was and the next start tries again (at least once).
		return
	}
	e.Attempts++
	if e.FirstAttemptAt.IsZero() {
		e.FirstAttemptAt = now
	}
	e.LastAttemptAt, e.LastStatus = now, res.Status
	if res.Err == nil {
		e.LastError = ""
		if err := s.Delete(ctx, k.pendingPath()); err != nil {
			// Delivered but still pending in storage: it is sent again
			// after the next start; receivers drop it by its id.
			log.Warn("removing a delivered event from the outbox", "receiver", k.receiver, "id", k.id, "error", err)
		}
		o.forget(k)
		w.count(k.receiver, e, true, false)
		return
	}
	e.LastError = res.Err.Error()
	next, retry := o.schedule.Next(e.FirstAttemptAt, now, e.Attempts, nil)
	if retry {
		e.NextAttemptAt = next
		if err := putJSON(ctx, s, k.pendingPath(), &e); err != nil {
			log.Warn("storing a failed attempt; the event is tried again", "receiver", k.receiver, "id", k.id, "error", err)
		}
		o.push(k, next)
		w.count(k.receiver, e, false, false)
		return
	}
	e.DeadAt = now
	log.Warn("event delivery given up", "receiver", k.receiver, "id", k.id, "type", string(e.Type), "attempts", e.Attempts, "last_status", e.LastStatus, "last_error", e.LastError)
	if err := o.putDead(ctx, s, k, &e); err != nil {
		log.Warn("storing a dead event; it stays pending", "receiver", k.receiver, "id", k.id, "error", err)
		o.push(k, now.Add(o.schedule.Every))
		return
	}
	if err := s.Delete(ctx, k.pendingPath()); err != nil {
		log.Warn("removing a dead event from the outbox", "receiver", k.receiver, "id", k.id, "error", err)
	}
	o.forget(k)
	w.count(k.receiver, e, false, true)
}

// retryLater puts k back after a storage failure of the worker itself
// (not of the receiver), without counting an attempt.
func (w *deliveryWorker) retryLater(k deliveryKey, what string, err error) {
	if w.ctx.Err() != nil {
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
	exists := func() bool {
		all, err := w.o.receivers.all(w.ctx, w.storage)
		return err != nil || all[receiver] != nil
	}
	outcome := attemptOutcome{at: e.LastAttemptAt, status: e.LastStatus, errText: e.LastError, delivered: delivered, dead: dead}
	if err := w.o.figures.add(w.ctx, w.storage, receiver, exists, outcome); err != nil {
		w.o.logger().Warn("storing a receiver's delivery figures", "receiver", receiver, "error", err)
	}
}
