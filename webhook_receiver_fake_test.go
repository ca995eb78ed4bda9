// SPDX-License-Identifier: MPL-2.0

// The root package's webhook test receivers and event helpers (a receiver
// that records and answers as told, a backend that delivers on a fast
// schedule, Standard Webhooks verification), shared by the event tests.

package connect

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/webhook"
	"github.com/hashicorp/vault/sdk/logical"
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
	err := e.b.outbox.record(context.Background(), e.storage, typ, eventData{
		Integration: "github", ConnectionID: id, AuthMode: "OAUTH2", RefreshStatus: "ok",
		Tags: map[string]string{"organization_id": "acme"},
	})
	if err != nil {
		t.Fatal(err)
	}
}
