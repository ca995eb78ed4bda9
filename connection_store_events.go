// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"
)

// owedEvent is an event whose connection change was saved but whose
// recording failed: kept in memory and recorded again by RecordOwed.
type owedEvent struct {
	typ  eventType
	data eventData
}

// maxOwedEvents bounds the events kept in memory for a storage that keeps
// refusing the outbox; beyond it the oldest are dropped, each logged and
// counted (status's events_owed_dropped).
const maxOwedEvents = 10000

// recordEvents records the events of connection c (as saved, or as it is
// before a delete) in order, under c's lock. When one fails, it and the
// ones after it are owed (recorded again by RecordOwed, from the periodic
// hook), and the error is an *eventNotRecordedError.
func (cs *connectionStore) recordEvents(ctx context.Context, s logical.Storage, c *connectionEntry, events []pendingEvent) error {
	if cs.events == nil {
		return nil
	}
	for i, ev := range events {
		data := eventDataOf(c, ev.err)
		if err := cs.events.record(ctx, s, ev.typ, data); err != nil {
			cs.owe(c, events[i:])
			return &eventNotRecordedError{typ: ev.typ, key: connectionKey(c.Integration, c.ConnectionID), cause: err}
		}
	}
	return nil
}

func (cs *connectionStore) owe(c *connectionEntry, events []pendingEvent) {
	cs.owedMu.Lock()
	defer cs.owedMu.Unlock()
	for _, ev := range events {
		cs.owed = append(cs.owed, owedEvent{typ: ev.typ, data: eventDataOf(c, ev.err)})
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

// RecordOwed records the owed events, oldest first, and keeps those that
// fail again. It costs nothing when none is owed.
func (cs *connectionStore) RecordOwed(ctx context.Context, s logical.Storage) error {
	cs.owedMu.Lock()
	owed := cs.owed
	cs.owed = nil
	cs.owedMu.Unlock()
	if len(owed) == 0 || cs.events == nil {
		return nil
	}
	for i, ev := range owed {
		if err := cs.events.record(ctx, s, ev.typ, ev.data); err != nil {
			cs.owedMu.Lock()
			cs.owed = append(append([]owedEvent(nil), owed[i:]...), cs.owed...)
			cs.owedMu.Unlock()
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
