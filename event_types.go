package connect

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// eventType names one kind of connection lifecycle event, as receivers see
// it in an event body's "type".
type eventType string

const (
	eventConnectionCreated       eventType = "connection.created"
	eventConnectionUpdated       eventType = "connection.updated"
	eventConnectionDeleted       eventType = "connection.deleted"
	eventAuthorizationFailed     eventType = "connection.authorization_failed"
	eventRefreshFailed           eventType = "connection.refresh_failed"
	eventReauthorizationRequired eventType = "connection.reauthorization_required"
	eventRefreshRecovered        eventType = "connection.refresh_recovered"
)

// eventTypes lists every event type, in the order docs show them.
var eventTypes = []eventType{
	eventConnectionCreated,
	eventConnectionUpdated,
	eventConnectionDeleted,
	eventAuthorizationFailed,
	eventRefreshFailed,
	eventReauthorizationRequired,
	eventRefreshRecovered,
}

// eventError is the provider's error behind a failure event: its OAuth
// error code and its description, scrubbed of every secret the plugin
// holds for the connection.
type eventError struct {
	Code        string `json:"code,omitempty"`
	Description string `json:"description,omitempty"`
}

// eventData is an event body's "data". It never holds a credential, a
// refresh token or a config value: only names, states and tags.
type eventData struct {
	Integration     string            `json:"integration"`
	ConnectionID    string            `json:"connection_id"`
	AuthMode        string            `json:"auth_mode,omitempty"`
	RefreshStatus   string            `json:"refresh_status,omitempty"`
	RefreshFailures int               `json:"refresh_failures,omitempty"`
	Tags            map[string]string `json:"tags,omitempty"`
	Error           *eventError       `json:"error,omitempty"`

	// at is when the change happened, set for an event recorded later
	// than its change (an owed one): the recorder stamps the event with
	// it instead of the time of the recording. Not part of the body's data.
	at time.Time
}

// eventRecorder puts an event in the durable outbox. Callers record an
// event before the request that caused it answers (or before a background
// refresh is reported done), so that a crash after the answer loses
// nothing; an error means the event is not recorded.
type eventRecorder interface {
	record(ctx context.Context, s logical.Storage, typ eventType, data eventData) error
}

// pendingEvent is an event a change to a connection causes, recorded once
// the change is saved.
type pendingEvent struct {
	typ eventType
	err *eventError
}

// noteEvent attaches an event to the entry a change returns.
func (c *connectionEntry) noteEvent(typ eventType, e *eventError) {
	c.events = append(c.events, pendingEvent{typ: typ, err: e})
}

// takeEvents returns the events attached to c and detaches them, so that
// the entry the store keeps carries none.
func (c *connectionEntry) takeEvents() []pendingEvent {
	evs := c.events
	c.events = nil
	return evs
}

// eventDataOf is an event's data for connection c: names, states and tags,
// never a credential or a config value.
func eventDataOf(c *connectionEntry, e *eventError) eventData {
	d := eventData{
		Integration:  c.Integration,
		ConnectionID: c.ConnectionID,
		AuthMode:     string(c.AuthMode),
		Tags:         cloneMap(c.Tags),
		Error:        e,
	}
	if c.AuthMode.HasTokens() {
		d.RefreshStatus, d.RefreshFailures = string(c.RefreshStatus), c.RefreshFailures
		if c.RefreshStatus == "" { // entries that never failed
			d.RefreshStatus = string(refreshOK)
		}
	}
	return d
}
