// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// standardWebhooksVerify checks a delivery's signature as the Standard
// Webhooks specification defines it, written here from the specification
// and not from the plugin's code: the key is the base64 after "whsec_",
// the signed content "<webhook-id>.<webhook-timestamp>.<body>", and
// webhook-signature holds space-separated "v1,<base64 HMAC-SHA256>", any
// one of which may match.
func standardWebhooksVerify(secret string, h http.Header, body []byte) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return fmt.Errorf("the secret is not whsec_ and base64")
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return fmt.Errorf("missing webhook-id or webhook-timestamp")
	}
	var unix int64
	if _, err := fmt.Sscanf(ts, "%d", &unix); err != nil || time.Since(time.Unix(unix, 0)).Abs() > 5*time.Minute {
		return fmt.Errorf("webhook-timestamp %q is not a recent Unix time", ts)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Split(h.Get("webhook-signature"), " ") {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no signature in %q matches", h.Get("webhook-signature"))
}

// receivedEvent is one delivery an eventReceiver accepted.
type receivedEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		Integration     string            `json:"integration"`
		ConnectionID    string            `json:"connection_id"`
		AuthMode        string            `json:"auth_mode"`
		RefreshStatus   string            `json:"refresh_status"`
		RefreshFailures int               `json:"refresh_failures"`
		Tags            map[string]string `json:"tags"`
		Error           *struct {
			Code        string `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	} `json:"data"`
	body string
}

// eventReceiver is a webhook receiver on loopback that verifies every
// delivery, answers 503 while down, and keeps the events of one
// integration prefix (other tests' events may reach it too).
type eventReceiver struct {
	*httptest.Server
	secret string
	prefix string
	down   atomic.Bool
	// held, while set, keeps each delivery unanswered until release is
	// closed or the sender goes away.
	held    atomic.Bool
	release chan struct{}
	holding atomic.Int64 // deliveries held so far

	mu        sync.Mutex
	accepted  []receivedEvent
	attempted map[string]int // by webhook-id, down or not
	bad       []string
}

func newEventReceiver(t *testing.T, prefix string) *eventReceiver {
	t.Helper()
	r := &eventReceiver{prefix: prefix, attempted: map[string]int{}, release: make(chan struct{})}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *eventReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if r.held.Load() {
		r.holding.Add(1)
		select {
		case <-r.release:
		case <-req.Context().Done():
			return // the sender is gone (killed)
		}
	}
	var ev receivedEvent
	err := json.Unmarshal(body, &ev)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || !strings.HasPrefix(ev.Data.Integration, r.prefix) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	r.attempted[req.Header.Get("webhook-id")]++
	if r.down.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if err := standardWebhooksVerify(r.secret, req.Header, body); err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if ev.ID != req.Header.Get("webhook-id") {
		r.bad = append(r.bad, fmt.Sprintf("body id %q, header %q", ev.ID, req.Header.Get("webhook-id")))
	}
	ev.body = string(body)
	r.accepted = append(r.accepted, ev)
	w.WriteHeader(http.StatusNoContent)
}

// await waits until an event of typ for connection id has arrived and
// returns the first one.
func (r *eventReceiver) await(t *testing.T, typ, id string) receivedEvent {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		for _, ev := range r.accepted {
			if ev.Type == typ && ev.Data.ConnectionID == id {
				r.mu.Unlock()
				return ev
			}
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for %q arrived; got %v", typ, id, r.summary())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *eventReceiver) summary() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.accepted {
		out = append(out, ev.Type+" "+ev.Data.ConnectionID)
	}
	return out
}

// register writes the receiver to the mount and keeps its secret.
func (r *eventReceiver) register(t *testing.T, s *vaultServer, name string) {
	t.Helper()
	out := jsonOut(t, s, "write", "connect/webhooks/"+name, "url="+r.URL)
	secret, _ := out["data"].(map[string]any)["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("receiver create returned no secret: %v", out)
	}
	noteSecrets(secret)
	r.mu.Lock()
	r.secret = secret
	r.mu.Unlock()
	t.Cleanup(func() { s.cli(nil, "delete", "connect/webhooks/"+name) })
}

// TestEventsThroughVault: the lifecycle events of an OAuth consent, of a
// provider that refuses refreshes and of one that recovers, of a refused
// consent and of a delete reach a receiver on loopback, signed as Standard Webhooks says,
// with the connection's tags and no secret.
func TestEventsThroughVault(t *testing.T) {
	s := vaultFor(t)
	rcv := newEventReceiver(t, "ev-")
	rcv.register(t, s, "e2e-events")
	as := flowServer(t, s, "http://127.0.0.1/")
	s.mustCLI(t, "write", "connect/integrations/ev-gh", "auth_mode=OAUTH2", "client_id="+as.ClientID,
		"client_secret="+as.ClientSecret, "auth_url="+as.AuthURL(), "token_url="+as.TokenURL(), "scopes=repo")

	// OAuth consent through the callback, with tags given to authorize.
	authURL := s.mustCLI(t, "write", "-field=authorization_url", "connect/connections/ev-gh/acme/authorize",
		"tags=organization_id=acme", "tags=end_user_id=u-42")
	if _, status, body := browse(t, authURL); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, body)
	}
	created := rcv.await(t, "connection.created", "acme")
	if created.Data.Tags["organization_id"] != "acme" || created.Data.Tags["end_user_id"] != "u-42" ||
		created.Data.AuthMode != "OAUTH2" || created.Data.Integration != "ev-gh" {
		t.Fatalf("connection.created = %s", created.body)
	}

	// A provider that refuses the refresh for good.
	as.Fail("invalid_grant", http.StatusBadRequest)
	s.failCLI(t, "write", "-force", "connect/connections/ev-gh/acme/refresh")
	failed := rcv.await(t, "connection.refresh_failed", "acme")
	reauth := rcv.await(t, "connection.reauthorization_required", "acme")
	if failed.Data.Error == nil || failed.Data.Error.Code != "invalid_grant" || failed.Data.RefreshFailures != 1 ||
		reauth.Data.RefreshStatus != "reauthorization_required" || reauth.Data.Tags["organization_id"] != "acme" {
		t.Fatalf("refusal events:\n%s\n%s", failed.body, reauth.body)
	}
	if failed.Timestamp > reauth.Timestamp {
		t.Fatalf("reauthorization_required (%s) recorded before refresh_failed (%s)", reauth.Timestamp, failed.Timestamp)
	}

	// A provider that fails once and recovers.
	as.Fail("", 0)
	s.mustCLI(t, "write", "connect/connections/ev-gh/bob", "access_token=at-ev-bob", "refresh_token="+as.IssueRefreshToken(),
		"expires_in=3600", "tags=organization_id=globex")
	noteSecrets("at-ev-bob")
	rcv.await(t, "connection.created", "bob")
	as.Fail("temporarily_unavailable", http.StatusServiceUnavailable)
	s.failCLI(t, "write", "-force", "connect/connections/ev-gh/bob/refresh")
	if ev := rcv.await(t, "connection.refresh_failed", "bob"); ev.Data.Error == nil || ev.Data.Error.Code != "temporarily_unavailable" {
		t.Fatalf("refresh_failed = %s", ev.body)
	}
	as.Fail("", 0)
	s.mustCLI(t, "write", "-force", "connect/connections/ev-gh/bob/refresh")
	if ev := rcv.await(t, "connection.refresh_recovered", "bob"); ev.Data.RefreshStatus != "ok" || ev.Data.Tags["organization_id"] != "globex" {
		t.Fatalf("refresh_recovered = %s", ev.body)
	}

	// The customer refuses consent.
	as.Deny("access_denied", "the customer said no")
	authURL = s.mustCLI(t, "write", "-field=authorization_url", "connect/connections/ev-gh/carol/authorize", "tags=end_user_id=u-7")
	if _, status, _ := browse(t, authURL); status != http.StatusBadRequest {
		t.Fatalf("denied consent: %d", status)
	}
	as.Deny("", "")
	denied := rcv.await(t, "connection.authorization_failed", "carol")
	if denied.Data.Error == nil || denied.Data.Error.Code != "access_denied" || denied.Data.Tags["end_user_id"] != "u-7" {
		t.Fatalf("authorization_failed = %s", denied.body)
	}

	s.mustCLI(t, "delete", "connect/connections/ev-gh/acme")
	if ev := rcv.await(t, "connection.deleted", "acme"); ev.Data.Tags["organization_id"] != "acme" {
		t.Fatalf("connection.deleted = %s", ev.body)
	}

	rcv.checkClean(t, as.Secrets())
}

// checkClean fails on a delivery that did not verify, and on an event
// body that holds any secret the suite used (or its base64).
func (r *eventReceiver) checkClean(t *testing.T, more []string) {
	t.Helper()
	secretsMu.Lock()
	secrets := append(append([]string(nil), literals...), more...)
	secretsMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Fatalf("deliveries that do not verify: %v", r.bad)
	}
	for _, ev := range r.accepted {
		for _, secret := range secrets {
			if len(secret) < minLeakLen {
				continue
			}
			if strings.Contains(ev.body, secret) || strings.Contains(ev.body, base64.StdEncoding.EncodeToString([]byte(secret))) {
				t.Fatalf("a %s event body holds a secret: %s", ev.Type, ev.body)
			}
		}
	}
}

// TestEventsSurviveReceiverOutageAndPluginKill: events recorded while the
// receiver answers 503, the plugin process SIGKILLed after their first
// attempts, then the receiver back: every event arrives, each id once or
// more, none missing.
func TestEventsSurviveReceiverOutageAndPluginKill(t *testing.T) {
	s := vaultFor(t)
	rcv := newEventReceiver(t, "evk-")
	rcv.register(t, s, "e2e-events-kill")
	rcv.down.Store(true)
	s.mustCLI(t, "write", "connect/integrations/evk-key", "auth_mode=API_KEY")
	const n = 6
	want := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		s.mustCLI(t, "write", "connect/connections/evk-key/"+id, "api_key=sk-evk-secret-"+id, "tags=batch=kill")
		noteSecrets("sk-evk-secret-" + id)
		want["connection.created "+id] = true
	}
	s.mustCLI(t, "delete", "connect/connections/evk-key/c0")
	want["connection.deleted c0"] = true

	// Every event has been tried once, and refused, before the kill.
	deadline := time.Now().Add(20 * time.Second)
	for {
		rcv.mu.Lock()
		tried := len(rcv.attempted)
		rcv.mu.Unlock()
		if tried >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver saw %d of %d events while down", tried, len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	pids := s.PluginPIDs()
	if len(pids) == 0 {
		t.Fatal("no plugin process to kill")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("SIGKILL %d: %v", pid, err)
		}
	}
	rcv.down.Store(false)
	// Vault starts the plugin again on the mount's next request.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := s.cli(nil, "read", "connect/connections/evk-key/c1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the plugin did not come back after the kill")
		}
	}

	for _, pid := range s.PluginPIDs() {
		for _, old := range pids {
			if pid == old {
				t.Fatalf("plugin process %d survived its SIGKILL", pid)
			}
		}
	}

	start := time.Now()
	deadline = time.Now().Add(90 * time.Second)
	for {
		got := map[string]bool{}
		ids := map[string]bool{}
		rcv.mu.Lock()
		for _, ev := range rcv.accepted {
			got[ev.Type+" "+ev.Data.ConnectionID] = true
			ids[ev.ID] = true
		}
		var missingIDs []string
		for id := range rcv.attempted {
			if !ids[id] {
				missingIDs = append(missingIDs, id)
			}
		}
		rcv.mu.Unlock()
		var missing []string
		for k := range want {
			if !got[k] {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 && len(missingIDs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the outage and the kill, missing events %v and ids %v", missing, missingIDs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("figure|events after a receiver outage and a plugin SIGKILL: all %d delivered %v after the receiver came back", len(want), time.Since(start).Round(time.Second))
	rcv.checkClean(t, nil)
}

// TestEventsOfConcurrentWritesSurvivePluginKill: 16 clients create
// connections at once, so that their events share batch writes (the
// outbox's group commit); the receiver holds every delivery unanswered, so
// the events are still in their batches when the plugin process is
// SIGKILLed in the middle of the writes. Every write Vault answered with
// success has its connection.created delivered after the restart: none
// of the acknowledged events is lost.
func TestEventsOfConcurrentWritesSurvivePluginKill(t *testing.T) {
	s := vaultFor(t)
	reliabilityCase(t, "16 clients writing connections at once (events recorded in shared batches), deliveries held unanswered, the plugin SIGKILLed mid-writes",
		"every event of a write answered with success is delivered after the restart")
	rcv := newEventReceiver(t, "evg-")
	rcv.register(t, s, "e2e-events-group")
	rcv.held.Store(true)
	s.mustCLI(t, "write", "connect/integrations/evg-key", "auth_mode=API_KEY")

	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%02d-%04d", w, n)
				body := strings.NewReader(fmt.Sprintf(`{"api_key":"sk-evg-secret-%s"}`, id))
				req, _ := http.NewRequest("PUT", s.addr+"/v1/connect/connections/evg-key/"+id, body)
				req.Header.Set("X-Vault-Token", "root")
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 300 {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		}()
	}
	// Writes go on for a second, then the plugin dies under them; they
	// go on for another second against the restarted plugin.
	time.Sleep(time.Second)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	pids := s.PluginPIDs()
	if len(pids) == 0 || before == 0 {
		t.Fatalf("plugin processes %v, %d writes answered before the kill", pids, before)
	}
	tried := rcv.holding.Load()
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("SIGKILL %d: %v", pid, err)
		}
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	rcv.held.Store(false)
	close(rcv.release)
	for _, old := range pids {
		for _, pid := range s.PluginPIDs() {
			if pid == old {
				t.Fatalf("plugin process %d survived its SIGKILL", pid)
			}
		}
	}

	start := time.Now()
	deadline := start.Add(90 * time.Second)
	for {
		got := map[string]bool{}
		rcv.mu.Lock()
		for _, ev := range rcv.accepted {
			if ev.Type == "connection.created" {
				got[ev.Data.ConnectionID] = true
			}
		}
		rcv.mu.Unlock()
		mu.Lock()
		var missing []string
		for id := range acked {
			if !got[id] {
				missing = append(missing, id)
			}
		}
		n := len(acked)
		mu.Unlock()
		if len(missing) == 0 {
			t.Logf("figure|events of concurrent writes with a plugin SIGKILL: all %d acknowledged (%d before the kill, %d deliveries held unanswered at it) delivered %v after the restart",
				n, before, tried, time.Since(start).Round(time.Second))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events missing after the kill, e.g. %v", len(missing), n, missing[:min(5, len(missing))])
		}
		time.Sleep(200 * time.Millisecond)
	}
	rcv.checkClean(t, nil)
}
