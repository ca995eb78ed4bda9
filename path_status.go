// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"runtime"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathStatus(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "status",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "status",
		},
		Operations:      onlyOperation(logical.ReadOperation, b.pathStatusRead, "read", statusResponseFields()),
		HelpSynopsis:    "Show the refresh engine's and the event outbox's state on this node.",
		HelpDescription: pathStatusHelp,
	}}
}

func (b *backend) pathStatusRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	stats := b.engine.Stats()
	stored := b.store.Stats()
	events := b.outbox.stats()
	resp := &logical.Response{Data: map[string]any{
		"queue_size":             stats.QueueSize,
		"queue_ready":            stats.QueueReady,
		"queue_checked":          stats.QueueChecked,
		"next_refresh_at":        formatTime(stats.NextRefreshAt),
		"refresh_status_counts":  stats.StatusCounts,
		"refreshes_total":        stats.Refreshes,
		"refresh_failures_total": stats.Failures,
		"cached_connections":     stored.Cached,
		"unsaved_connections":    stored.Unsaved,
		"goroutines":             runtime.NumGoroutine(),
		"events_pending":         events.Pending,
		"events_dead":            events.Dead,
		"events_not_queued":      events.Overflows,
		"events_delivering":      events.Delivering,
		"events_owed":            stored.Owed,
		"events_owed_dropped":    stored.OwedDropped,
	}}
	limit := b.mountConfig.maxPendingEvents(ctx, req.Storage)
	if full := b.outbox.receiversAtBound(limit); len(full) > 0 {
		resp.AddWarning(fmt.Sprintf("webhook receivers at config's max_pending_events (%d deliveries pending each): %s; their new events are kept as dead unsent", limit, strings.Join(full, ", ")))
	}
	return resp, nil
}

const pathStatusHelp = `
The refresh engine as this node sees it:

  queue_size              connections with a scheduled background refresh
  queue_ready             whether the queue has been built from storage since
                          the plugin started (reads are served before that):
                          from the connections' schedule marks, in seconds
  queue_checked           whether every stored connection has been read
                          since the plugin started, the queue checked
                          against it (after queue_ready)
  next_refresh_at         the earliest scheduled refresh
  refresh_status_counts   token connections by refresh_status: ok, failing,
                          exhausted, reauthorization_required
  refreshes_total         refreshes done since the plugin started
  refresh_failures_total  refreshes that failed since the plugin started
  cached_connections      connection entries held in memory
  unsaved_connections     connections whose newly issued tokens storage
                          refused so far; kept in memory, served, and saved
                          again by every periodic tick until stored
  goroutines              the plugin process's goroutines, for leak watching
  events_pending          event deliveries waiting in the outbox (an event
                          counts once per webhook receiver); a warning names
                          the receivers whose own pending deliveries reached
                          config's max_pending_events
  events_dead             event deliveries given up, kept for a read at
                          webhooks/<name>/dead
  events_not_queued       events kept as dead unsent since the plugin started
                          because their receiver had max_pending_events
                          deliveries pending
  events_delivering       whether this node delivers events: the active node
                          does, standbys and performance standbys never
  events_owed             events of saved changes whose recording failed
                          (the outbox refused them); kept in memory, recorded
                          again by every periodic tick, lost if the plugin
                          stops first
  events_owed_dropped     owed events dropped since the plugin started
                          because 10000 were owed already (each is logged)

The same figures are emitted as metrics (connect.refresh.success,
connect.refresh.failure and connect.refresh.latency by integration, and
connect.refresh.queue_depth; connect.webhook.delivered, connect.webhook.failure
and connect.webhook.dead by receiver) through the plugin's go-metrics sink.
`

// statusResponseFields are what a status read returns.
func statusResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"queue_size":             typed(framework.TypeInt, "Connections with a scheduled background refresh."),
		"queue_ready":            typed(framework.TypeBool, "Whether the queue has been built from storage since the plugin started."),
		"queue_checked":          typed(framework.TypeBool, "Whether every stored connection has been read since the plugin started, the queue checked against it."),
		"next_refresh_at":        str("The earliest scheduled refresh (RFC 3339), empty when none."),
		"refresh_status_counts":  typed(framework.TypeMap, "Token connections by refresh_status."),
		"refreshes_total":        typed(framework.TypeInt64, "Refreshes done since the plugin started."),
		"refresh_failures_total": typed(framework.TypeInt64, "Refreshes that failed since the plugin started."),
		"cached_connections":     typed(framework.TypeInt, "Connection entries held in memory."),
		"unsaved_connections":    typed(framework.TypeInt, "Connections whose newly issued tokens storage has refused so far."),
		"goroutines":             typed(framework.TypeInt, "Goroutines of the plugin process, for leak watching."),
		"events_pending":         typed(framework.TypeInt, "Event deliveries waiting in the outbox (an event counts once per receiver)."),
		"events_dead":            typed(framework.TypeInt, "Event deliveries given up and kept for a read."),
		"events_not_queued":      typed(framework.TypeInt64, "Events kept as dead unsent since the plugin started because their receiver had max_pending_events deliveries pending."),
		"events_delivering":      typed(framework.TypeBool, "Whether this node delivers events (the active node does; standbys never)."),
		"events_owed":            typed(framework.TypeInt, "Events of saved changes whose recording failed, kept in memory and recorded again by the periodic tick."),
		"events_owed_dropped":    typed(framework.TypeInt64, "Owed events dropped since the plugin started because more than the bound were owed."),
	}
}
