// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// eventCapture is a recorder that keeps what it is given, or fails while
// fail is set.
type eventCapture struct {
	mu     sync.Mutex
	events []capturedEvent
	fail   error
}

type capturedEvent struct {
	typ  eventType
	data eventData
}

func (c *eventCapture) record(_ context.Context, _ logical.Storage, typ eventType, data eventData) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.events = append(c.events, capturedEvent{typ, data})
	return nil
}

func (c *eventCapture) setFail(err error) {
	c.mu.Lock()
	c.fail = err
	c.mu.Unlock()
}

// take returns the events captured since the last take.
func (c *eventCapture) take() []capturedEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.events
	c.events = nil
	return out
}

// captureEvents makes e's backend record into a capture.
func captureEvents(e *testEnv) *eventCapture {
	c := &eventCapture{}
	e.b.events = c
	return c
}

// expectEvents checks the events captured since the last call: their types
// in order, each for connection id.
func expectEvents(t *testing.T, c *eventCapture, id string, want ...eventType) []capturedEvent {
	t.Helper()
	got := c.take()
	var types []eventType
	for _, ev := range got {
		types = append(types, ev.typ)
		if ev.data.ConnectionID != id {
			t.Errorf("%s event for %q, want %q", ev.typ, ev.data.ConnectionID, id)
		}
	}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	return got
}

func TestWriteEvents(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	events := captureEvents(e)
	tags := map[string]any{"organization_id": "acme"}

	e.mustDo(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1", "tags": tags})
	got := expectEvents(t, events, "acme", eventConnectionCreated)
	want := eventData{Integration: "stripe", ConnectionID: "acme", AuthMode: "API_KEY", Tags: map[string]string{"organization_id": "acme"}}
	if !reflect.DeepEqual(got[0].data, want) {
		t.Fatalf("created data = %+v, want %+v", got[0].data, want)
	}

	// Metadata, config or tags alone: no event.
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"metadata": map[string]any{"plan": "pro"}})
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"tags": map[string]any{"organization_id": "acme", "end_user_id": "7"}})
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme/metadata", map[string]any{"plan": "enterprise"})
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme/config", map[string]any{"region": "eu"})
	expectEvents(t, events, "acme")

	// Credentials replaced: updated, with the tags as they are now.
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_2"})
	got = expectEvents(t, events, "acme", eventConnectionUpdated)
	if got[0].data.Tags["end_user_id"] != "7" {
		t.Fatalf("updated tags = %v", got[0].data.Tags)
	}

	// A refused write records nothing.
	e.mustFail(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_3", "tags": map[string]any{"bad key": "x"}}, http.StatusBadRequest)
	expectEvents(t, events, "acme")

	e.mustDo(logical.DeleteOperation, "connections/stripe/acme", nil)
	got = expectEvents(t, events, "acme", eventConnectionDeleted)
	if got[0].data.Tags["organization_id"] != "acme" {
		t.Fatalf("deleted tags = %v", got[0].data.Tags)
	}
	// Deleting what does not exist records nothing.
	e.mustDo(logical.DeleteOperation, "connections/stripe/acme", nil)
	expectEvents(t, events, "acme")
}

func TestImportEvents(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	events := captureEvents(e)
	e.mustDo(logical.UpdateOperation, "import/stripe", map[string]any{"connections": []any{
		map[string]any{"connection_id": "a", "api_key": "sk", "tags": map[string]any{"organization_id": "acme"}},
	}})
	got := expectEvents(t, events, "a", eventConnectionCreated)
	if got[0].data.Tags["organization_id"] != "acme" {
		t.Fatalf("import tags = %v", got[0].data.Tags)
	}
	e.mustDo(logical.UpdateOperation, "import/stripe", map[string]any{"overwrite": true, "connections": []any{
		map[string]any{"connection_id": "a", "api_key": "sk-new"},
	}})
	expectEvents(t, events, "a", eventConnectionUpdated)
}

func TestForcedIntegrationDeleteRecordsEachDeletion(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	for _, id := range []string{"a", "b"} {
		e.mustDo(logical.CreateOperation, "connections/stripe/"+id, map[string]any{"api_key": "sk"})
	}
	events := captureEvents(e)
	e.mustDo(logical.DeleteOperation, "integrations/stripe", map[string]any{"force": true})
	got := events.take()
	if len(got) != 2 || got[0].typ != eventConnectionDeleted || got[1].typ != eventConnectionDeleted ||
		got[0].data.ConnectionID != "a" || got[1].data.ConnectionID != "b" {
		t.Fatalf("events = %+v", got)
	}
}

func TestAuthorizationEvents(t *testing.T) {
	e, srv := authEnv(t)
	events := captureEvents(e)
	q := consent(t, e, "connections/github/acme/authorize", map[string]any{"tags": map[string]any{"organization_id": "acme"}})
	if status, _, _ := callback(e, q); status != http.StatusOK {
		t.Fatal("callback failed")
	}
	got := expectEvents(t, events, "acme", eventConnectionCreated)
	if got[0].data.Tags["organization_id"] != "acme" || got[0].data.AuthMode != "OAUTH2" || got[0].data.RefreshStatus != "ok" {
		t.Fatalf("created data = %+v", got[0].data)
	}
	if status, _, _ := callback(e, consent(t, e, "connections/github/acme/authorize", nil)); status != http.StatusOK {
		t.Fatal("re-authorization failed")
	}
	expectEvents(t, events, "acme", eventConnectionUpdated)

	// The customer refuses: authorization_failed with the provider's code.
	srv.Deny("access_denied", "The user said no")
	q = consent(t, e, "connections/github/acme/authorize", nil)
	if status, _, _ := callback(e, q); status != http.StatusBadRequest {
		t.Fatalf("denied callback status %d", status)
	}
	got = expectEvents(t, events, "acme", eventAuthorizationFailed)
	if e := got[0].data.Error; e == nil || e.Code != "access_denied" || e.Description != "The user said no" {
		t.Fatalf("denied error = %+v", got[0].data.Error)
	}
	if got[0].data.Tags["organization_id"] != "acme" {
		t.Fatalf("denied tags = %v (the connection's)", got[0].data.Tags)
	}

	// The code exchange fails.
	srv.Deny("", "")
	q = consent(t, e, "connections/github/other/authorize", map[string]any{"tags": map[string]any{"end_user_id": "9"}})
	srv.Fail("invalid_client", http.StatusUnauthorized)
	if status, _, _ := callback(e, q); status != http.StatusFailedDependency {
		t.Fatalf("failed exchange status %d", status)
	}
	got = expectEvents(t, events, "other", eventAuthorizationFailed)
	if e := got[0].data.Error; e == nil || e.Code != "invalid_client" {
		t.Fatalf("exchange error = %+v", got[0].data.Error)
	}
	if got[0].data.Tags["end_user_id"] != "9" {
		t.Fatalf("exchange failure tags = %v (authorize's)", got[0].data.Tags)
	}
}

func TestRefreshEvents(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_refresh_failures": 3})
	importExpiring(e, srv, "c1", 10*time.Minute)
	e.mustDo(logical.UpdateOperation, "connections/github/c1", map[string]any{"tags": map[string]any{"organization_id": "acme"}})
	events := captureEvents(e)
	refresh := func(status int) {
		t.Helper()
		if status == http.StatusOK {
			e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
			return
		}
		e.mustFail(logical.UpdateOperation, "connections/github/c1/refresh", nil, status)
	}

	// A success without failures before records nothing.
	refresh(http.StatusOK)
	expectEvents(t, events, "c1")

	srv.Fail("temporarily_unavailable", http.StatusServiceUnavailable)
	refresh(http.StatusFailedDependency)
	got := expectEvents(t, events, "c1", eventRefreshFailed)
	d := got[0].data
	if d.RefreshFailures != 1 || d.RefreshStatus != "failing" || d.Error == nil || d.Error.Code != "temporarily_unavailable" || d.Tags["organization_id"] != "acme" {
		t.Fatalf("first failure = %+v %+v", d, d.Error)
	}
	refresh(http.StatusFailedDependency)
	if got := expectEvents(t, events, "c1", eventRefreshFailed); got[0].data.RefreshFailures != 2 {
		t.Fatalf("second failure count = %d", got[0].data.RefreshFailures)
	}
	// The third failure exhausts the retries: reauthorization_required once.
	refresh(http.StatusFailedDependency)
	got = expectEvents(t, events, "c1", eventRefreshFailed, eventReauthorizationRequired)
	if got[1].data.RefreshStatus != "exhausted" || got[1].data.RefreshFailures != 3 {
		t.Fatalf("exhausted = %+v", got[1].data)
	}
	refresh(http.StatusFailedDependency)
	expectEvents(t, events, "c1", eventRefreshFailed)

	// Recovered once, on the first success.
	srv.Fail("", 0)
	refresh(http.StatusOK)
	got = expectEvents(t, events, "c1", eventRefreshRecovered)
	if got[0].data.RefreshStatus != "ok" || got[0].data.RefreshFailures != 0 || got[0].data.Error != nil {
		t.Fatalf("recovered = %+v", got[0].data)
	}
	refresh(http.StatusOK)
	expectEvents(t, events, "c1")

	// invalid_grant: failed and reauthorization_required at once.
	srv.Fail("invalid_grant", http.StatusBadRequest)
	refresh(http.StatusFailedDependency)
	got = expectEvents(t, events, "c1", eventRefreshFailed, eventReauthorizationRequired)
	if got[1].data.RefreshStatus != "reauthorization_required" || got[1].data.Error.Code != "invalid_grant" {
		t.Fatalf("reauthorization = %+v", got[1].data)
	}
}

func TestBackgroundRefreshEvents(t *testing.T) {
	e, srv := oauthEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now
	importExpiring(e, srv, "c1", 10*time.Minute)
	events := captureEvents(e)
	srv.Fail("server_error", http.StatusInternalServerError)
	e.tick()
	expectEvents(t, events, "c1", eventRefreshFailed)
	srv.Fail("", 0)
	advance(time.Minute)
	e.tick()
	expectEvents(t, events, "c1", eventRefreshRecovered)
}

func TestEventRecordingFailure(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	events := captureEvents(e)
	events.setFail(errors.New("outbox unavailable"))

	// A write whose event cannot be recorded is stored, answers 500 so that
	// the caller repeats it, and owes its event to the periodic hook.
	msg := e.mustFail(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1"}, http.StatusInternalServerError)
	if !strings.Contains(msg, "connection.created") || !strings.Contains(msg, "repeat") {
		t.Fatalf("error = %q", msg)
	}
	if c, _ := getConnection(t.Context(), e.storage, "stripe", "acme"); c == nil {
		t.Fatal("the connection was not stored")
	}
	// A delete whose event cannot be recorded deletes nothing.
	e.mustFail(logical.DeleteOperation, "connections/stripe/acme", nil, http.StatusInternalServerError)
	if c, _ := getConnection(t.Context(), e.storage, "stripe", "acme"); c == nil {
		t.Fatal("a delete whose event failed deleted the connection")
	}
	// Still failing: the periodic hook says so and keeps it owed.
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: e.storage}); err == nil || !strings.Contains(err.Error(), "outbox unavailable") {
		t.Fatalf("periodic with the outbox failing: %v", err)
	}
	events.setFail(nil)
	e.tick()
	expectEvents(t, events, "acme", eventConnectionCreated)
	e.tick()
	expectEvents(t, events, "acme")

	e.mustDo(logical.DeleteOperation, "connections/stripe/acme", nil)
	expectEvents(t, events, "acme", eventConnectionDeleted)
}

func TestRefreshWhoseEventFailsStillServesTheToken(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 10*time.Minute)
	events := captureEvents(e)
	srv.Fail("server_error", http.StatusInternalServerError)
	events.setFail(errors.New("outbox unavailable"))
	e.mustFail(logical.UpdateOperation, "connections/github/c1/refresh", nil, http.StatusFailedDependency)
	srv.Fail("", 0)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	events.setFail(nil)
	e.tick()
	expectEvents(t, events, "c1", eventRefreshFailed, eventRefreshRecovered)
}

// TestNoSecretInAnyEventBody runs every emission point with known secrets
// (tokens, client secrets, an API key, a password, custom credentials, a
// secret config value, the state and code of an authorization) and has the
// provider echo them in its error descriptions: no event body holds any of
// them, as sent or base64-encoded.
func TestNoSecretInAnyEventBody(t *testing.T) {
	e, srv := authEnv(t)
	events := captureEvents(e)
	const configSecret = "cfg-secret-value-0123456789"
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{
		"connection_config_schema": map[string]any{"signing_key": map[string]any{"secret": true, "optional": true}},
	})
	withIntegrations(e, srv.TokenURL())
	configureCallback(e, srv)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{
		"client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"connection_config_schema": map[string]any{"signing_key": map[string]any{"secret": true, "optional": true}},
	})
	srv.AddClient("tenant-client", "tenant-client-secret-0123456789")
	secrets := []string{srv.ClientSecret, "tenant-client-secret-0123456789", "sk_live_secret_0123456789",
		"basic-password-0123456789", "custom-secret-0123456789", configSecret}

	// Every auth mode created, updated and deleted.
	e.mustDo(logical.CreateOperation, "connections/stripe/s", map[string]any{"api_key": secrets[2], "tags": map[string]any{"organization_id": "acme"}})
	e.mustDo(logical.UpdateOperation, "connections/stripe/s", map[string]any{"api_key": secrets[2] + "x"})
	e.mustDo(logical.CreateOperation, "connections/jira/j", map[string]any{"username": "bot", "password": secrets[3]})
	e.mustDo(logical.CreateOperation, "connections/legacy/l", map[string]any{"credentials": map[string]any{"key": secrets[4]}})
	e.mustDo(logical.CreateOperation, "connections/machine/m", map[string]any{"client_id": "tenant-client", "client_secret": secrets[1]})
	access, refresh := importExpiring(e, srv, "g", 10*time.Minute)
	e.mustDo(logical.UpdateOperation, "connections/github/g", map[string]any{"connection_config": map[string]any{"signing_key": configSecret}})
	secrets = append(secrets, access, refresh)

	// Refreshes that fail with the provider echoing one of the secrets the
	// plugin holds for the connection (as sent, or base64-encoded) in its
	// description, once with invalid_grant; then one that succeeds.
	echoing := func(code, desc string) {
		srv.SetOverride(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
		})
	}
	for _, s := range []string{access, refresh, srv.ClientSecret, configSecret} {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s))} {
			echoing("server_error", "the request carried "+form+", which is wrong")
			e.mustFail(logical.UpdateOperation, "connections/github/g/refresh", nil, http.StatusFailedDependency)
		}
	}
	echoing("invalid_grant", "refresh token "+refresh+" is revoked")
	e.mustFail(logical.UpdateOperation, "connections/github/g/refresh", nil, http.StatusFailedDependency)
	srv.SetOverride(nil)
	e.mustDo(logical.UpdateOperation, "connections/github/g/refresh", nil)
	raw := e.mustDo(logical.ReadOperation, "connections/github/g/raw", nil)
	secrets = append(secrets, raw["refresh_token"].(string))

	// Authorizations: one refused with a description echoing the state,
	// the code and the client secret; one whose exchange fails; one that
	// completes.
	q := consent(t, e, "connections/github/g/authorize", map[string]any{"tags": map[string]any{"end_user_id": "7"}})
	secrets = append(secrets, q.Get("state"), q.Get("code"))
	q.Set("error", "access_denied")
	// The redirect's query comes from the browser: it can only echo what
	// the plugin holds now (the connection's refresh token was rotated
	// above, and the old one is not the plugin's to know).
	q.Set("error_description", "echo "+q.Get("state")+" "+q.Get("code")+" "+srv.ClientSecret+" "+raw["refresh_token"].(string))
	if status, _, _ := callback(e, q); status != http.StatusBadRequest {
		t.Fatalf("refused callback: %d", status)
	}
	q = consent(t, e, "connections/github/g/authorize", nil)
	secrets = append(secrets, q.Get("state"), q.Get("code"))
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": "code " + r.PostForm.Get("code") + " and verifier " + r.PostForm.Get("code_verifier")})
	})
	if status, _, _ := callback(e, q); status != http.StatusFailedDependency {
		t.Fatalf("failed exchange: %d", status)
	}
	srv.SetOverride(nil)
	q = consent(t, e, "connections/github/g/authorize", nil)
	secrets = append(secrets, q.Get("state"), q.Get("code"))
	if status, _, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d", status)
	}
	raw = e.mustDo(logical.ReadOperation, "connections/github/g/raw", nil)
	secrets = append(secrets, raw["access_token"].(string), raw["refresh_token"].(string))
	secrets = append(secrets, srv.Secrets()...) // every code, verifier and refresh token the server saw

	for _, p := range []string{"connections/stripe/s", "connections/jira/j", "connections/legacy/l", "connections/machine/m", "connections/github/g"} {
		e.mustDo(logical.DeleteOperation, p, nil)
	}

	got := events.take()
	seen := map[eventType]bool{}
	for _, ev := range got {
		seen[ev.typ] = true
		body, err := json.Marshal(map[string]any{"type": ev.typ, "data": ev.data})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if s == "" {
				continue
			}
			for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s))} {
				if strings.Contains(string(body), form) {
					t.Errorf("%s event body holds the secret %q: %s", ev.typ, s, body)
				}
			}
		}
	}
	for _, typ := range eventTypes {
		if !seen[typ] {
			t.Errorf("no %s event was recorded: the test does not cover it", typ)
		}
	}
}

// blockingCapture holds its first recording until released, to show that a
// connection's next change waits for it.
type blockingCapture struct {
	eventCapture
	entered, release chan struct{}
	first            atomic.Bool
}

func (c *blockingCapture) record(ctx context.Context, s logical.Storage, typ eventType, data eventData) error {
	if c.first.CompareAndSwap(false, true) {
		close(c.entered)
		<-c.release
	}
	return c.eventCapture.record(ctx, s, typ, data)
}

// TestEventsAreRecordedUnderTheConnectionsLock: a write whose event is
// being recorded holds the connection, so a concurrent write of it records
// its event after, and a write of another connection does not wait.
func TestEventsAreRecordedUnderTheConnectionsLock(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	rec := &blockingCapture{entered: make(chan struct{}), release: make(chan struct{})}
	e.b.events = rec
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.mustDo(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1"})
	}()
	<-rec.entered
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_2"})
	}()
	// Another connection is not held up.
	e.mustDo(logical.CreateOperation, "connections/stripe/other", map[string]any{"api_key": "sk_3"})
	time.Sleep(50 * time.Millisecond)
	if got := rec.take(); len(got) != 1 || got[0].data.ConnectionID != "other" {
		t.Fatalf("while acme's create records: %+v", got)
	}
	close(rec.release)
	wg.Wait()
	expectEvents(t, &rec.eventCapture, "acme", eventConnectionCreated, eventConnectionUpdated)
}

// TestClientCredentialsEvents: a client-credentials connection's events
// follow its credentials, those the engine obtains included: created with
// its first token, updated when the write brings another client (and so
// another token), none for a metadata edit.
func TestClientCredentialsEvents(t *testing.T) {
	e, srv := oauthEnv(t)
	srv.AddClient("tenant-client", "tenant-client-secret")
	events := captureEvents(e)
	e.mustDo(logical.CreateOperation, "connections/machine/m", nil)
	if got := expectEvents(t, events, "m", eventConnectionCreated); got[0].data.AuthMode != "OAUTH2_CC" || got[0].data.RefreshStatus != "ok" {
		t.Fatalf("created = %+v", got[0].data)
	}
	e.mustDo(logical.UpdateOperation, "connections/machine/m", map[string]any{"client_id": "tenant-client", "client_secret": "tenant-client-secret"})
	expectEvents(t, events, "m", eventConnectionUpdated)
	e.mustDo(logical.UpdateOperation, "connections/machine/m", map[string]any{"metadata": map[string]any{"plan": "pro"}})
	expectEvents(t, events, "m")
	// A provider that refuses the new client: nothing stored, no event.
	e.mustFail(logical.UpdateOperation, "connections/machine/m", map[string]any{"client_id": "unknown", "client_secret": "nope-nope"}, http.StatusFailedDependency)
	expectEvents(t, events, "m")
}
