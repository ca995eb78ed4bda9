// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

const testRedirectURL = "https://vault.example.test/v1/connect/oauth/callback"

// authEnv is oauthEnv with the callback configured and registered.
func authEnv(t *testing.T) (*testEnv, *oauthtest.Server) {
	t.Helper()
	e, srv := oauthEnv(t)
	configureCallback(e, srv)
	return e, srv
}

// configureCallback sets the mount's redirect_url, registers it with srv
// and points the "github" integration's auth_url at srv.
func configureCallback(e *testEnv, srv *oauthtest.Server) {
	srv.RegisterRedirectURI(testRedirectURL)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{
		"redirect_url": testRedirectURL, "allowed_return_urls": "https://app.example.test/done",
		// These tests are of the callback's own storing; the application's
		// completion (the default) has its own, path_connection_complete_test.go.
		"oauth_completion": "callback",
	})
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"auth_url": srv.AuthURL(), "allowed_scopes": "admin:org"})
}

func TestAuthorizeURL(t *testing.T) {
	e, srv := authEnv(t)
	data := e.mustDo(logical.UpdateOperation, "connections/github/acme/authorize", map[string]any{"scopes": "repo,admin:org"})
	u, err := url.Parse(data["authorization_url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{
		"client_id": srv.ClientID, "redirect_uri": testRedirectURL, "response_type": "code",
		"scope": "repo admin:org", "code_challenge_method": "S256", "access_type": "offline",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if len(q.Get("code_challenge")) != 43 {
		t.Errorf("code_challenge = %q", q.Get("code_challenge"))
	}
	if len(q.Get("state")) != 43 { // 32 bytes, base64url
		t.Errorf("state = %q", q.Get("state"))
	}
	if data["state_expires_at"] == "" {
		t.Error("no state_expires_at")
	}
	// Only the hash of the state is stored.
	for k, v := range e.snapshot() {
		if strings.Contains(k, q.Get("state")) || strings.Contains(v, q.Get("state")) {
			t.Fatalf("storage %q holds the raw state", k)
		}
	}
}

func TestAuthorizeWithoutPKCE(t *testing.T) {
	e, _ := authEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"pkce": false})
	data := e.mustDo(logical.UpdateOperation, "connections/github/acme/authorize", nil)
	if strings.Contains(data["authorization_url"].(string), "code_challenge") {
		t.Fatal("pkce=false still sends a code challenge")
	}
	if e.mustDo(logical.ReadOperation, "integrations/github", nil)["pkce"] != false {
		t.Fatal("pkce not shown as false")
	}
}

func TestAuthorizeRejects(t *testing.T) {
	e, _ := authEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	before := e.snapshot()
	e.assertRejected([]rejection{
		{"return_url not allowed", "connections/github/acme/authorize", map[string]any{"return_url": "https://app.example.test.evil.test/done"}, "allowed_return_urls"},
		{"return_url other path", "connections/github/acme/authorize", map[string]any{"return_url": "https://app.example.test/elsewhere"}, "allowed_return_urls"},
		{"return_url relative", "connections/github/acme/authorize", map[string]any{"return_url": "/done"}, "return_url"},
		{"not OAUTH2", "connections/stripe/acme/authorize", nil, "OAUTH2"},
		{"no integration", "connections/nope/acme/authorize", nil, "does not exist"},
		{"bad id", "connections/github/a%20b/authorize", nil, "connection_id"},
		{"metadata not object", "connections/github/acme/authorize", map[string]any{"metadata": "x"}, "metadata"},
	}, "zzz")
	e.assertUnchanged(before)

	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": ""})
	msg := e.mustFail(logical.UpdateOperation, "connections/github/acme/authorize", nil, http.StatusBadRequest)
	if !strings.Contains(msg, "redirect_url") {
		t.Fatalf("error = %q", msg)
	}
}

func TestReturnURLAllowed(t *testing.T) {
	allowed := []string{"https://app.example.test/done", "http://localhost:3000/"}
	cases := map[string]bool{
		"https://app.example.test/done":                    true,
		"https://app.example.test/done/sub?x=1":            true,
		"https://APP.example.test/done":                    true,
		"http://app.example.test/done":                     false,
		"https://app.example.test.evil.test/done":          false,
		"https://app.example.test/other":                   false,
		"https://evil.test/?https://app.example.test/done": false,
		"http://localhost:3000/cb":                         true,
		"http://localhost:3001/cb":                         false,
	}
	for u, want := range cases {
		if got := returnURLAllowed(u, allowed); got != want {
			t.Errorf("returnURLAllowed(%q) = %v, want %v", u, got, want)
		}
	}
}

// TestReturnURLLookAlikes: the look-alikes a string prefix admits.
func TestReturnURLLookAlikes(t *testing.T) {
	allowed := []string{"https://app.example.com/done"}
	for _, u := range []string{
		"https://app.example.com/done/../admin",
		"https://app.example.com/done/%2e%2e/admin",
		"https://app.example.com/done/%2E%2E/admin",
		"https://app.example.com/done%2fadmin",
		"https://app.example.com/done/..%2fadmin",
		"https://app.example.com/done-evil",
		"https://app.example.com/doneXYZ",
		"https://app.example.com/done/./x",
		"https://user@app.example.com/done",
		"https://app.example.com:8443/done",
	} {
		if returnURLAllowed(u, allowed) {
			t.Errorf("returnURLAllowed(%q) = true", u)
		}
	}
	for _, u := range []string{"https://app.example.com/done", "https://app.example.com/done/", "https://app.example.com/done/step?x=1#f"} {
		if !returnURLAllowed(u, allowed) {
			t.Errorf("returnURLAllowed(%q) = false", u)
		}
	}
}

// TestAuthorizeScopesAreBounded: authorize may ask only for the
// integration's scopes and allowed_scopes.
func TestAuthorizeScopesAreBounded(t *testing.T) {
	e, _ := authEnv(t)
	before := e.snapshot()
	msg := e.mustFail(logical.UpdateOperation, "connections/github/acme/authorize", map[string]any{"scopes": "repo,delete_repo"}, http.StatusBadRequest)
	if !strings.Contains(msg, "delete_repo") {
		t.Fatalf("error = %q", msg)
	}
	e.assertUnchanged(before)
	e.mustDo(logical.UpdateOperation, "connections/github/acme/authorize", map[string]any{"scopes": "repo,admin:org"})
}

// TestReservedAuthParamsAreRefused: auth_params cannot override what the
// flow sets (x/oauth2 applies them after its own).
func TestReservedAuthParamsAreRefused(t *testing.T) {
	e, _ := authEnv(t)
	before := e.snapshot()
	var cases []rejection
	for _, k := range []string{"redirect_uri", "state", "client_id", "response_type", "code_challenge", "code_challenge_method", "scope"} {
		cases = append(cases,
			rejection{"integration " + k, "integrations/github", map[string]any{"auth_params": map[string]any{k: "https://evil.test"}}, k},
			rejection{"provider " + k, "providers/custom", map[string]any{"auth_mode": "OAUTH2", "auth_url": "https://p.test/a", "token_url": "https://p.test/t", "auth_params": map[string]any{k: "x"}}, k})
	}
	e.assertRejected(cases, "evil.test")
	e.assertUnchanged(before)
}

// TestPendingAuthorizationsAreCappedPerIntegration: authorize refuses a
// pending authorization beyond config's max_pending_authorizations for one
// integration, with a 429 that names the setting, and stores nothing; a
// re-authorization replaces its connection's state and counts once; a spent
// state frees its place; another integration has its own count; the count
// survives a restart; and an authorize lists no storage to count.
func TestPendingAuthorizationsAreCappedPerIntegration(t *testing.T) {
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_pending_authorizations": 3})
	for i := range 3 {
		e.mustDo(logical.UpdateOperation, fmt.Sprintf("connections/github/c%d/authorize", i), nil)
	}
	msg := e.mustFail(logical.UpdateOperation, "connections/github/c3/authorize", nil, http.StatusTooManyRequests)
	if !strings.Contains(msg, "max_pending_authorizations") || !strings.Contains(msg, "3") {
		t.Fatalf("error %q does not name the limit", msg)
	}
	if idx, _ := e.storage.List(t.Context(), stateIndexPrefix+"github/"); len(idx) != 3 || pendingStates(t, e) != 3 {
		t.Fatalf("a refused authorize stored something: index %v, %d states", idx, pendingStates(t, e))
	}
	e.mustDo(logical.UpdateOperation, "connections/github/c1/authorize", nil)
	other := oauthIntegration(srv.TokenURL())
	other["client_id"], other["auth_url"] = srv.ClientID, srv.AuthURL()
	e.mustDo(logical.CreateOperation, "integrations/other", other)
	e.mustDo(logical.UpdateOperation, "connections/other/c0/authorize", nil)

	restarted := newTestEnvOn(t, e.storage)
	restarted.mustFail(logical.UpdateOperation, "connections/github/c3/authorize", nil, http.StatusTooManyRequests)
	q := consent(t, restarted, "connections/github/c0/authorize", nil)
	if status, page, _ := callback(restarted, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	restarted.mustDo(logical.UpdateOperation, "connections/github/c3/authorize", nil)

	counting := &listCountingStorage{Storage: e.storage}
	restarted.storage = counting
	restarted.mustDo(logical.UpdateOperation, "connections/github/c1/authorize", nil)
	restarted.mustFail(logical.UpdateOperation, "connections/github/c4/authorize", nil, http.StatusTooManyRequests)
	if n := counting.lists.Load(); n != 0 {
		t.Fatalf("two authorizes listed storage %d times", n)
	}
	e.mustFail(logical.UpdateOperation, "config", map[string]any{"max_pending_authorizations": 0}, http.StatusBadRequest)
}

// TestPendingAuthorizationCapHoldsUnderConcurrency: concurrent authorizes
// of new connections on a backend that has not counted yet take exactly
// the places there are.
func TestPendingAuthorizationCapHoldsUnderConcurrency(t *testing.T) {
	e, _ := authEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_pending_authorizations": 5})
	e.mustDo(logical.UpdateOperation, "connections/github/first/authorize", nil)
	restarted := newTestEnvOn(t, e.storage)
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch _, status := restarted.do(logical.UpdateOperation, fmt.Sprintf("connections/github/c%d/authorize", i), nil); status {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusTooManyRequests:
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	idx, _ := e.storage.List(t.Context(), stateIndexPrefix+"github/")
	if ok.Load() != 4 || refused.Load() != 16 || len(idx) != 5 || pendingStates(t, e) != 5 {
		t.Fatalf("%d accepted, %d refused, %d index entries, %d states; want 4, 16, 5, 5", ok.Load(), refused.Load(), len(idx), pendingStates(t, e))
	}
}

// TestAuthorizeRefusesTagsForAnExistingConnection: whoever may call
// authorize may not relabel an existing connection (possibly under another
// organization's tag); its tags stay as they are and the refusal names the
// field.
func TestAuthorizeRefusesTagsForAnExistingConnection(t *testing.T) {
	e, _ := authEnv(t)
	q := consent(t, e, "connections/github/acme/authorize", map[string]any{"tags": map[string]any{"organization_id": "acme"}})
	if status, _, _ := callback(e, q); status != http.StatusOK {
		t.Fatal("callback failed")
	}
	msg := e.mustFail(logical.UpdateOperation, "connections/github/acme/authorize", map[string]any{"tags": map[string]any{"organization_id": "victim"}}, http.StatusBadRequest)
	if !strings.Contains(msg, "tags") {
		t.Errorf("the refusal does not name the field: %q", msg)
	}
	if status, _, _ := callback(e, consent(t, e, "connections/github/acme/authorize", nil)); status != http.StatusOK {
		t.Fatal("re-authorization without tags failed")
	}
	if resp, _ := e.do(logical.ListOperation, "connections/github/", map[string]any{"tag": "organization_id:victim"}); resp != nil {
		if keys, _ := resp.Data["keys"].([]string); len(keys) > 0 {
			t.Fatalf("authorize relabelled %v under organization_id:victim", keys)
		}
	}
	if got := e.mustDo(logical.ReadOperation, "connections/github/acme", nil)["tags"]; got.(map[string]string)["organization_id"] != "acme" {
		t.Fatalf("tags after re-authorization = %v", got)
	}
}
