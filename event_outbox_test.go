// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/webhook"
)

// testSchedule retries within milliseconds, so that a test sees a whole
// retry sequence.
var testSchedule = webhook.Schedule{
	Delays:      []time.Duration{20 * time.Millisecond, 40 * time.Millisecond},
	Every:       50 * time.Millisecond,
	GiveUpAfter: time.Minute,
}

// hookRequest is one request a test receiver got.
type hookRequest struct {
	header http.Header
	body   []byte
	status int
}

// hookReceiver is a webhook receiver on loopback whose answers a test
// sets: answer returns the status for the n-th request (0-based), or 0 to
// hang past the sender's timeout.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []hookRequest
	answer func(n int) int
}

func newHookReceiver(t *testing.T, answer func(n int) int) *hookReceiver {
	t.Helper()
	r := &hookReceiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.got)
		status := r.answer(n)
		r.got = append(r.got, hookRequest{header: req.Header.Clone(), body: body, status: status})
		r.mu.Unlock()
		if status == 0 {
			select { // hang until the sender gives up
			case <-req.Context().Done():
			case <-time.After(2 * time.Second):
			}
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, "receiver body that must never be stored")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) setAnswer(answer func(n int) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = answer
}

func (r *hookReceiver) requests() []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookRequest(nil), r.got...)
}

// accepted counts each event id's 2xx-answered requests.
func (r *hookReceiver) accepted() map[string]int {
	out := map[string]int{}
	for _, req := range r.requests() {
		if req.status >= 200 && req.status < 300 {
			out[req.header.Get("webhook-id")]++
		}
	}
	return out
}

// retryHourly keeps a failed delivery pending for the rest of a test.
func retryHourly(s *webhook.Schedule) {
	*s = webhook.Schedule{Delays: []time.Duration{time.Hour}, Every: time.Hour, GiveUpAfter: 24 * time.Hour}
}

func giveUpAfter(d time.Duration) func(*webhook.Schedule) {
	return func(s *webhook.Schedule) { s.GiveUpAfter = d }
}

func always(status int) func(int) int { return func(int) int { return status } }

// newEventsEnv is a test backend that delivers events on testSchedule
// (changed by adjust, if given) with a short sender timeout, started as
// Vault starts a mount.
func newEventsEnv(t *testing.T, s logical.Storage, adjust ...func(*webhook.Schedule)) *testEnv {
	t.Helper()
	e := newTestEnvOn(t, s)
	e.b.outbox.schedule = testSchedule
	for _, f := range adjust {
		f(&e.b.outbox.schedule)
	}
	e.b.outbox.sender = webhook.NewSender(300*time.Millisecond, nil)
	initializeMount(t, e)
	t.Cleanup(func() { e.b.Cleanup(context.Background()) })
	return e
}

// verifyStandardWebhook is written from the Standard Webhooks
// specification, not from the plugin's signing code: the key is the
// base64 after "whsec_"; the signed content "<webhook-id>.<webhook-
// timestamp>.<body>"; the header space-separated "v1,<base64>" entries,
// one of which must match. It returns how many entries match.
func verifyStandardWebhook(t *testing.T, secret string, h http.Header, body []byte) int {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("secret is not whsec_ + base64: %v", err)
	}
	m := hmac.New(sha256.New, key)
	io.WriteString(m, h.Get("webhook-id")+"."+h.Get("webhook-timestamp")+"."+string(body))
	want := m.Sum(nil)
	matches := 0
	for _, sig := range strings.Split(h.Get("webhook-signature"), " ") {
		if b64, ok := strings.CutPrefix(sig, "v1,"); ok {
			if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, want) {
				matches++
			}
		}
	}
	return matches
}

// verifyWithLibrary verifies a delivery with the Standard Webhooks
// project's own Go library, as a receiver would (timestamp tolerance
// included).
func verifyWithLibrary(t *testing.T, secret string, h http.Header, body []byte) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("the library refuses the secret: %v", err)
	}
	return wh.Verify(body, h)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func recordTestEvent(t *testing.T, e *testEnv, typ eventType, id string) {
	t.Helper()
	err := e.b.events.record(context.Background(), e.storage, typ, eventData{
		Integration: "github", ConnectionID: id, AuthMode: "OAUTH2", RefreshStatus: "ok",
		Tags: map[string]string{"organization_id": "acme"},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWebhookDeliversSignedEvent(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{})
	rcv := newHookReceiver(t, always(http.StatusNoContent))
	created := e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	secret, _ := created["secret"].(string)
	if _, err := webhook.ParseSecret(secret); err != nil {
		t.Fatalf("create returned no usable generated secret: %v", err)
	}
	read := e.mustDo(logical.ReadOperation, "webhooks/app", nil)
	if _, shown := read["secret"]; shown || read["secret_set"] != true {
		t.Fatalf("read shows the secret or no secret_set: %v", read)
	}

	recordTestEvent(t, e, eventConnectionCreated, "c1")
	waitFor(t, "the delivery", func() bool { return len(rcv.accepted()) == 1 })
	req := rcv.requests()[0]
	if verifyStandardWebhook(t, secret, req.header, req.body) != 1 {
		t.Fatalf("signature %q does not verify", req.header.Get("webhook-signature"))
	}
	if err := verifyWithLibrary(t, secret, req.header, req.body); err != nil {
		t.Fatalf("the Standard Webhooks library refuses the delivery: %v", err)
	}
	other, _ := webhook.GenerateSecret()
	if verifyWithLibrary(t, other, req.header, req.body) == nil {
		t.Fatal("the library verifies the delivery with an unrelated secret")
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(req.body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body) != 4 || body["type"] == nil || body["id"] == nil || body["timestamp"] == nil || body["data"] == nil {
		t.Fatalf("body has members other than type, id, timestamp, data: %s", req.body)
	}
	var ev struct {
		Type, ID, Timestamp string
		Data                eventData
	}
	json.Unmarshal(req.body, &ev)
	if ev.Type != "connection.created" || ev.ID != req.header.Get("webhook-id") || ev.Data.ConnectionID != "c1" || ev.Data.Tags["organization_id"] != "acme" {
		t.Fatalf("body %s, header id %q", req.body, req.header.Get("webhook-id"))
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err != nil {
		t.Fatalf("timestamp %q: %v", ev.Timestamp, err)
	}
	waitFor(t, "the delivery figures", func() bool {
		return e.mustDo(logical.ReadOperation, "webhooks/app", nil)["delivered"] == int64(1)
	})
	read = e.mustDo(logical.ReadOperation, "webhooks/app", nil)
	if read["pending"] != 0 || read["last_status"] != http.StatusNoContent || read["last_delivery_at"] == "" || read["last_error"] != "" {
		t.Fatalf("read after delivery: %v", read)
	}
}

// TestWebhookRetriesUntilReceiverRecovers: a receiver answering 500, then
// 429, then hanging past the timeout, then 200, gets every event, each
// accepted exactly once, with the same webhook-id on every attempt.
func TestWebhookRetriesUntilReceiverRecovers(t *testing.T) {
	reliabilityCase(t, "a webhook receiver answering 500, then 429, then not answering within the timeout",
		"every event is retried with the same webhook-id and accepted exactly once when the receiver recovers")
	e := newEventsEnv(t, &logical.InmemStorage{})
	var mu sync.Mutex
	failures := []int{500, 429, 0, 500, 429, 0}
	rcv := newHookReceiver(t, func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		if n < len(failures) {
			return failures[n]
		}
		return http.StatusOK
	})
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	for _, id := range []string{"a", "b", "c"} {
		recordTestEvent(t, e, eventRefreshFailed, id)
	}
	waitFor(t, "three accepted events", func() bool { return len(rcv.accepted()) == 3 })
	time.Sleep(200 * time.Millisecond) // room for a wrong extra delivery
	for id, n := range rcv.accepted() {
		if n != 1 {
			t.Fatalf("event %s accepted %d times", id, n)
		}
	}
	statuses := map[int]int{}
	for _, r := range rcv.requests() {
		statuses[r.status]++
	}
	if statuses[500] != 2 || statuses[429] != 2 || statuses[0] != 2 || statuses[200] != 3 {
		t.Fatalf("answers given: %v", statuses)
	}
	read := e.mustDo(logical.ReadOperation, "webhooks/app", nil)
	if read["failed"] != int64(6) || read["delivered"] != int64(3) || read["pending"] != 0 {
		t.Fatalf("figures: %v", read)
	}
	ids := map[string]bool{}
	for _, r := range rcv.requests() {
		ids[r.header.Get("webhook-id")] = true
	}
	if len(ids) != 3 {
		t.Fatalf("%d distinct webhook-ids over the retries, want 3", len(ids))
	}
}

// TestWebhookOutboxSurvivesRestart: events recorded while the receiver is
// down, and by a process that stops (or dies) before delivering them, are
// delivered by the next process on the same storage.
func TestWebhookOutboxSurvivesRestart(t *testing.T) {
	reliabilityCase(t, "events recorded while the receiver is down; the plugin stops, or dies before delivering",
		"the next process on the same storage delivers every event, each accepted once")
	s := &logical.InmemStorage{}
	rcv := newHookReceiver(t, always(http.StatusServiceUnavailable))
	first := newEventsEnv(t, s)
	first.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	recordTestEvent(t, first, eventConnectionCreated, "a")
	recordTestEvent(t, first, eventConnectionDeleted, "b")
	waitFor(t, "failed attempts", func() bool { return len(rcv.requests()) >= 2 })
	first.b.Cleanup(context.Background())

	// A process that records and dies before its worker starts.
	crashed := newTestEnvOn(t, s)
	recordTestEvent(t, crashed, eventConnectionUpdated, "c")

	rcv.setAnswer(always(http.StatusOK))
	before := len(rcv.requests())
	newEventsEnv(t, s)
	waitFor(t, "the three events after the restart", func() bool { return len(rcv.accepted()) == 3 })
	for id, n := range rcv.accepted() {
		if n != 1 {
			t.Fatalf("event %s accepted %d times", id, n)
		}
	}
	if len(rcv.requests())-before != 3 {
		t.Fatalf("%d requests after the restart, want 3", len(rcv.requests())-before)
	}
}

func TestWebhookRotationSignsWithBothSecrets(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{})
	rcv := newHookReceiver(t, always(http.StatusOK))
	oldSecret := e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})["secret"].(string)
	rotated := e.mustDo(logical.UpdateOperation, "webhooks/app", map[string]any{"rotate_secret": true})
	newSecret, _ := rotated["secret"].(string)
	if newSecret == "" || newSecret == oldSecret || rotated["previous_secret_until"] == "" {
		t.Fatalf("rotation answer: %v", rotated)
	}
	recordTestEvent(t, e, eventConnectionCreated, "a")
	waitFor(t, "the delivery", func() bool { return len(rcv.accepted()) == 1 })
	req := rcv.requests()[0]
	if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != 2 {
		t.Fatalf("%d signatures during the overlap, want 2", n)
	}
	if verifyStandardWebhook(t, oldSecret, req.header, req.body) != 1 || verifyStandardWebhook(t, newSecret, req.header, req.body) != 1 {
		t.Fatal("the old and the new secret do not both verify")
	}
	for _, secret := range []string{oldSecret, newSecret} {
		if err := verifyWithLibrary(t, secret, req.header, req.body); err != nil {
			t.Fatalf("the Standard Webhooks library refuses a delivery during the overlap: %v", err)
		}
	}

	// Given secret, no overlap: one signature, by the given secret.
	given, _ := webhook.GenerateSecret()
	resp := e.mustDo(logical.UpdateOperation, "webhooks/app", map[string]any{"secret": given, "secret_overlap": 0})
	if _, shown := resp["secret"]; shown {
		t.Fatal("a given secret is echoed")
	}
	recordTestEvent(t, e, eventConnectionCreated, "b")
	waitFor(t, "the second delivery", func() bool { return len(rcv.accepted()) == 2 })
	req = rcv.requests()[1]
	if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != 1 || verifyStandardWebhook(t, given, req.header, req.body) != 1 {
		t.Fatalf("after a rotation without overlap: %q", req.header.Get("webhook-signature"))
	}
}

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

func TestWebhookDeadAfterSchedule(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{}, giveUpAfter(150*time.Millisecond))
	rcv := newHookReceiver(t, always(http.StatusBadGateway))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	recordTestEvent(t, e, eventConnectionCreated, "a")
	waitFor(t, "the event to die", func() bool { return e.b.outbox.stats().Dead == 1 })
	status := e.mustDo(logical.ReadOperation, "status", nil)
	if status["events_dead"] != 1 || status["events_pending"] != 0 {
		t.Fatalf("status: %v", status)
	}
	dead := e.mustDo(logical.ListOperation, "webhooks/app/dead", nil)
	ids := dead["keys"].([]string)
	info := dead["key_info"].(map[string]any)[ids[0]].(map[string]any)
	if len(ids) != 1 || info["last_status"] != http.StatusBadGateway || info["type"] != "connection.created" || info["attempts"].(int) < 2 {
		t.Fatalf("dead list: %v", dead)
	}
	attempts := len(rcv.requests())
	time.Sleep(200 * time.Millisecond)
	if len(rcv.requests()) != attempts {
		t.Fatal("a dead event is still tried")
	}
	if read := e.mustDo(logical.ReadOperation, "webhooks/app", nil); read["dead"] != 1 || read["last_error"] != "receiver answered 502" {
		t.Fatalf("read: %v", read)
	}
}

// TestWebhookOutboxBound: past max_pending_events a new event is kept as
// dead, unsent; status counts it and warns.
func TestWebhookOutboxBound(t *testing.T) {
	e := newEventsEnv(t, &logical.InmemStorage{}, retryHourly)
	rcv := newHookReceiver(t, always(http.StatusInternalServerError))
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_pending_events": 2})
	e.mustFail(logical.UpdateOperation, "config", map[string]any{"max_pending_events": 0}, http.StatusBadRequest)
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	for _, id := range []string{"a", "b", "c"} {
		recordTestEvent(t, e, eventConnectionCreated, id)
	}
	resp, _ := e.do(logical.ReadOperation, "status", nil)
	if resp.Data["events_pending"] != 2 || resp.Data["events_dead"] != 1 || resp.Data["events_not_queued"] != int64(1) {
		t.Fatalf("status: %v", resp.Data)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "max_pending_events") {
		t.Fatalf("status warnings: %v", resp.Warnings)
	}
	dead := e.mustDo(logical.ListOperation, "webhooks/app/dead", nil)
	ids := dead["keys"].([]string)
	if info := dead["key_info"].(map[string]any)[ids[0]].(map[string]any); info["attempts"] != 0 || !strings.Contains(info["last_error"].(string), "max_pending_events") {
		t.Fatalf("dead: %v", dead)
	}
	if !strings.Contains(e.logs.String(), "event outbox full") {
		t.Fatal("no warning logged")
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
	keys, _ := e.storage.List(context.Background(), outboxPendingPrefix)
	if len(keys) != 1 || keys[0] != "other/" {
		t.Fatalf("outbox after delete: %v", keys)
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

// TestWebhookIdleCostsNoStorage: with nothing pending the worker makes no
// storage operation, and neither does recording an event no receiver takes.
func TestWebhookIdleCostsNoStorage(t *testing.T) {
	counting := &countingStorage{Storage: &logical.InmemStorage{}}
	e := newEventsEnv(t, counting)
	rcv := newHookReceiver(t, always(http.StatusOK))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL, "events": "connection.deleted"})
	recordTestEvent(t, e, eventConnectionDeleted, "warm") // loads the receivers
	waitFor(t, "the delivery", func() bool { return len(rcv.accepted()) == 1 })
	time.Sleep(50 * time.Millisecond) // the delivery's figures are stored
	before := counting.ops.Load()
	recordTestEvent(t, e, eventConnectionCreated, "not-wanted")
	time.Sleep(300 * time.Millisecond)
	if n := counting.ops.Load() - before; n != 0 {
		t.Fatalf("%d storage operations while nothing was pending", n)
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
	}, "c2hvcnQ=")
	e.assertUnchanged(before)
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": "https://example.com/h", "events": "connection.created"})
	e.mustFail(logical.UpdateOperation, "webhooks/app", map[string]any{"secret": "whsec_x", "rotate_secret": true}, http.StatusBadRequest)
	list := e.mustDo(logical.ListOperation, "webhooks/", nil)
	if keys := list["keys"].([]string); len(keys) != 1 || keys[0] != "app" {
		t.Fatalf("list: %v", list)
	}
}

// TestWebhookRecordFailsWhenStorageRefuses: an event whose entry storage
// refuses for one receiver is reported to the caller and sent to none: the
// entry already written for another receiver is removed, since the caller
// records the event again (under a new id).
func TestWebhookRecordFailsWhenStorageRefuses(t *testing.T) {
	s := &flakyStorage{Storage: &logical.InmemStorage{}, failPrefix: outboxPendingPrefix + "zz-second/"}
	e := newEventsEnv(t, s)
	rcv := newHookReceiver(t, always(http.StatusOK))
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	e.mustDo(logical.CreateOperation, "webhooks/zz-second", map[string]any{"url": rcv.URL})
	s.failPuts.Store(1)
	err := e.b.events.record(context.Background(), e.storage, eventConnectionCreated, eventData{Integration: "github", ConnectionID: "a"})
	if err == nil {
		t.Fatal("record reported success for an event storage refused")
	}
	if st := e.b.outbox.stats(); st.Pending != 0 {
		t.Fatalf("%d deliveries scheduled for an unrecorded event", st.Pending)
	}
	if keys, _ := logical.CollectKeysWithPrefix(context.Background(), e.storage, outboxPendingPrefix); len(keys) != 0 {
		t.Fatalf("a partly recorded event stays in the outbox: %v", keys)
	}
	e.mustDo(logical.DeleteOperation, "webhooks/zz-second", nil)
	recordTestEvent(t, e, eventConnectionCreated, "b")
	waitFor(t, "the next event", func() bool { return len(rcv.accepted()) == 1 })
	time.Sleep(100 * time.Millisecond)
	if got := len(rcv.requests()); got != 1 {
		t.Fatalf("the receiver got %d requests, want only the recorded event's", got)
	}
}

// TestWebhookStandbyNeverDelivers: a performance standby that starts (and
// ticks) on storage holding pending events sends none of them; status says
// it does not deliver.
func TestWebhookStandbyNeverDelivers(t *testing.T) {
	rcv := newHookReceiver(t, always(http.StatusOK))
	active := newTestEnv(t)
	active.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	recordTestEvent(t, active, eventConnectionCreated, "a") // no worker: stays pending

	e, _ := replicaEnv(t, consts.ReplicationPerformanceStandby)
	e.storage = active.storage
	initializeMount(t, e)
	t.Cleanup(func() { e.b.Cleanup(context.Background()) })
	if err := e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(rcv.requests()); n != 0 {
		t.Fatalf("a performance standby sent %d requests", n)
	}
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "status", Storage: e.storage})
	if err != nil || resp.Data["events_delivering"] != false {
		t.Fatalf("status on a standby: %v %v", err, resp)
	}
}
