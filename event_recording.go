// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"
)

// owedEvent is an event whose connection change was saved but whose
// recording failed: kept in memory and recorded again, with the time of
// its change, before any newer event of its connection.
type owedEvent struct {
	key  string // the connection's
	typ  eventType
	data eventData
}

// maxOwedEvents bounds the events kept in memory for a storage that keeps
// refusing the outbox; beyond it the oldest are dropped, each logged and
// counted (status's events_owed_dropped).
const maxOwedEvents = 10000

// recordEvents records the events of connection c (as saved, or as it was
// before a delete) in order, under c's event lock, after the events c
// still owes:
// one connection's events are recorded in the order of its changes, each
// with the time of its change. When one fails, it and the ones after it
// are owed (recorded again by RecordOwed, from the periodic hook, or by
// the connection's next change), and the error is an
// *eventNotRecordedError.
func (cs *connectionStore) recordEvents(ctx context.Context, s logical.Storage, c *connectionEntry, events []pendingEvent) error {
	if cs.events == nil {
		return nil
	}
	key := connectionKey(c.Integration, c.ConnectionID)
	defer cs.eventLocks.Lock(key)()
	queue := cs.takeOwed(key)
	for _, ev := range events {
		queue = append(queue, owedEvent{key: key, typ: ev.typ, data: eventDataOf(c, ev.err)})
	}
	if ev, err := cs.recordQueue(ctx, s, queue); err != nil {
		return &eventNotRecordedError{typ: ev.typ, key: key, cause: err}
	}
	return nil
}

// recordQueue records one connection's events in order; the first that
// fails is returned with the error, and it and those after it are owed.
func (cs *connectionStore) recordQueue(ctx context.Context, s logical.Storage, queue []owedEvent) (owedEvent, error) {
	for i, ev := range queue {
		if err := cs.events.record(ctx, s, ev.typ, ev.data); err != nil {
			cs.owe(queue[i:])
			return ev, err
		}
	}
	return owedEvent{}, nil
}

// takeOwed removes and returns, in order, the events key owes.
func (cs *connectionStore) takeOwed(key string) []owedEvent {
	cs.owedMu.Lock()
	defer cs.owedMu.Unlock()
	if len(cs.owed) == 0 {
		return nil
	}
	var mine, rest []owedEvent
	for _, ev := range cs.owed {
		if ev.key == key {
			mine = append(mine, ev)
		} else {
			rest = append(rest, ev)
		}
	}
	if mine != nil {
		cs.owed = rest
	}
	return mine
}

// owe keeps events owed, each stamped with the time of its change (now,
// for those not owed before: their change was just saved).
func (cs *connectionStore) owe(events []owedEvent) {
	now := cs.now().UTC()
	cs.owedMu.Lock()
	defer cs.owedMu.Unlock()
	for _, ev := range events {
		if ev.data.at.IsZero() {
			ev.data.at = now
		}
		cs.owed = append(cs.owed, ev)
	}
	if over := len(cs.owed) - maxOwedEvents; over > 0 {
		for _, ev := range cs.owed[:over] {
			// Lost for good: said once per event, naming what a
			// receiver will never hear of (tags and errors stay out).
			cs.logger().Error("an owed event is dropped: more than the bound are owed",
				"type", ev.typ, "integration", ev.data.Integration, "connection_id", ev.data.ConnectionID, "bound", maxOwedEvents)
		}
		cs.owedDropped.Add(int64(over))
		cs.owed = append([]owedEvent(nil), cs.owed[over:]...)
	}
}

// RecordOwed records the owed events, each connection's under its event
// lock and in order, and keeps those that fail again. It costs nothing when
// none is owed.
func (cs *connectionStore) RecordOwed(ctx context.Context, s logical.Storage) error {
	cs.owedMu.Lock()
	var keys []string
	seen := map[string]bool{}
	for _, ev := range cs.owed {
		if !seen[ev.key] {
			seen[ev.key] = true
			keys = append(keys, ev.key)
		}
	}
	cs.owedMu.Unlock()
	if len(keys) == 0 || cs.events == nil {
		return nil
	}
	for _, key := range keys {
		unlock := cs.eventLocks.Lock(key)
		_, err := cs.recordQueue(ctx, s, cs.takeOwed(key))
		unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// eventOwed reports whether err only says that a saved change's events
// are owed: the change itself is stored.
func eventOwed(err error) bool {
	var ne *eventNotRecordedError
	return errors.As(err, &ne)
}

// eventNotRecordedError is a change that was saved, or a delete that may
// have happened, whose event could not be recorded: a 500, so that the
// caller repeats the request and the event is recorded then.
type eventNotRecordedError struct {
	typ   eventType
	key   string
	cause error
}

func (e *eventNotRecordedError) Error() string {
	return fmt.Sprintf("the %s event of %q could not be recorded (%v); repeat the request so that it is", e.typ, e.key, e.cause)
}

func (e *eventNotRecordedError) Unwrap() error { return e.cause }

// noteStatusApplied attaches to next, a WAL record's entry applied over
// stored, the event its change of refresh status means, when storage's
// status is no longer the one the record's change started from (base):
// the process that wrote the record recorded the events of its own change,
// but not of one from a status storage took since (a refresh that failed
// with the refresh token the record replaced).
func noteStatusApplied(stored, next *connectionEntry, base *walBase) {
	before, after := stored.refreshState(), next.refreshState()
	if before == base.Status && stored.RefreshFailures == base.Failures {
		return
	}
	stopped := func(s refreshStatus) bool { return s == refreshReauth || s == refreshExhausted }
	switch {
	case after == refreshOK && (before != refreshOK || stored.RefreshFailures > 0):
		next.noteEvent(eventRefreshRecovered, nil)
	case stopped(after) && !stopped(before):
		next.noteEvent(eventReauthorizationRequired, nil)
	}
}
