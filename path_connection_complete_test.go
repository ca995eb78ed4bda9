// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

const testBinding = "hmac-of-app-session-0123456789"

// completionEnv is authEnv with config's oauth_completion at its default,
// "application", and the integration's revocation endpoint set.
func completionEnv(t *testing.T) (*testEnv, *oauthtest.Server) {
	t.Helper()
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"oauth_completion": "application"})
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": srv.RevocationURL()})
	return e, srv
}

// completionOf runs the callback of q and returns the connect_completion
// its 303 carries to the return_url.
func completionOf(t *testing.T, e *testEnv, q url.Values) string {
	t.Helper()
	status, body, resp := callback(e, q)
	if status != http.StatusSeeOther {
		t.Fatalf("callback: %d\n%s", status, body)
	}
	loc, err := url.Parse(resp.Headers["Location"][0])
	if err != nil || loc.Host != "app.example.test" || loc.Path != "/done" {
		t.Fatalf("Location %v (%v)", resp.Headers["Location"], err)
	}
	completion := loc.Query().Get(completionParam)
	if len(completion) != 43 || loc.Query().Get("connection_id") == "" {
		t.Fatalf("Location %s", loc)
	}
	// The body, for a mount that drops the Location, links to it.
	if !strings.Contains(body, strings.ReplaceAll(loc.String(), "&", "&amp;")) {
		t.Fatalf("303's body does not link on:\n%s", body)
	}
	return completion
}

func authorizeForApp(body map[string]any) map[string]any {
	out := map[string]any{"return_url": "https://app.example.test/done", "browser_binding": testBinding}
	for k, v := range body {
		out[k] = v
	}
	return out
}

// TestAuthorizeRequiresApplicationCompletionFields: by default authorize
// needs a return_url and a browser_binding of 16 to 512 printable
// characters; without them, a 400 that names the field, and nothing
// stored.
func TestAuthorizeRequiresApplicationCompletionFields(t *testing.T) {
	e, _ := authEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"oauth_completion": "application"})
	before := e.snapshot()
	e.assertRejected([]rejection{
		{"no return_url", "connections/github/acme/authorize", map[string]any{"browser_binding": testBinding}, "return_url is required"},
		{"no binding", "connections/github/acme/authorize", map[string]any{"return_url": "https://app.example.test/done"}, "browser_binding is required"},
		{"short binding", "connections/github/acme/authorize", authorizeForApp(map[string]any{"browser_binding": "short"}), "browser_binding must be 16 to 512"},
		{"long binding", "connections/github/acme/authorize", authorizeForApp(map[string]any{"browser_binding": strings.Repeat("b", 513)}), "browser_binding must be 16 to 512"},
		{"binding with a space", "connections/github/acme/authorize", authorizeForApp(map[string]any{"browser_binding": "sixteen chars ok ok"}), "printable"},
	}, "sixteen chars")
	e.assertUnchanged(before)
	// The default is "application".
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"oauth_completion": "callback"})
	e2 := newTestEnv(t)
	if got := e2.mustDo(logical.ReadOperation, "config", nil)["oauth_completion"]; got != "application" {
		t.Fatalf("default oauth_completion %v", got)
	}
	e2.mustFail(logical.UpdateOperation, "config", map[string]any{"oauth_completion": "browser"}, http.StatusBadRequest)
}

// TestApplicationCompletesTheAuthorization: the callback exchanges the
// code at once and stores nothing; the browser goes to return_url with a
// one-time completion; complete with it and the binding stores the
// connection as the callback would, once.
func TestApplicationCompletesTheAuthorization(t *testing.T) {
	e, srv := completionEnv(t)
	events := captureEvents(e)
	q := consent(t, e, "connections/github/acme/authorize", authorizeForApp(map[string]any{
		"metadata": map[string]any{"plan": "pro"}, "tags": map[string]any{"tenant": "t1"},
	}))
	requests := srv.Requests()
	completion := completionOf(t, e, q)
	if srv.Requests() != requests+1 {
		t.Fatal("the callback did not exchange the code at once")
	}
	if _, status := e.do(logical.ReadOperation, "connections/github/acme", nil); status != http.StatusNotFound {
		t.Fatalf("the callback stored the connection: %d", status)
	}
	// Storage holds neither the completion nor the binding, and the held
	// tokens only under the sealed pending authorizations.
	for k, v := range e.snapshot() {
		if strings.Contains(v, completion) || strings.Contains(v, testBinding) {
			t.Fatalf("storage %q holds the completion or the binding", k)
		}
		if strings.Contains(v, "access_token") && !strings.HasPrefix(k, statePrefix) {
			t.Fatalf("tokens held at %q", k)
		}
	}
	data := e.mustDo(logical.UpdateOperation, "connections/github/acme/complete", map[string]any{"completion": completion, "browser_binding": testBinding})
	if !srv.AccessTokenValid(data["access_token"].(string)) || data["metadata"].(map[string]any)["plan"] != "pro" || data["tags"].(map[string]string)["tenant"] != "t1" {
		t.Fatalf("completed connection: %v", data)
	}
	expectEvents(t, events, "acme", eventConnectionCreated)
	// Once.
	msg := e.mustFail(logical.UpdateOperation, "connections/github/acme/complete", map[string]any{"completion": completion, "browser_binding": testBinding}, http.StatusBadRequest)
	if !strings.Contains(msg, "unknown") {
		t.Fatalf("second complete: %s", msg)
	}
	e.assertNoSecretLogged(completion, testBinding, data["access_token"].(string), q.Get("code"), q.Get("state"))
}

// TestCompleteRefusals: a completion is bound to its connection and to
// the browser binding. Another connection's path is refused and leaves it
// usable; a wrong binding spends it and revokes its tokens; a state is no
// completion and a completion no state.
func TestCompleteRefusals(t *testing.T) {
	e, srv := completionEnv(t)
	completion := completionOf(t, e, consent(t, e, "connections/github/acme/authorize", authorizeForApp(nil)))
	before := e.snapshot()
	for _, tc := range []struct {
		name, path string
		body       map[string]any
		status     int
		says       string
	}{
		{"another connection", "connections/github/other/complete", map[string]any{"completion": completion, "browser_binding": testBinding}, http.StatusBadRequest, "another connection"},
		{"another integration", "connections/machine/acme/complete", map[string]any{"completion": completion, "browser_binding": testBinding}, http.StatusBadRequest, "another connection"},
		{"no completion", "connections/github/acme/complete", map[string]any{"browser_binding": testBinding}, http.StatusBadRequest, "completion is required"},
		{"no binding", "connections/github/acme/complete", map[string]any{"completion": completion}, http.StatusBadRequest, "browser_binding is required"},
		{"unknown", "connections/github/acme/complete", map[string]any{"completion": strings.Repeat("x", 43), "browser_binding": testBinding}, http.StatusBadRequest, "unknown"},
	} {
		if msg := e.mustFail(logical.UpdateOperation, tc.path, tc.body, tc.status); !strings.Contains(msg, tc.says) {
			t.Errorf("%s: %s", tc.name, msg)
		}
	}
	e.assertUnchanged(before)
	// The completion used as a state is unknown to the callback, and stays.
	if status, _, _ := callback(e, url.Values{"state": {completion}, "code": {"x"}}); status != http.StatusBadRequest {
		t.Fatalf("completion as a state: %d", status)
	}
	e.assertUnchanged(before)
	// A wrong binding spends it and revokes the tokens.
	msg := e.mustFail(logical.UpdateOperation, "connections/github/acme/complete", map[string]any{"completion": completion, "browser_binding": testBinding + "x"}, http.StatusForbidden)
	if !strings.Contains(msg, "browser_binding") {
		t.Fatalf("wrong binding: %s", msg)
	}
	if len(srv.Revoked()) != 2 {
		t.Fatalf("revoked %v", srv.Revoked())
	}
	e.mustFail(logical.UpdateOperation, "connections/github/acme/complete", map[string]any{"completion": completion, "browser_binding": testBinding}, http.StatusBadRequest)
	if _, status := e.do(logical.ReadOperation, "connections/github/acme", nil); status != http.StatusNotFound {
		t.Fatal("stored after a refused completion")
	}
	// A state given as a completion is no completion.
	authURL := e.mustDo(logical.UpdateOperation, "connections/github/acme/authorize", authorizeForApp(nil))["authorization_url"].(string)
	u, _ := url.Parse(authURL)
	e.mustFail(logical.UpdateOperation, "connections/github/acme/complete", map[string]any{"completion": u.Query().Get("state"), "browser_binding": testBinding}, http.StatusBadRequest)
}

// TestUncompletedTokensAreRevoked: a completion that expires is refused,
// and the sweep revokes (RFC 7009) and drops the tokens of one that never
// comes.
func TestUncompletedTokensAreRevoked(t *testing.T) {
	e, srv := completionEnv(t)
	now := time.Now()
	e.b.now = func() time.Time { return now }
	late := completionOf(t, e, consent(t, e, "connections/github/late/authorize", authorizeForApp(nil)))
	completionOf(t, e, consent(t, e, "connections/github/never/authorize", authorizeForApp(nil)))
	now = now.Add(11 * time.Minute)
	if msg := e.mustFail(logical.UpdateOperation, "connections/github/late/complete", map[string]any{"completion": late, "browser_binding": testBinding}, http.StatusBadRequest); !strings.Contains(msg, "expired") {
		t.Fatalf("late: %s", msg)
	}
	if len(srv.Revoked()) != 2 {
		t.Fatalf("late completion's tokens revoked: %v", srv.Revoked())
	}
	now = now.Add(2 * time.Minute)
	if err := e.b.pendingAuths.SweepExpired(t.Context(), e.storage); err != nil {
		t.Fatal(err)
	}
	if len(srv.Revoked()) != 4 {
		t.Fatalf("swept completion's tokens revoked: %v", srv.Revoked())
	}
	for k, v := range e.snapshot() {
		if strings.Contains(v, "access_token") {
			t.Fatalf("tokens left at %q", k)
		}
	}
	if slices.Contains(srv.Revoked(), "") {
		t.Fatal("an empty token was revoked")
	}
}

// The integration is deleted and re-created (another provider) while the
// callback exchanges the code: nothing is held, and the tokens are revoked
// at the provider that issued them, never sent to the new integration's
// revocation_url (the egress rule).
func TestHeldTokensRevokedOnlyAtTheirIssuer(t *testing.T) {
	e, srv := completionEnv(t)
	other := oauthtest.New()
	t.Cleanup(other.Close)
	q := consent(t, e, "connections/github/acme/authorize", authorizeForApp(nil))
	var once sync.Once
	srv.OnToken(func() {
		once.Do(func() {
			e.mustDo(logical.DeleteOperation, "integrations/github", nil)
			body := oauthIntegration(other.TokenURL())
			body["client_id"], body["client_secret"] = other.ClientID, other.ClientSecret
			body["auth_url"], body["revocation_url"] = other.AuthURL(), other.RevocationURL()
			e.mustDo(logical.CreateOperation, "integrations/github", body)
		})
	})
	status, page, resp := callback(e, q)
	if status != http.StatusConflict || len(resp.Headers["Location"]) > 0 {
		t.Fatalf("callback during the re-creation: %d %v\n%s", status, resp.Headers, page)
	}
	if got := other.Revoked(); len(got) > 0 {
		t.Errorf("tokens issued by the first provider were sent to the re-created integration's revocation_url: %d tokens", len(got))
	}
	if len(srv.Revoked()) == 0 {
		t.Error("the tokens were not revoked at the provider that issued them")
	}
}

// A pending completion whose integration was re-created since (a
// re-creation between the callback's check and its write) is dropped
// unrevoked when it is refused: the integration now under its name did not
// issue its tokens, and they may not go to its revocation_url.
func TestHeldTokensOfAnotherIntegrationAreNotRevokedAtThisOne(t *testing.T) {
	e, srv := completionEnv(t)
	completion := completionOf(t, e, consent(t, e, "connections/github/acme/authorize", authorizeForApp(nil)))
	hash := hashCompletion(completion)
	st, err := e.b.pendingAuths.Peek(t.Context(), e.storage, hash)
	if err != nil || st == nil {
		t.Fatalf("peek: %v %v", st, err)
	}
	st.IntegrationCreatedAt = st.IntegrationCreatedAt.Add(-time.Hour) // issued by an earlier "github"
	if err := putJSON(t.Context(), e.storage, stateKey(hash), st); err != nil {
		t.Fatal(err)
	}
	if _, status := e.do(logical.UpdateOperation, "connections/github/acme/complete",
		map[string]any{"completion": completion, "browser_binding": testBinding}); status < 400 {
		t.Fatalf("complete stored tokens of another integration: %d", status)
	}
	if got := srv.Revoked(); len(got) > 0 {
		t.Errorf("tokens of an earlier integration were sent to this one's revocation_url: %d tokens", len(got))
	}
}

// A customer that holds its own token chooses its own browser_binding, so
// a completion read from the callback's Location (Vault's audit log keeps
// it unhashed) is all it needs: what protects the person who consented is
// the application spending, at its return_url, a completion that is not
// its user's with that browser's binding (docs/oauth.md). That call is
// refused (403), revokes the tokens, and leaves nothing for the customer
// to complete with the binding it chose.
func TestApplicationSpendsAForeignCompletionBeforeItsStarterCan(t *testing.T) {
	e, srv := completionEnv(t)
	const customerBinding = "customer-chosen-binding-0001"
	const visitorBinding = "hmac-of-app-session-of-the-visitor"
	completion := completionOf(t, e, consent(t, e, "connections/github/mallory/authorize", authorizeForApp(map[string]any{"browser_binding": customerBinding})))
	// The application at return_url: not its user's authorization, spent
	// with the binding of the browser that came back.
	msg := e.mustFail(logical.UpdateOperation, "connections/github/mallory/complete",
		map[string]any{"completion": completion, "browser_binding": visitorBinding}, http.StatusForbidden)
	if !strings.Contains(msg, "spent") {
		t.Fatalf("wrong binding: %s", msg)
	}
	if len(srv.Revoked()) == 0 {
		t.Fatal("the tokens of the spent completion were not revoked")
	}
	// The customer, with the completion from the audit log and its own binding.
	e.mustFail(logical.UpdateOperation, "connections/github/mallory/complete",
		map[string]any{"completion": completion, "browser_binding": customerBinding}, http.StatusBadRequest)
	if _, status := e.do(logical.ReadOperation, "connections/github/mallory", nil); status != http.StatusNotFound {
		t.Fatal("the customer stored the consenting person's account after the application spent the completion")
	}
}

// TestHeldTokensAreRevokedUnderTheConfigTheyWereIssuedFor: a reconnect that
// names no connection_config is exchanged under the connection's own
// (tenant acme); a refused completion revokes its tokens at acme's
// revocation URL, not at the one the schema's default would render.
func TestHeldTokensAreRevokedUnderTheConfigTheyWereIssuedFor(t *testing.T) {
	e, _ := completionEnv(t)
	var mu sync.Mutex
	var paths []string
	revoker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	}))
	defer revoker.Close()
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{
		"connection_config_schema": map[string]any{"tenant": map[string]any{"type": "string", "default_value": "default"}},
		"revocation_url":           revoker.URL + "/${connectionConfig.tenant}/revoke",
	})
	e.mustDo(logical.CreateOperation, "connections/github/c1", map[string]any{
		"access_token": "a0", "refresh_token": "r0", "connection_config": map[string]any{"tenant": "acme"},
	})
	completion := completionOf(t, e, consent(t, e, "connections/github/c1/authorize", authorizeForApp(nil)))
	e.mustFail(logical.UpdateOperation, "connections/github/c1/complete",
		map[string]any{"completion": completion, "browser_binding": "another-browsers-binding-0123456789"}, http.StatusForbidden)
	mu.Lock()
	defer mu.Unlock()
	if len(paths) == 0 {
		t.Fatal("the refused completion's tokens were not revoked")
	}
	for _, p := range paths {
		if p != "/acme/revoke" {
			t.Errorf("tokens issued for tenant acme were revoked at %q", p)
		}
	}
}

// storageDownAtHold refuses the first write of a pending authorization
// once armed, and from then on every read of an integration: storage that
// goes down as the callback keeps the tokens for the application.
type storageDownAtHold struct {
	logical.Storage
	armed, down atomic.Bool
}

func (s *storageDownAtHold) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if s.armed.Load() && strings.HasPrefix(entry.Key, statePrefix) && s.down.CompareAndSwap(false, true) {
		return errors.New("storage unavailable")
	}
	return s.Storage.Put(ctx, entry)
}

func (s *storageDownAtHold) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if s.down.Load() && strings.HasPrefix(key, integrationPrefix) {
		return nil, errors.New("storage unavailable")
	}
	return s.Storage.Get(ctx, key)
}

// TestTokensStorageCannotHoldForTheApplicationAreRevoked: the callback
// exchanged the code, and storage refuses to keep the tokens for the
// application and then to read the integration. The tokens are revoked at
// the integration that issued them, which the callback has in hand: no
// token the provider issued is left valid with nothing holding it.
func TestTokensStorageCannotHoldForTheApplicationAreRevoked(t *testing.T) {
	e, srv := completionEnv(t)
	down := &storageDownAtHold{Storage: e.storage}
	e.storage = down
	q := consent(t, e, "connections/github/acme/authorize", authorizeForApp(nil))
	revoked := len(srv.Revoked())
	down.armed.Store(true)
	if status, body, _ := callback(e, q); status < 500 {
		t.Fatalf("callback with storage down: %d\n%s", status, body)
	}
	if !down.down.Load() {
		t.Fatal("the callback wrote no pending completion: the test's storage failure never came")
	}
	if got := srv.Revoked(); len(got) < revoked+1 {
		t.Fatalf("revoked %v after the callback could not keep its tokens: they are left valid", got[revoked:])
	}
}

// holdGate holds, once armed, the first write of a pending authorization
// until proceed is closed, and says when it is reached.
type holdGate struct {
	logical.Storage
	armed            atomic.Bool
	reached, proceed chan struct{}
}

func (g *holdGate) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if strings.HasPrefix(entry.Key, statePrefix) && g.armed.CompareAndSwap(true, false) {
		close(g.reached)
		<-g.proceed
	}
	return g.Storage.Put(ctx, entry)
}

// TestIntegrationDeleteRacingTheHoldRevokesItsTokens: a forced integration
// delete runs while the callback keeps the tokens it exchanged for the
// application. Either the delete waits and then revokes them with the
// completion, or the callback finds the integration gone and revokes them:
// never are they kept for an integration that no longer exists, where no
// revocation can reach their issuer.
func TestIntegrationDeleteRacingTheHoldRevokesItsTokens(t *testing.T) {
	e, srv := completionEnv(t)
	gate := &holdGate{Storage: e.storage, reached: make(chan struct{}), proceed: make(chan struct{})}
	e.storage = gate
	q := consent(t, e, "connections/github/acme/authorize", authorizeForApp(nil))
	revoked := len(srv.Revoked())
	gate.armed.Store(true)
	called := make(chan struct{})
	go func() {
		defer close(called)
		callback(e, q)
	}()
	<-gate.reached
	deleted := make(chan int)
	go func() {
		_, status := e.do(logical.DeleteOperation, "integrations/github", map[string]any{"force": true})
		deleted <- status
	}()
	time.Sleep(100 * time.Millisecond) // the delete runs, or waits for the hold
	close(gate.proceed)
	<-called
	if status := <-deleted; status >= 300 {
		t.Fatalf("the forced delete answered %d", status)
	}
	if got := srv.Revoked(); len(got) < revoked+1 {
		t.Fatalf("the tokens kept for the application of a deleted integration were not revoked (revoked %v)", got[revoked:])
	}
}
