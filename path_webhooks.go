// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/webhook"
)

func pathWebhooks(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "webhooks/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "webhooks",
			},
			Operations:      onlyOperation(logical.ListOperation, b.pathWebhookList, "list", listResponseFields("webhook receiver names")),
			HelpSynopsis:    "List the webhook receivers.",
			HelpDescription: "Lists the names of all webhook receivers, sorted, with each one's url and enabled in key_info.",
		},
		{
			Pattern: "webhooks/" + segment("name") + "/dead/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "webhook-dead-events",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeString, Description: "Name of the webhook receiver.", Required: true},
			},
			Operations:      onlyOperation(logical.ListOperation, b.pathWebhookDeadList, "list", listResponseFields("ids of the receiver's dead events, newest first")),
			HelpSynopsis:    "List the events given up for a webhook receiver.",
			HelpDescription: pathWebhookDeadHelp,
		},
		{
			Pattern: "webhooks/" + segment("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "webhook",
			},
			Fields:          webhookFields(),
			ExistenceCheck:  b.webhookExists,
			Operations:      entryOperations(b.pathWebhookRead, b.pathWebhookWrite, b.pathWebhookDelete, webhookResponseFields()),
			HelpSynopsis:    "Create, read, update or delete a webhook receiver of connection events.",
			HelpDescription: pathWebhookHelp,
		},
	}
}

func webhookFields() map[string]*framework.FieldSchema {
	types := make([]string, len(eventTypes))
	for i, t := range eventTypes {
		types[i] = string(t)
	}
	return map[string]*framework.FieldSchema{
		"name": {
			Type:        framework.TypeString,
			Description: "Name of the webhook receiver: letters, digits, '.', '_' and '-' (up to 128).",
			Required:    true,
		},
		"url": {
			Type:        framework.TypeString,
			Description: "Where events are POSTed: an https URL, or http to a loopback host (localhost, 127.0.0.0/8, ::1). Required on create.",
		},
		"events": {
			Type:        framework.TypeCommaStringSlice,
			Description: "The event types the receiver gets, as a list or comma-separated: " + strings.Join(types, ", ") + ". Empty (the default) means all.",
		},
		"enabled": {
			Type:        framework.TypeBool,
			Default:     true,
			Description: "Whether new events are recorded for the receiver. Events already pending are still delivered. Default true.",
		},
		"secret": {
			Type:        framework.TypeString,
			Description: "Signing secret, 'whsec_' followed by the standard base64 of 24 to 64 random bytes. Write-only: reads show secret_set. When absent on create one is generated and returned once. Writing it on update rotates to it as rotate_secret does.",
			DisplayAttrs: &framework.DisplayAttributes{
				Sensitive: true,
			},
		},
		"rotate_secret": {
			Type:        framework.TypeBool,
			Description: "On update: generate a new signing secret, returned once in this response. The previous secret keeps signing (a second signature) for secret_overlap.",
		},
		"concurrency": {
			Type:        framework.TypeInt,
			Default:     defaultDeliveryConcurrency,
			Description: fmt.Sprintf("How many attempts may be in flight to the receiver at once, 1 to %d (default %d), each over a kept-alive connection. One connection's events still go one at a time, in order. A receiver answering in 100 ms gets about 10 events a second per unit.", maxDeliveryConcurrency, defaultDeliveryConcurrency),
		},
		"secret_overlap": {
			Type:        framework.TypeDurationSecond,
			Default:     int(defaultSecretOverlap.Seconds()),
			Description: "After a rotation, how long deliveries also carry a signature with the previous secret, so receivers can switch without a gap. Default 24h; 0 drops the previous secret at once.",
		},
	}
}

func webhookResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"name":                  str("Name of the webhook receiver."),
		"url":                   str("Where events are POSTed."),
		"events":                typed(framework.TypeStringSlice, "The event types the receiver gets; empty means all."),
		"enabled":               typed(framework.TypeBool, "Whether new events are recorded for the receiver."),
		"secret":                str("The generated signing secret: only in the answer of the create or rotation that generated it."),
		"secret_set":            typed(framework.TypeBool, "Whether a signing secret is stored (it is never returned by a read)."),
		"secret_overlap":        typed(framework.TypeDurationSecond, "Seconds a rotated-out secret keeps signing deliveries."),
		"concurrency":           typed(framework.TypeInt, "How many attempts may be in flight to the receiver at once."),
		"previous_secret_until": str("Until when deliveries also carry the previous secret's signature (RFC 3339); empty when none."),
		"created_at":            str("When the receiver was created (RFC 3339)."),
		"updated_at":            str("When the receiver was last written (RFC 3339)."),
		"pending":               typed(framework.TypeInt, "Events waiting to be delivered to the receiver."),
		"delivered":             typed(framework.TypeInt64, "Events the receiver accepted (2xx)."),
		"failed":                typed(framework.TypeInt64, "Attempts that failed (non-2xx, timeout, refused connection); each retry counts."),
		"dead":                  typed(framework.TypeInt, "Events given up, listed at webhooks/<name>/dead."),
		"last_attempt_at":       str("When the last attempt was made (RFC 3339)."),
		"last_delivery_at":      str("When the receiver last accepted an event (RFC 3339)."),
		"last_status":           typed(framework.TypeInt, "The HTTP status of the last attempt; 0 when it got none."),
		"last_error":            str("Why the last attempt failed: a status or a transport failure (never the receiver's body); empty after a success."),
	}
}

func (b *backend) webhookExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	w, err := getWebhook(ctx, req.Storage, d.Get("name").(string))
	return existence(w != nil, err)
}

func (b *backend) pathWebhookList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := listWebhooks(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	info := make(map[string]any, len(names))
	for _, name := range names {
		w, err := getWebhook(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		if w != nil {
			info[name] = map[string]any{"url": w.URL, "enabled": w.Enabled}
		}
	}
	return logical.ListResponseWithInfo(names, info), nil
}

func (b *backend) pathWebhookRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateWebhookName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	w, err := getWebhook(ctx, req.Storage, name)
	if err != nil || w == nil {
		return nil, err
	}
	data, err := webhookResponse(ctx, req.Storage, b.outbox, w)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: data}, nil
}

// webhookResponse shows a receiver, its delivery figures and its pending
// and dead counts, read from storage so that every node shows them (the
// pending count from the delivering node's schedule where this is it).
func webhookResponse(ctx context.Context, s logical.Storage, o *eventOutbox, w *webhookEntry) (map[string]any, error) {
	st, err := getWebhookStats(ctx, s, w.Name)
	if err != nil {
		return nil, err
	}
	pending, err := o.pendingOf(ctx, s, w)
	if err != nil {
		return nil, err
	}
	dead, err := s.List(ctx, outboxDeadPrefix+w.Name+"/")
	if err != nil {
		return nil, err
	}
	events := make([]string, len(w.Events))
	for i, t := range w.Events {
		events[i] = string(t)
	}
	var prevUntil time.Time
	if w.PreviousSecret != "" {
		prevUntil = w.PreviousSecretUntil
	}
	return map[string]any{
		"name":                  w.Name,
		"url":                   w.URL,
		"events":                events,
		"enabled":               w.Enabled,
		"secret_set":            w.Secret != "",
		"secret_overlap":        int64(w.SecretOverlap.Seconds()),
		"concurrency":           w.concurrency(),
		"previous_secret_until": formatTime(prevUntil),
		"created_at":            formatTime(w.CreatedAt),
		"updated_at":            formatTime(w.UpdatedAt),
		"pending":               pending,
		"delivered":             st.Delivered,
		"failed":                st.Failed,
		"dead":                  len(dead),
		"last_attempt_at":       formatTime(st.LastAttemptAt),
		"last_delivery_at":      formatTime(st.LastDeliveryAt),
		"last_status":           st.LastStatus,
		"last_error":            st.LastError,
	}, nil
}

func (b *backend) pathWebhookWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateWebhookName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	unlock := b.outbox.receivers.lockWrites()
	defer unlock()
	old, err := getWebhook(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	now := b.now()
	w := &webhookEntry{Name: name, Enabled: true, SecretOverlap: defaultSecretOverlap, CreatedAt: now}
	if old != nil {
		cp := *old
		w = &cp
	}
	w.UpdatedAt = now
	if v, ok := d.GetOk("url"); ok {
		w.URL = strings.TrimSpace(v.(string))
	}
	if w.URL == "" {
		return logical.ErrorResponse("url is required"), nil
	}
	if err := webhook.CheckURL(w.URL); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if v, ok := d.GetOk("events"); ok {
		if w.Events, err = parseEventTypes(v.([]string)); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
	}
	if v, ok := d.GetOk("enabled"); ok {
		w.Enabled = v.(bool)
	}
	if v, ok := d.GetOk("secret_overlap"); ok {
		if w.SecretOverlap = time.Duration(v.(int)) * time.Second; w.SecretOverlap < 0 || w.SecretOverlap > 30*24*time.Hour {
			return logical.ErrorResponse("secret_overlap must be between 0 and 720h"), nil
		}
	}
	if v, ok := d.GetOk("concurrency"); ok {
		if w.Concurrency = v.(int); w.Concurrency < 1 || w.Concurrency > maxDeliveryConcurrency {
			return logical.ErrorResponse(fmt.Sprintf("concurrency must be between 1 and %d", maxDeliveryConcurrency)), nil
		}
	}
	given, hasSecret := d.GetOk("secret")
	rotate := d.Get("rotate_secret").(bool)
	if hasSecret && rotate {
		return logical.ErrorResponse("secret and rotate_secret=true cannot be given together: rotate_secret generates the new secret"), nil
	}
	if rotate && old == nil {
		return logical.ErrorResponse("rotate_secret applies to an existing receiver; a new one gets a generated secret unless secret is given"), nil
	}
	var generated string
	newSecret := ""
	switch {
	case hasSecret:
		newSecret = given.(string)
		if _, err := webhook.ParseSecret(newSecret); err != nil {
			return logical.ErrorResponse(err.Error()), nil
		}
	case rotate || old == nil:
		if generated, err = webhook.GenerateSecret(); err != nil {
			return nil, err
		}
		newSecret = generated
	}
	if newSecret != "" && newSecret != w.Secret {
		if old != nil && w.Secret != "" && w.SecretOverlap > 0 {
			w.PreviousSecret, w.PreviousSecretUntil = w.Secret, now.Add(w.SecretOverlap)
		} else {
			w.PreviousSecret, w.PreviousSecretUntil = "", time.Time{}
		}
		w.Secret = newSecret
	}
	if w.PreviousSecret != "" && !now.Before(w.PreviousSecretUntil) {
		w.PreviousSecret, w.PreviousSecretUntil = "", time.Time{}
	}
	if old == nil {
		if w.ID, err = newWebhookID(); err != nil {
			return nil, err
		}
		if err := b.outbox.resetFigures(ctx, req.Storage, name); err != nil {
			return nil, err
		}
	}
	if err := putWebhook(ctx, req.Storage, w); err != nil {
		return nil, err
	}
	b.outbox.receivers.invalidate()
	data, err := webhookResponse(ctx, req.Storage, b.outbox, w)
	if err != nil {
		return nil, err
	}
	if generated != "" {
		data["secret"] = generated
	}
	return &logical.Response{Data: data}, nil
}

// parseEventTypes checks a receiver's events against the known types.
func parseEventTypes(in []string) ([]eventType, error) {
	known := make(map[eventType]bool, len(eventTypes))
	for _, t := range eventTypes {
		known[t] = true
	}
	out := make([]eventType, 0, len(in))
	seen := map[eventType]bool{}
	for _, s := range in {
		t := eventType(strings.TrimSpace(s))
		if !known[t] {
			return nil, fmt.Errorf("events: unknown event type %q; known types: %s", printable(s), strings.Join(eventTypeNames(), ", "))
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

func eventTypeNames() []string {
	names := make([]string, len(eventTypes))
	for i, t := range eventTypes {
		names[i] = string(t)
	}
	return names
}

func (b *backend) pathWebhookDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateWebhookName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	unlock := b.outbox.receivers.lockWrites()
	defer unlock()
	if err := req.Storage.Delete(ctx, webhookPrefix+name); err != nil {
		return nil, err
	}
	// The receiver is gone first, so no new event is recorded for it
	// while its pending ones are dropped.
	if err := b.outbox.dropReceiver(ctx, req.Storage, name); err != nil {
		return nil, fmt.Errorf("dropping the receiver's pending events: %w", err)
	}
	return nil, nil
}

func (b *backend) pathWebhookDeadList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateWebhookName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	ids, entries, err := deadEntries(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	info := make(map[string]any, len(entries))
	for id, e := range entries {
		info[id] = map[string]any{
			"type":        string(e.Type),
			"timestamp":   formatTime(e.Timestamp),
			"attempts":    e.Attempts,
			"dead_at":     formatTime(e.DeadAt),
			"last_status": e.LastStatus,
			"last_error":  e.LastError,
			"body":        e.Body,
		}
	}
	return logical.ListResponseWithInfo(ids, info), nil
}

const pathWebhookHelp = `
A webhook receiver gets the connection lifecycle events (connection.created,
connection.updated, connection.deleted, connection.authorization_failed,
connection.refresh_failed, connection.reauthorization_required,
connection.refresh_recovered) as signed JSON POSTs, following Standard
Webhooks: headers webhook-id (the event id, the same on every retry),
webhook-timestamp (Unix seconds of the attempt) and webhook-signature
("v1,<base64 HMAC-SHA256 of id.timestamp.body>"; two during a rotation).

Events are written to an outbox in Vault's storage before the request that
caused them answers, and delivered at least once by the active node: at
once, then after about 5s, 30s, 2m, 10m, 30m, 1h and hourly up to 24h after
the first attempt, on any non-2xx answer, redirect or timeout (10s). Then the
event is dead: listed at webhooks/<name>/dead and counted in status.

    vault write connect/webhooks/app url=https://app.example.com/hooks/vault
    # answers with the generated secret, once
    vault write connect/webhooks/app rotate_secret=true

Up to concurrency attempts (default 16, at most 64) are in flight to the
receiver at once, but one connection's events go one at a time, in order:

    vault write connect/webhooks/app concurrency=32

Reads never show the secret (secret_set), nor the receiver's answers; they
show the delivery figures. Deleting a receiver drops its pending events.
See docs/events.md for the event bodies and how to verify a signature.
`

const pathWebhookDeadHelp = `
The events given up for this receiver (24h of failed attempts, or not queued
because the receiver had config's max_pending_events deliveries pending), newest first, with
each one's type, attempts, last status and error and the body that was sent.
At most 1000 are kept per receiver; older ones are removed.
`
