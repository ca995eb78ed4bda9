// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
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
	recordInto(e, c)
	return c
}

// recordInto makes what records e's events (the connection store, the
// authorizer) record into r instead of the outbox they were built with.
func recordInto(e *testEnv, r eventRecorder) {
	e.b.store.events = r
	e.b.authorizer.events = r
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
	q := consent(t, e, "connections/github/g/authorize", nil)
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
