// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/webhook"
)

// TestWebhookSecretsNeverShown: no read, list, status, error, log line or
// outbox entry holds a secret the suite used.
func TestWebhookSecretsNeverShown(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{}, giveUpAfter(100*time.Millisecond))
	rcv := newHookReceiver(t, always(http.StatusInternalServerError))
	var secrets []string
	secrets = append(secrets, e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL + "/?token=url-token"})["secret"].(string))
	secrets = append(secrets, e.mustDo(logical.UpdateOperation, "webhooks/app", map[string]any{"rotate_secret": true})["secret"].(string))
	given, _ := webhook.GenerateSecret()
	secrets = append(secrets, given)
	e.mustDo(logical.UpdateOperation, "webhooks/app", map[string]any{"secret": given})
	bad := "whsec_" + base64.StdEncoding.EncodeToString([]byte("short-secret-bytes"))
	secrets = append(secrets, bad)
	msg := e.mustFail(logical.UpdateOperation, "webhooks/app", map[string]any{"secret": bad}, http.StatusBadRequest)
	if !strings.Contains(msg, "secret") {
		t.Fatalf("error %q does not name the field", msg)
	}
	recordTestEvent(t, e, eventConnectionCreated, "a")
	waitFor(t, "the dead event", func() bool { return e.b.outbox.stats().Dead == 1 })

	var shown []string
	for _, path := range []string{"webhooks/app", "status", "config"} {
		b, _ := json.Marshal(e.mustDo(logical.ReadOperation, path, nil))
		shown = append(shown, string(b))
	}
	for _, path := range []string{"webhooks/", "webhooks/app/dead"} {
		b, _ := json.Marshal(e.mustDo(logical.ListOperation, path, nil))
		shown = append(shown, string(b))
	}
	shown = append(shown, msg, e.logs.String())
	keys, _ := logical.CollectKeys(context.Background(), e.storage)
	for _, k := range keys {
		if strings.HasPrefix(k, "events/") || strings.HasPrefix(k, webhookStatsPrefix) {
			entry, _ := e.storage.Get(context.Background(), k)
			shown = append(shown, string(entry.Value))
		}
	}
	for _, text := range shown {
		for _, s := range secrets {
			if strings.Contains(text, s) || strings.Contains(text, strings.TrimPrefix(s, "whsec_")) {
				t.Fatalf("a secret appears in %.200q", text)
			}
		}
		if strings.Contains(text, "receiver body") {
			t.Fatalf("the receiver's body is kept: %.200q", text)
		}
	}
}

func TestWebhookDeleteDropsPending(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{}, retryHourly)
	rcv := newHookReceiver(t, always(http.StatusInternalServerError))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	e.mustDo(logical.CreateOperation, "webhooks/other", map[string]any{"url": rcv.URL, "events": "connection.deleted"})
	recordTestEvent(t, e, eventConnectionCreated, "a")
	recordTestEvent(t, e, eventConnectionDeleted, "a")
	if read := e.mustDo(logical.ReadOperation, "webhooks/app", nil); read["pending"] != 2 {
		t.Fatalf("app pending: %v", read["pending"])
	}
	if read := e.mustDo(logical.ReadOperation, "webhooks/other", nil); read["pending"] != 1 {
		t.Fatalf("other (deleted events only) pending: %v", read["pending"])
	}
	e.mustDo(logical.DeleteOperation, "webhooks/app", nil)
	// The events stay pending for other, in their batches or in its own
	// entries; none for app.
	if keys, _ := e.storage.List(context.Background(), outboxPendingPrefix+"app/"); len(keys) != 0 {
		t.Fatalf("app's entries after its delete: %v", keys)
	}
	if st := e.b.outbox.stats(); st.Pending != 1 {
		t.Fatalf("pending after delete: %d", st.Pending)
	}
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL, "enabled": false})
	if read := e.mustDo(logical.ReadOperation, "webhooks/app", nil); read["pending"] != 0 {
		t.Fatalf("a new app inherits pending events: %v", read["pending"])
	}
	if read := e.mustDo(logical.ReadOperation, "webhooks/other", nil); read["pending"] != 1 {
		t.Fatalf("other pending after app's delete: %v", read["pending"])
	}
	if st := e.b.outbox.stats(); st.Pending != 1 {
		t.Fatalf("pending after delete: %d", st.Pending)
	}
	e.mustDo(logical.UpdateOperation, "webhooks/other", map[string]any{"enabled": false})
	recordTestEvent(t, e, eventConnectionDeleted, "b")
	if st := e.b.outbox.stats(); st.Pending != 1 {
		t.Fatal("a disabled receiver got a new event")
	}
}

func TestWebhookWriteValidation(t *testing.T) {
	e := newTestEnv(t)
	before := e.snapshot()
	e.assertRejected([]rejection{
		{"missing url", "webhooks/app", map[string]any{}, "url is required"},
		{"http to a remote host", "webhooks/app", map[string]any{"url": "http://example.com/hook"}, "https"},
		{"unknown event", "webhooks/app", map[string]any{"url": "https://example.com/h", "events": "connection.created,connection.exploded"}, "connection.exploded"},
		{"bad secret", "webhooks/app", map[string]any{"url": "https://example.com/h", "secret": "whsec_c2hvcnQ="}, "secret must be"},
		{"rotate on create", "webhooks/app", map[string]any{"url": "https://example.com/h", "rotate_secret": true}, "rotate_secret"},
		{"bad name", "webhooks/a%20b", map[string]any{"url": "https://example.com/h"}, "webhook name"},
		{"no concurrency", "webhooks/app", map[string]any{"url": "https://example.com/h", "concurrency": 0}, "concurrency must be between 1 and 64"},
		{"too much concurrency", "webhooks/app", map[string]any{"url": "https://example.com/h", "concurrency": 65}, "concurrency must be between 1 and 64"},
	}, "c2hvcnQ=")
	e.assertUnchanged(before)
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": "https://example.com/h", "events": "connection.created"})
	if got := e.mustDo(logical.ReadOperation, "webhooks/app", nil)["concurrency"]; got != defaultDeliveryConcurrency {
		t.Fatalf("default concurrency %v, want %d", got, defaultDeliveryConcurrency)
	}
	e.mustFail(logical.UpdateOperation, "webhooks/app", map[string]any{"secret": "whsec_x", "rotate_secret": true}, http.StatusBadRequest)
	e.mustFail(logical.UpdateOperation, "webhooks/app", map[string]any{"concurrency": -1}, http.StatusBadRequest)
	list := e.mustDo(logical.ListOperation, "webhooks/", nil)
	if keys := list["keys"].([]string); len(keys) != 1 || keys[0] != "app" {
		t.Fatalf("list: %v", list)
	}
}
