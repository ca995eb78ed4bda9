// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// consent starts an authorization and plays the browser at the provider:
// it follows authorization_url to the authorization server and returns the
// query the server sends back to the callback (code and state, or error).
func consent(t *testing.T, e *testEnv, path string, body map[string]any) url.Values {
	t.Helper()
	authURL := e.mustDo(logical.UpdateOperation, path, body)["authorization_url"].(string)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize endpoint answered %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testRedirectURL {
		t.Fatalf("provider redirected to %s", got)
	}
	return loc.Query()
}

// callback delivers the provider's redirect to oauth/callback, as Vault
// would without a token, and returns the status and page.
func callback(e *testEnv, q url.Values) (int, string, *logical.Response) {
	data := map[string]any{}
	for k := range q {
		data[k] = q.Get(k)
	}
	req := &logical.Request{
		Operation: logical.ReadOperation, Path: "oauth/callback", Data: data, Storage: e.storage,
	}
	if c := e.browser.cookieHeader(); c != nil {
		req.Headers = map[string][]string{"Cookie": c}
	}
	resp, err := e.b.HandleRequest(e.t.Context(), req)
	if err != nil {
		e.t.Fatalf("callback: %v", err)
	}
	e.browser.keep(resp)
	if resp.Redirect != "" {
		return http.StatusTemporaryRedirect, "", resp
	}
	return resp.Data[logical.HTTPStatusCode].(int), string(resp.Data[logical.HTTPRawBody].([]byte)), resp
}

func TestAuthorizationFlowStoresConnection(t *testing.T) {
	e, srv := authEnv(t)
	q := consent(t, e, "connections/github/acme/authorize", map[string]any{
		"metadata": map[string]any{"plan": "pro"}, "connection_config": map[string]any{"region": "eu"},
	})
	status, page, resp := callback(e, q)
	if status != http.StatusOK || !strings.Contains(page, "Connected") {
		t.Fatalf("callback: %d %s", status, page)
	}
	if ct := resp.Data[logical.HTTPContentType]; ct != "text/html; charset=utf-8" {
		t.Fatalf("content type %v", ct)
	}
	raw := e.mustDo(logical.ReadOperation, "connections/github/acme/raw", nil)
	if !srv.AccessTokenValid(raw["access_token"].(string)) || !srv.RefreshTokenValid(raw["refresh_token"].(string)) {
		t.Fatal("stored tokens were not issued by the server")
	}
	if strings.Contains(page, raw["access_token"].(string)) || strings.Contains(page, raw["refresh_token"].(string)) {
		t.Fatal("callback page shows a token")
	}
	if raw["metadata"].(map[string]any)["plan"] != "pro" || raw["connection_config"].(map[string]any)["region"] != "eu" {
		t.Fatalf("documents: %v %v", raw["metadata"], raw["connection_config"])
	}
	if srv.LastForm().Get("grant_type") != "authorization_code" || srv.LastForm().Get("code_verifier") == "" {
		t.Fatalf("exchange form = %v", srv.LastForm())
	}
	e.assertNoSecretLogged(raw["access_token"].(string), raw["refresh_token"].(string), srv.ClientSecret, q.Get("code"), q.Get("state"))

	// Re-authorization replaces the credentials and keeps the metadata.
	oldRefresh := raw["refresh_token"]
	status, _, _ = callback(e, consent(t, e, "connections/github/acme/authorize", nil))
	if status != http.StatusOK {
		t.Fatalf("re-authorization: %d", status)
	}
	raw = e.mustDo(logical.ReadOperation, "connections/github/acme/raw", nil)
	if raw["refresh_token"] == oldRefresh {
		t.Fatal("re-authorization kept the old refresh token")
	}
	if raw["metadata"].(map[string]any)["plan"] != "pro" || raw["connection_config"].(map[string]any)["region"] != "eu" {
		t.Fatal("re-authorization lost the metadata or config")
	}
}

func TestCallbackRedirectsToReturnURL(t *testing.T) {
	e, _ := authEnv(t)
	q := consent(t, e, "connections/github/acme/authorize", map[string]any{"return_url": "https://app.example.test/done?tab=x"})
	status, _, resp := callback(e, q)
	if status != http.StatusTemporaryRedirect {
		t.Fatalf("status %d", status)
	}
	u, _ := url.Parse(resp.Redirect)
	if u.Host != "app.example.test" || u.Query().Get("tab") != "x" || u.Query().Get("connection_id") != "acme" || u.Query().Get("status") != "connected" {
		t.Fatalf("redirect = %s", resp.Redirect)
	}
}

func TestCallbackRejectsBadStates(t *testing.T) {
	e, srv := authEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now

	// Forged.
	before := e.snapshot()
	status, page, _ := callback(e, url.Values{"state": {"forged-state"}, "code": {"x"}})
	if status != http.StatusBadRequest || !strings.Contains(page, "unknown or was already used") {
		t.Fatalf("forged: %d %s", status, page)
	}
	e.assertUnchanged(before)
	if status, _, _ := callback(e, url.Values{"code": {"x"}}); status != http.StatusBadRequest {
		t.Fatalf("missing state: %d", status)
	}

	// Expired.
	q := consent(t, e, "connections/github/late/authorize", nil)
	advance(11 * time.Minute)
	status, page, _ = callback(e, q)
	if status != http.StatusBadRequest || !strings.Contains(page, "expired") {
		t.Fatalf("expired: %d %s", status, page)
	}
	e.mustFail(logical.ReadOperation, "connections/github/late", nil, http.StatusNotFound)
	if srv.Requests() != 0 {
		t.Fatal("an expired state reached the token endpoint")
	}

	// Replayed.
	q = consent(t, e, "connections/github/once/authorize", nil)
	if status, _, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("first use: %d", status)
	}
	first := e.mustDo(logical.ReadOperation, "connections/github/once/raw", nil)["refresh_token"]
	status, page, _ = callback(e, q)
	if status != http.StatusBadRequest || !strings.Contains(page, "already used") {
		t.Fatalf("replay: %d %s", status, page)
	}
	if e.mustDo(logical.ReadOperation, "connections/github/once/raw", nil)["refresh_token"] != first {
		t.Fatal("a replayed state changed the connection")
	}
}

// A state is bound to one connection and its PKCE verifier: pairing one
// connection's state with another's code fails at the token endpoint, and
// neither connection is written.
func TestCallbackStateOfAnotherConnection(t *testing.T) {
	e, _ := authEnv(t)
	qa := consent(t, e, "connections/github/alice/authorize", nil)
	qb := consent(t, e, "connections/github/bob/authorize", nil)
	status, page, _ := callback(e, url.Values{"state": {qb.Get("state")}, "code": {qa.Get("code")}})
	if status != http.StatusFailedDependency || !strings.Contains(page, "invalid_grant") {
		t.Fatalf("crossed state and code: %d %s", status, page)
	}
	e.mustFail(logical.ReadOperation, "connections/github/alice", nil, http.StatusNotFound)
	e.mustFail(logical.ReadOperation, "connections/github/bob", nil, http.StatusNotFound)
	// Bob's state is spent; Alice's code was spent by the failed exchange.
	if status, _, _ := callback(e, qb); status != http.StatusBadRequest {
		t.Fatalf("bob's spent state: %d", status)
	}
}

func TestCallbackPKCEMismatch(t *testing.T) {
	e, srv := authEnv(t)
	q := consent(t, e, "connections/github/acme/authorize", nil)
	// Swap the stored verifier for another, as an attacker holding a
	// stolen code without the verifier would have to.
	hashes, _ := e.storage.List(t.Context(), statePrefix)
	var st pendingAuthorization
	getJSON(t.Context(), e.storage, stateKey(hashes[0]), &st)
	st.Verifier = "wrong-verifier-wrong-verifier-wrong-verifier-0"
	putJSON(t.Context(), e.storage, stateKey(hashes[0]), &st)

	status, page, _ := callback(e, q)
	if status != http.StatusFailedDependency || !strings.Contains(page, "invalid_grant") {
		t.Fatalf("PKCE mismatch: %d %s", status, page)
	}
	if srv.LastForm().Get("code_verifier") != st.Verifier {
		t.Fatal("exchange did not send the stored verifier")
	}
	e.mustFail(logical.ReadOperation, "connections/github/acme", nil, http.StatusNotFound)
}

func TestCallbackProviderErrorIsEscaped(t *testing.T) {
	e, srv := authEnv(t)
	srv.Deny("access_denied", `<script>alert("x")</script> & more`)
	q := consent(t, e, "connections/github/acme/authorize", nil)
	status, page, _ := callback(e, q)
	if status != http.StatusBadRequest {
		t.Fatalf("status %d", status)
	}
	// The description is never shown (TestCallbackPagesShowNoProviderWords),
	// escaped or not; the registered code is.
	if strings.Contains(page, "script") || !strings.Contains(page, "access_denied") {
		t.Fatalf("page not escaped:\n%s", page)
	}
	e.mustFail(logical.ReadOperation, "connections/github/acme", nil, http.StatusNotFound)
	// The state was spent by the failure.
	srv.Deny("", "")
	if status, _, _ := callback(e, url.Values{"state": {q.Get("state")}, "code": {"x"}}); status != http.StatusBadRequest {
		t.Fatal("a state survived a failed callback")
	}
}

func TestTokenResponseConfigMapping(t *testing.T) {
	e, srv := authEnv(t)
	srv.SetExtraFields(map[string]any{"instance_url": "https://acme.my.example.test", "team": map[string]any{"id": "T123"}})
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"token_response_config": map[string]any{"instance_url": "instance_url", "team_id": "team.id", "absent": "nope"}})
	callback(e, consent(t, e, "connections/github/acme/authorize", nil))
	cfg := e.mustDo(logical.ReadOperation, "connections/github/acme/config", nil)
	if cfg["instance_url"] != "https://acme.my.example.test" || cfg["team_id"] != "T123" {
		t.Fatalf("connection config = %v", cfg)
	}
	if _, ok := cfg["absent"]; ok {
		t.Fatal("a member missing from the response was mapped")
	}
}

func TestCleanExpiredStates(t *testing.T) {
	e, _ := authEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now
	e.mustDo(logical.UpdateOperation, "connections/github/old/authorize", nil)
	advance(6 * time.Minute)
	e.mustDo(logical.UpdateOperation, "connections/github/new/authorize", nil)
	advance(5 * time.Minute) // the first has expired, the second not
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	left, _ := e.storage.List(t.Context(), statePrefix)
	if len(left) != 1 {
		t.Fatalf("%d states left, want 1", len(left))
	}
	var st pendingAuthorization
	getJSON(t.Context(), e.storage, stateKey(left[0]), &st)
	if st.ConnectionID != "new" {
		t.Fatalf("kept the state of %q", st.ConnectionID)
	}
}

func TestTemplatedProviderFlow(t *testing.T) {
	e, srv := authEnv(t)
	base := srv.URL + "/t/${connectionConfig.subdomain}"
	e.mustDo(logical.CreateOperation, "providers/tenantco", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": base + "/authorize", "token_url": base + "/token", "revocation_url": base + "/revoke",
	})
	e.mustDo(logical.CreateOperation, "integrations/tenantco", map[string]any{
		"provider": "tenantco", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
	})
	msg := e.mustFail(logical.UpdateOperation, "connections/tenantco/acme/authorize", nil, http.StatusBadRequest)
	if !strings.Contains(msg, "connection_config.subdomain is required") {
		t.Fatalf("error = %q", msg)
	}
	e.mustFail(logical.UpdateOperation, "connections/tenantco/acme/authorize", map[string]any{"connection_config": map[string]any{"subdomain": "evil.test/"}}, http.StatusBadRequest)

	q := consent(t, e, "connections/tenantco/acme/authorize", map[string]any{"connection_config": map[string]any{"subdomain": "acme"}})
	if srv.LastTenant() != "acme" {
		t.Fatalf("authorize went to tenant %q", srv.LastTenant())
	}
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	if srv.LastTenant() != "acme" {
		t.Fatalf("code exchange went to tenant %q", srv.LastTenant())
	}
	// The refresh uses the connection's config too.
	srv.SetDelay(0)
	data := e.mustDo(logical.UpdateOperation, "connections/tenantco/acme/refresh", nil)
	if !srv.AccessTokenValid(data["access_token"].(string)) || srv.LastForm().Get("grant_type") != "refresh_token" || srv.LastTenant() != "acme" {
		t.Fatal("refresh did not reach the tenant's token endpoint")
	}
	// A connection without the key cannot be refreshed: 400, naming it.
	e.mustDo(logical.UpdateOperation, "connections/tenantco/acme/config", map[string]any{"other": "x"})
	msg = e.mustFail(logical.UpdateOperation, "connections/tenantco/acme/refresh", nil, http.StatusBadRequest)
	if !strings.Contains(msg, "connection_config.subdomain") {
		t.Fatalf("error = %q", msg)
	}
}

func TestAuthorizationScopes(t *testing.T) {
	e, srv := authEnv(t)
	srv.AllowScopes("repo", "read:user")
	// The integration's scopes by default.
	if status, page, _ := callback(e, consent(t, e, "connections/github/acme/authorize", nil)); status != http.StatusOK {
		t.Fatalf("default scopes: %d %s", status, page)
	}
	if got := srv.LastAuthorize().Get("scope"); got != "repo read:user" {
		t.Fatalf("scope = %q", got)
	}
	// An override the provider refuses fails at the callback, escaped.
	status, page, _ := callback(e, consent(t, e, "connections/github/bob/authorize", map[string]any{"scopes": "admin:org"}))
	if status != http.StatusBadRequest || !strings.Contains(page, "invalid_scope") {
		t.Fatalf("refused scope: %d %s", status, page)
	}
	e.mustFail(logical.ReadOperation, "connections/github/bob", nil, http.StatusNotFound)
}

// Values that callback_config copies from the provider's redirect are
// config writes like any other: a value the connection_config_schema
// refuses fails the callback with a page naming the key, stores nothing
// and does not replace a value authorize checked. A valid one is stored.
func TestCallbackConfigValuesMeetTheSchema(t *testing.T) {
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{
		"callback_config":          "realmId",
		"connection_config_schema": map[string]any{"realmId": map[string]any{"pattern": "[0-9]+", "optional": true}},
	})

	// A new connection: nothing is created.
	srv.SetCallbackExtras(url.Values{"realmId": {"evil.example"}})
	q := consent(t, e, "connections/github/acme/authorize", nil)
	requests := srv.Requests()
	status, page, _ := callback(e, q)
	if status != http.StatusBadRequest || !strings.Contains(page, "connection_config.realmId") || strings.Contains(page, "evil.example") {
		t.Fatalf("bad realmId on a new connection: %d %s", status, page)
	}
	e.mustFail(logical.ReadOperation, "connections/github/acme", nil, http.StatusNotFound)
	if srv.Requests() != requests {
		t.Fatal("the code was exchanged although the callback's config was refused")
	}

	// An existing connection keeps the value authorize checked, and its tokens.
	srv.SetCallbackExtras(url.Values{"realmId": {"4620816365"}})
	if status, page, _ := callback(e, consent(t, e, "connections/github/acme/authorize", nil)); status != http.StatusOK {
		t.Fatalf("valid realmId: %d %s", status, page)
	}
	before := e.mustDo(logical.ReadOperation, "connections/github/acme/raw", nil)
	if before["connection_config"].(map[string]any)["realmId"] != "4620816365" {
		t.Fatalf("valid realmId not stored: %v", before["connection_config"])
	}
	srv.SetCallbackExtras(url.Values{"realmId": {"../../other"}})
	status, page, _ = callback(e, consent(t, e, "connections/github/acme/authorize", map[string]any{
		"connection_config": map[string]any{"realmId": "111"},
	}))
	if status != http.StatusBadRequest || !strings.Contains(page, "connection_config.realmId") {
		t.Fatalf("bad realmId on re-authorization: %d %s", status, page)
	}
	after := e.mustDo(logical.ReadOperation, "connections/github/acme/raw", nil)
	if after["connection_config"].(map[string]any)["realmId"] != "4620816365" || after["refresh_token"] != before["refresh_token"] {
		t.Fatalf("a refused callback changed the connection: config %v", after["connection_config"])
	}
}

// Values the callback copies meet the token-parameter check like any other
// config write: refused at the callback, not a failed refresh later.
func TestCallbackValuesMeetTheParamCheck(t *testing.T) {
	e, srv := shapeEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/qb", map[string]any{
		"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "callback_config": "realmId",
		"refresh_params":           map[string]any{"realm": "${connectionConfig.realmId}"},
		"connection_config_schema": map[string]any{"realmId": map[string]any{"pattern": ".+"}}})
	srv.SetCallbackExtras(url.Values{"realmId": {"123\u2028456"}})
	q := consent(t, e, "connections/qb/acme/authorize", map[string]any{"connection_config": map[string]any{"realmId": "1"}})
	if status, page, _ := callback(e, q); status != http.StatusBadRequest || !strings.Contains(page, "realmId") {
		t.Fatalf("callback carrying a realmId the parameter check refuses: %d %s", status, page)
	}
}

// TestCallbackRefusesOversizedValuesBeforeSpendingTheState: the callback's
// query is the browser's and unauthenticated. A failed callback scrubs its
// error_description against its code, in time that grows with the product
// of their lengths; values far longer than any provider sends are refused
// at once, and the state stays usable for the real answer.
func TestCallbackRefusesOversizedValuesBeforeSpendingTheState(t *testing.T) {
	e, _ := authEnv(t)
	q := consent(t, e, "connections/github/acme/authorize", nil)
	huge := url.Values{
		"state":             {q.Get("state")},
		"error":             {"access_denied"},
		"code":              {strings.Repeat("c0ffee", 40000/6)},
		"error_description": {strings.Repeat("deadbeef", 40000/8)},
	}
	start := time.Now()
	status, body, _ := callback(e, huge)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("an oversized callback took %v", took)
	}
	if status != http.StatusBadRequest || !strings.Contains(body, "too long") {
		t.Fatalf("oversized callback: %d %s", status, body)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "over the bound") || strings.Contains(logs, "c0ffeec0ffee") || strings.Contains(logs, "deadbeefdeadbeef") {
		t.Fatalf("the refusal must be logged by parameter name, never value:\n%s", logs)
	}
	if status, body, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("the real answer after a refused oversized one: %d %s", status, body)
	}
}

// The callback cannot spend a pending completion: given the value the
// completion is stored under the hash of (connect_completion NUL
// completion), which is no state newState makes, it answers 400 and the
// completion stays for complete to spend.
func TestCallbackStateCannotSpendACompletion(t *testing.T) {
	e, srv := completionEnv(t)
	completion := completionOf(t, e, consent(t, e, "connections/github/acme/authorize", authorizeForApp(nil)))
	status, _, _ := callback(e, url.Values{"state": {"connect_completion\x00" + completion}, "code": {"x"}})
	if status != http.StatusBadRequest {
		t.Fatalf("callback: %d", status)
	}
	if _, status := e.do(logical.UpdateOperation, "connections/github/acme/complete",
		map[string]any{"completion": completion, "browser_binding": testBinding}); status >= 300 {
		t.Errorf("the callback spent a pending completion (complete answers %d); tokens revoked: %d", status, len(srv.Revoked()))
	}
}

// A failed code exchange shows a fixed message and at most the token
// endpoint's error code when RFC 6749 registers it: never the provider's
// own words (issue 25 section 3), which go to the log and the event.
func TestTokenEndpointErrorTextNotOnCallbackPage(t *testing.T) {
	const lure = "Your Vault session expired: sign in again at https://vault-login.evil.example"
	for _, tc := range []struct{ code, shown string }{
		{"please_call_555_0100", ""},
		{"invalid_grant", "(invalid_grant)"},
	} {
		e, srv := completionEnv(t)
		q := consent(t, e, "connections/github/acme/authorize", authorizeForApp(nil))
		srv.SetOverride(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": tc.code, "error_description": lure})
		})
		status, page, _ := callback(e, q)
		if status < 400 {
			t.Fatalf("%s: callback: %d", tc.code, status)
		}
		if strings.Contains(page, "evil.example") || strings.Contains(page, "please_call_555_0100") {
			t.Errorf("%s: the callback page shows the token endpoint's own words:\n%s", tc.code, page)
		}
		if !strings.Contains(page, "did not issue tokens") || (tc.shown != "" && !strings.Contains(page, tc.shown)) {
			t.Errorf("%s: the page does not say the provider issued no tokens, with %q:\n%s", tc.code, tc.shown, page)
		}
		if !strings.Contains(e.logs.String(), "evil.example") {
			t.Errorf("%s: the provider's description is not in the log", tc.code)
		}
	}
}

// TestCallbackPagesSendNoReferrer: the callback's URL holds the provider's
// code and the state, so the pages it serves, a success and a failure, tell
// the browser to send no Referer from them.
func TestCallbackPagesSendNoReferrer(t *testing.T) {
	e, _ := authEnv(t)
	status, page, _ := callback(e, consent(t, e, "connections/github/acme/authorize", nil))
	if status != http.StatusOK || !strings.Contains(page, `<meta name="referrer" content="no-referrer">`) {
		t.Fatalf("success: %d %s", status, page)
	}
	status, page, _ = callback(e, url.Values{"state": {"forged-state"}, "code": {"x"}})
	if status != http.StatusBadRequest || !strings.Contains(page, `<meta name="referrer" content="no-referrer">`) {
		t.Fatalf("failure: %d %s", status, page)
	}
}
