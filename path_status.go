// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"runtime"

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
		HelpSynopsis:    "Show the refresh engine's state on this node.",
		HelpDescription: pathStatusHelp,
	}}
}

func (b *backend) pathStatusRead(_ context.Context, _ *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	stats := b.engine.Stats()
	stored := b.store.Stats()
	return &logical.Response{Data: map[string]any{
		"queue_size":             stats.QueueSize,
		"queue_ready":            stats.QueueReady,
		"next_refresh_at":        formatTime(stats.NextRefreshAt),
		"refresh_status_counts":  stats.StatusCounts,
		"refreshes_total":        stats.Refreshes,
		"refresh_failures_total": stats.Failures,
		"cached_connections":     stored.Cached,
		"unsaved_connections":    stored.Unsaved,
		"goroutines":             runtime.NumGoroutine(),
	}}, nil
}

const pathStatusHelp = `
The refresh engine as this node sees it:

  queue_size              connections with a scheduled background refresh
  queue_ready             whether the queue has been built from storage since
                          the plugin started (reads are served before that)
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

The same figures are emitted as metrics (connect.refresh.success,
connect.refresh.failure and connect.refresh.latency by integration, and
connect.refresh.queue_depth) through the plugin's go-metrics sink.
`

// statusResponseFields are what a status read returns.
func statusResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"queue_size":             typed(framework.TypeInt, "Connections with a scheduled background refresh."),
		"queue_ready":            typed(framework.TypeBool, "Whether the queue has been built from storage since the plugin started."),
		"next_refresh_at":        str("The earliest scheduled refresh (RFC 3339), empty when none."),
		"refresh_status_counts":  typed(framework.TypeMap, "Token connections by refresh_status."),
		"refreshes_total":        typed(framework.TypeInt64, "Refreshes done since the plugin started."),
		"refresh_failures_total": typed(framework.TypeInt64, "Refreshes that failed since the plugin started."),
		"cached_connections":     typed(framework.TypeInt, "Connection entries held in memory."),
		"unsaved_connections":    typed(framework.TypeInt, "Connections whose newly issued tokens storage has refused so far."),
		"goroutines":             typed(framework.TypeInt, "Goroutines of the plugin process, for leak watching."),
	}
}
