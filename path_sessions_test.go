// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// sessionEnv is a backend with a public_url, an allowed return URL and an
// API-key integration whose key must look like a Stripe key.
func sessionEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{
		"public_url": "https://vault.example.test/v1/connect/", "allowed_return_urls": "https://app.example.test/done",
	})
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{
		"auth_mode": "API_KEY",
		"credentials_schema": map[string]any{
			"api_key": map[string]any{"title": "Secret key", "secret": true, "pattern": "sk_(live|test)_[A-Za-z0-9]+", "prefix": "", "example": "sk_test_..."},
		},
	})
	return e
}

// newSession creates a session and returns its secret and id.
func newSession(e *testEnv, body map[string]any) (secret, id string) {
	e.t.Helper()
	data := e.mustDo(logical.UpdateOperation, "sessions", body)
	u, err := url.Parse(data["connect_url"].(string))
	if err != nil {
		e.t.Fatal(err)
	}
	return u.Query().Get(sessionParam), data["session_id"].(string)
}

func TestSessionCreate(t *testing.T) {
	e := sessionEnv(t)
	now := time.Now()
	data := e.mustDo(logical.UpdateOperation, "sessions", map[string]any{
		"connection_id": "org:1", "integrations": "stripe", "tags": map[string]any{"end_user_id": "42"},
		"metadata": map[string]any{"plan": "pro"}, "return_url": "https://app.example.test/done/x", "ttl": "90s",
	})
	u, err := url.Parse(data["connect_url"].(string))
	if err != nil || u.Scheme != "https" || u.Host != "vault.example.test" || u.Path != "/v1/connect/connect/ui" {
		t.Fatalf("connect_url %v (%v)", data["connect_url"], err)
	}
	secret := u.Query().Get(sessionParam)
	if len(secret) != 43 {
		t.Fatalf("secret %q is not 32 bytes in base64url", secret)
	}
	id := data["session_id"].(string)
	if !validSessionID(id) || strings.Contains(secret, id) {
		t.Fatalf("session_id %q", id)
	}
	exp, err := time.Parse(time.RFC3339, data["expires_at"].(string))
	if err != nil || exp.Before(now.Add(80*time.Second)) || exp.After(now.Add(100*time.Second)) {
		t.Fatalf("expires_at %v, want in 90s", data["expires_at"])
	}
	// Storage never holds the secret.
	for k, v := range e.snapshot() {
		if strings.Contains(k, secret) || strings.Contains(v, secret) {
			t.Fatalf("storage entry %q holds the session secret", k)
		}
	}
	read := e.mustDo(logical.ReadOperation, "sessions/"+id, nil)
	if read["connection_id"] != "org:1" || read["status"] != "active" || read["tags"].(map[string]string)["end_user_id"] != "42" {
		t.Fatalf("read: %v", read)
	}
	for _, v := range read {
		if s, ok := v.(string); ok && strings.Contains(s, secret) {
			t.Fatalf("read shows the secret")
		}
	}

	// Without public_url, the redirect_url's base.
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "", "redirect_url": "https://v.example.test/v1/team/connect/oauth/callback"})
	data = e.mustDo(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "org:1"})
	if got := data["connect_url"].(string); !strings.HasPrefix(got, "https://v.example.test/v1/team/connect/connect/ui?session=") {
		t.Fatalf("connect_url from redirect_url: %s", got)
	}
}

func TestSessionCreateRejects(t *testing.T) {
	e := sessionEnv(t)
	_, keyPEM := rsaKeyPEM(t)
	e.mustDo(logical.CreateOperation, "integrations/app", map[string]any{"auth_mode": "APP", "app_id": "1", "private_key": keyPEM, "api_base_url": "https://api.example.test"})
	before := e.snapshot()
	e.assertRejected([]rejection{
		{"no connection id", "sessions", map[string]any{}, "connection_id"},
		{"bad connection id", "sessions", map[string]any{"connection_id": "a/b"}, "connection"},
		{"zero ttl", "sessions", map[string]any{"connection_id": "c", "ttl": 0}, "ttl"},
		{"negative ttl", "sessions", map[string]any{"connection_id": "c", "ttl": "-5s"}, "ttl"},
		{"ttl over a day", "sessions", map[string]any{"connection_id": "c", "ttl": "24h1s"}, "ttl"},
		{"unknown integration", "sessions", map[string]any{"connection_id": "c", "integrations": "nope"}, "nope"},
		{"app integration", "sessions", map[string]any{"connection_id": "c", "integrations": "app"}, "APP"},
		{"return_url elsewhere", "sessions", map[string]any{"connection_id": "c", "return_url": "https://evil.example.test/done"}, "allowed_return_urls"},
		{"return_url beside", "sessions", map[string]any{"connection_id": "c", "return_url": "https://app.example.test/donex"}, "allowed_return_urls"},
		{"metadata not an object", "sessions", map[string]any{"connection_id": "c", "metadata": "x"}, "metadata"},
		{"bad tag key", "sessions", map[string]any{"connection_id": "c", "tags": map[string]any{"a b": "1"}}, "tags"},
		{"long tag", "sessions", map[string]any{"connection_id": "c", "tags": map[string]any{"k": strings.Repeat("x", 257)}}, "tags.k"},
	}, "no secret in these requests")
	e.assertUnchanged(before)

	// Bounds that hold: one second and exactly a day.
	e.mustDo(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "c", "ttl": "1s"})
	e.mustDo(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "c", "ttl": "24h"})

	// No external address: a clear 400.
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": ""})
	if msg := e.mustFail(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "c"}, http.StatusBadRequest); !strings.Contains(msg, "public_url") {
		t.Fatalf("error %q", msg)
	}
}

func TestSessionRevokeAndExpiry(t *testing.T) {
	e := sessionEnv(t)
	clock, advance := fixedClock(time.Now())
	e.b.now = clock
	secret, id := newSession(e, map[string]any{"connection_id": "c1", "ttl": "10m"})
	if status, _ := uiGet(e, url.Values{sessionParam: {secret}}); status != http.StatusOK {
		t.Fatalf("fresh session: %d", status)
	}
	e.mustDo(logical.DeleteOperation, "sessions/"+id, nil)
	if status, body := uiGet(e, url.Values{sessionParam: {secret}}); status != http.StatusNotFound || !strings.Contains(body, "revoked") {
		t.Fatalf("revoked session: %d %s", status, body)
	}
	if resp, status := e.do(logical.ReadOperation, "sessions/"+id, nil); status != http.StatusNotFound {
		t.Fatalf("read of revoked session: %d %v", status, resp)
	}

	secret, id = newSession(e, map[string]any{"connection_id": "c2", "ttl": "10m"})
	advance(10 * time.Minute)
	if status, body := uiGet(e, url.Values{sessionParam: {secret}}); status != http.StatusGone || !strings.Contains(body, "expired") {
		t.Fatalf("expired session: %d %s", status, body)
	}
	if got := e.mustDo(logical.ReadOperation, "sessions/"+id, nil)["status"]; got != "expired" {
		t.Fatalf("status %v", got)
	}
	e.mustFail(logical.DeleteOperation, "sessions/not-an-id", nil, http.StatusBadRequest)
}

func TestSessionSweep(t *testing.T) {
	e := sessionEnv(t)
	clock, advance := fixedClock(time.Now())
	e.b.now = clock
	_, short := newSession(e, map[string]any{"connection_id": "c1", "ttl": "1m"})
	_, long := newSession(e, map[string]any{"connection_id": "c2", "ttl": "1h"})
	advance(3 * time.Minute)
	if err := e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	if _, status := e.do(logical.ReadOperation, "sessions/"+short, nil); status != http.StatusNotFound {
		t.Fatalf("expired session not swept: %d", status)
	}
	e.mustDo(logical.ReadOperation, "sessions/"+long, nil)
	if n := countPrefix(e, sessionPrefix); n != 1 {
		t.Fatalf("%d sessions stored after the sweep, want 1", n)
	}
	if n := countPrefix(e, sessionExpiryPrefix); n != 1 {
		t.Fatalf("%d expiry entries after the sweep, want 1", n)
	}
}

func countPrefix(e *testEnv, prefix string) int {
	n := 0
	for k := range e.snapshot() {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

func TestSessionCap(t *testing.T) {
	e := sessionEnv(t)
	clock, advance := fixedClock(time.Now())
	e.b.now = clock
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_sessions": 2})
	_, first := newSession(e, map[string]any{"connection_id": "c1", "ttl": "1m"})
	newSession(e, map[string]any{"connection_id": "c2", "ttl": "1h"})
	before := e.snapshot()
	if msg := e.mustFail(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "c3"}, http.StatusTooManyRequests); !strings.Contains(msg, "max_sessions") {
		t.Fatalf("error %q", msg)
	}
	e.assertUnchanged(before)
	// A revoked session frees its place, and so does a swept one.
	e.mustDo(logical.DeleteOperation, "sessions/"+first, nil)
	newSession(e, map[string]any{"connection_id": "c3", "ttl": "1m"})
	e.mustFail(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "c4"}, http.StatusTooManyRequests)
	advance(3 * time.Minute)
	if err := e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	newSession(e, map[string]any{"connection_id": "c4"})

	// A new backend on the same storage derives the count from it.
	e2 := newTestEnvOn(t, e.storage)
	e2.mustFail(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "c5"}, http.StatusTooManyRequests)
}
