// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// uiRequest sends one request to the connect page as Vault would, without
// a token, and returns the status, the page and the response.
func uiRequest(e *testEnv, op logical.Operation, data map[string]any) (int, string, *logical.Response) {
	e.t.Helper()
	headers := map[string][]string{}
	if op == logical.UpdateOperation {
		origin := e.browser.origin
		if origin == "" {
			cfg, err := e.b.config(e.t.Context(), e.storage)
			if err != nil {
				e.t.Fatal(err)
			}
			origin = pageOrigin(cfg)
		}
		if origin != "-" {
			headers["Origin"] = []string{origin}
		}
	}
	if c := e.browser.cookieHeader(); c != nil {
		headers["Cookie"] = c
	}
	resp, err := e.b.HandleRequest(e.t.Context(), &logical.Request{
		Operation: op, Path: connectUIPath, Data: data, Storage: e.storage, Unauthenticated: true,
		Headers: headers, MountPoint: "connect/",
	})
	if err != nil {
		e.t.Fatalf("connect page: %v", err)
	}
	e.browser.keep(resp)
	if resp.Redirect != "" {
		return http.StatusTemporaryRedirect, "", resp
	}
	return resp.Data[logical.HTTPStatusCode].(int), string(resp.Data[logical.HTTPRawBody].([]byte)), resp
}

func uiGet(e *testEnv, q url.Values) (int, string) {
	e.t.Helper()
	data := map[string]any{}
	for k := range q {
		data[k] = q.Get(k)
	}
	status, body, _ := uiRequest(e, logical.ReadOperation, data)
	return status, body
}

func uiPost(e *testEnv, form map[string]any) (int, string) {
	e.t.Helper()
	status, body, _ := uiRequest(e, logical.UpdateOperation, form)
	return status, body
}

var hiddenInputRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// hiddenInputs are a rendered form's hidden fields.
func hiddenInputs(t *testing.T, body string) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, m := range hiddenInputRe.FindAllStringSubmatch(body, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	if out[formTokenParam] == nil {
		t.Fatalf("no form in page:\n%s", body)
	}
	return out
}

// formOf opens a session's form for one integration and returns its
// hidden fields with the given inputs added.
func formOf(e *testEnv, secret, integration string, inputs map[string]any) map[string]any {
	e.t.Helper()
	status, body := uiGet(e, url.Values{sessionParam: {secret}, integrationParam: {integration}})
	if status != http.StatusOK {
		e.t.Fatalf("form of %s: %d %s", integration, status, body)
	}
	form := hiddenInputs(e.t, body)
	for k, v := range inputs {
		form[k] = v
	}
	return form
}

func TestConnectPageListsOnlyAllowedIntegrations(t *testing.T) {
	e := sessionEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/jira", map[string]any{"auth_mode": "BASIC"})
	e.mustDo(logical.CreateOperation, "integrations/legacy", map[string]any{"auth_mode": "API_KEY"})
	_, keyPEM := rsaKeyPEM(t)
	e.mustDo(logical.CreateOperation, "integrations/app", map[string]any{"auth_mode": "APP", "app_id": "1", "private_key": keyPEM, "api_base_url": "https://api.example.test"})

	secret, _ := newSession(e, map[string]any{"connection_id": "c", "integrations": "stripe,jira"})
	status, body := uiGet(e, url.Values{sessionParam: {secret}})
	if status != http.StatusOK || !strings.Contains(body, "integration=stripe") || !strings.Contains(body, "integration=jira") ||
		strings.Contains(body, "legacy") || strings.Contains(body, "integration=app") {
		t.Fatalf("list: %d\n%s", status, body)
	}
	if !strings.Contains(body, "Connect with an API key") || !strings.Contains(body, "user name and password") {
		t.Fatalf("list does not say how each connects:\n%s", body)
	}
	for _, name := range []string{"legacy", "app", "nope"} {
		if status, _ := uiGet(e, url.Values{sessionParam: {secret}, integrationParam: {name}}); status != http.StatusForbidden {
			t.Fatalf("form of %s not offered: %d", name, status)
		}
	}
	// Without integrations: every one the page can connect, never APP.
	secret, _ = newSession(e, map[string]any{"connection_id": "c"})
	_, body = uiGet(e, url.Values{sessionParam: {secret}})
	if !strings.Contains(body, "integration=legacy") || strings.Contains(body, "integration=app") {
		t.Fatalf("default list:\n%s", body)
	}
}

func TestConnectPageAPIKeyConnects(t *testing.T) {
	e := sessionEnv(t)
	events := captureEvents(e)
	secret, id := newSession(e, map[string]any{
		"connection_id": "org:1", "integrations": "stripe", "metadata": map[string]any{"plan": "pro"},
		"tags": map[string]any{"end_user_id": "42"}, "return_url": "https://app.example.test/done",
	})
	// One integration: its form at once.
	status, body := uiGet(e, url.Values{sessionParam: {secret}})
	for _, want := range []string{
		`<label for="f-cred-api_key">Secret key</label>`, `type="password"`, `pattern="sk_(live|test)_[A-Za-z0-9]+"`,
		`placeholder="sk_test_..."`, `method="post"`, `action="ui"`, "default-src 'none'",
	} {
		if !strings.Contains(html.UnescapeString(body), want) {
			t.Fatalf("form page (%d) lacks %q:\n%s", status, want, body)
		}
	}
	assertPageIsSelfContained(t, body)

	key := "sk_live_" + strings.Repeat("Q", 24)
	status, body = uiPost(e, formOf(e, secret, "stripe", map[string]any{"cred.api_key": key}))
	if status != http.StatusOK || !strings.Contains(body, "stripe is connected") || strings.Contains(body, key) {
		t.Fatalf("post: %d\n%s", status, body)
	}
	if !strings.Contains(body, `href="https://app.example.test/done?connection_id=org%3A1&amp;integration=stripe&amp;status=connected"`) {
		t.Fatalf("success page has no link back:\n%s", body)
	}
	c := e.mustDo(logical.ReadOperation, "connections/stripe/org:1", nil)
	if c["api_key"] != key || c["metadata"].(map[string]any)["plan"] != "pro" {
		t.Fatalf("connection: %v", c)
	}
	if c["tags"].(map[string]string)["end_user_id"] != "42" {
		t.Fatalf("connection tags: %v", c["tags"])
	}
	// The write is any connection write's: the same event, with the
	// session's tags.
	if got := expectEvents(t, events, "org:1", eventConnectionCreated); got[0].data.Tags["end_user_id"] != "42" {
		t.Fatalf("created event tags: %v", got[0].data.Tags)
	}
	if got := e.mustDo(logical.ReadOperation, "sessions/"+id, nil); got["status"] != "connected" || got["connected_integration"] != "stripe" {
		t.Fatalf("session after connecting: %v", got)
	}

	// A second tab: refused, nothing changed.
	before := e.snapshot()
	status, body = uiPost(e, map[string]any{
		sessionParam: secret, integrationParam: "stripe", formTokenParam: hiddenInputs(t, connectedForm(e, secret))[formTokenParam],
		"cred.api_key": "sk_live_other",
	})
	if status != http.StatusConflict || !strings.Contains(body, "already connected") {
		t.Fatalf("second post: %d\n%s", status, body)
	}
	e.assertUnchanged(before)
	expectEvents(t, events, "org:1")
	e.assertNoSecretLogged(key, secret)
}

// connectedForm renders the form a tab opened before the session
// connected still shows.
func connectedForm(e *testEnv, secret string) string {
	sess, _, err := e.b.sessions.BySecret(e.t.Context(), e.storage, secret)
	if err != nil || sess == nil {
		e.t.Fatalf("session: %v", err)
	}
	in, err := integrationIfExists(e.t.Context(), e.storage, "stripe")
	if err != nil {
		e.t.Fatal(err)
	}
	return string(formPage(http.StatusOK, sess, secret, in, nil, nil, "").Data[logical.HTTPRawBody].([]byte))
}

// assertPageIsSelfContained: no script, nothing external, the stylesheet
// allowed by its hash.
func assertPageIsSelfContained(t *testing.T, body string) {
	t.Helper()
	if strings.Contains(strings.ToLower(body), "<script") || strings.Contains(body, "src=") || strings.Contains(body, "<link") {
		t.Fatalf("page loads something:\n%s", body)
	}
	css := regexp.MustCompile(`(?s)<style>(.*)</style>`).FindStringSubmatch(body)
	if css == nil {
		t.Fatal("no stylesheet")
	}
	sum := sha256.Sum256([]byte(css[1]))
	hash := "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
	if !strings.Contains(html.UnescapeString(body), "style-src '"+hash+"'") {
		t.Fatalf("CSP does not allow the stylesheet by its hash %s", hash)
	}
}

func TestConnectPageRefusesForeignForms(t *testing.T) {
	e := sessionEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/other", map[string]any{"auth_mode": "API_KEY"})
	secretA, _ := newSession(e, map[string]any{"connection_id": "alice"})
	secretB, _ := newSession(e, map[string]any{"connection_id": "bob"})
	key := "sk_live_" + strings.Repeat("Z", 20)
	formA := formOf(e, secretA, "stripe", map[string]any{"cred.api_key": key})
	with := func(changes map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range formA {
			out[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	before := e.snapshot()
	for name, form := range map[string]map[string]any{
		"no form token":              with(map[string]any{formTokenParam: nil}),
		"wrong form token":           with(map[string]any{formTokenParam: "x" + formA[formTokenParam].(string)}),
		"another session's secret":   with(map[string]any{sessionParam: secretB}),
		"token of another form":      with(map[string]any{integrationParam: "other"}),
		"token of the oauth purpose": with(map[string]any{formTokenParam: mustSession(e, secretA).formToken("stripe", purposeAuthorize)}),
	} {
		status, body := uiPost(e, form)
		if status != http.StatusForbidden || !strings.Contains(body, "Nothing was changed") || strings.Contains(body, key) {
			t.Fatalf("%s: %d\n%s", name, status, body)
		}
	}
	for name, form := range map[string]map[string]any{
		"no session":      with(map[string]any{sessionParam: nil}),
		"unknown session": with(map[string]any{sessionParam: "x" + secretA}),
	} {
		if status, body := uiPost(e, form); status != http.StatusNotFound || strings.Contains(body, key) {
			t.Fatalf("%s: %d\n%s", name, status, body)
		}
	}
	e.assertUnchanged(before)
}

func mustSession(e *testEnv, secret string) *sessionEntry {
	e.t.Helper()
	sess, _, err := e.b.sessions.BySecret(e.t.Context(), e.storage, secret)
	if err != nil || sess == nil {
		e.t.Fatalf("session: %v", err)
	}
	return sess
}

func TestConnectPageShowsErrorsBesideFields(t *testing.T) {
	e := sessionEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/regional", map[string]any{
		"auth_mode":          "API_KEY",
		"credentials_schema": map[string]any{"api_key": map[string]any{"title": "Key", "pattern": "k_[a-z]+", "pattern_hint": "k_ then lower-case letters"}},
		"connection_config_schema": map[string]any{
			"region": map[string]any{"title": "Region", "pattern": "eu|us", "description": "Where your account lives.", "prefix": "api.", "suffix": ".example.test"},
		},
	})
	secret, _ := newSession(e, map[string]any{"connection_id": "c", "integrations": "regional"})
	badKey := "not-a-key-VALUE-7"
	before := e.snapshot()
	status, body := uiPost(e, formOf(e, secret, "regional", map[string]any{"cred.api_key": badKey, "config.region": "eu"}))
	if status != http.StatusBadRequest || strings.Contains(body, badKey) {
		t.Fatalf("bad key: %d\n%s", status, body)
	}
	for _, want := range []string{
		`aria-describedby="f-cred-api_key-error"`, `<p class="error" id="f-cred-api_key-error">Key must be k_ then lower-case letters</p>`, `title="k_ then lower-case letters"`,
		`value="eu"`, `aria-describedby="f-config-region-prefix f-config-region-suffix f-config-region-hint"`, `type="password"`,
		`<span class="affix" id="f-config-region-prefix">api.</span>`, `<label for="f-config-region">Region</label>`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("error page lacks %q:\n%s", want, body)
		}
	}
	e.assertUnchanged(before, sessionPrefix) // the session counts the failed post

	// A bad config value: its error beside it, the good key not echoed.
	goodKey := "k_secretvalue"
	status, body = uiPost(e, formOf(e, secret, "regional", map[string]any{"cred.api_key": goodKey, "config.region": "mars"}))
	if status != http.StatusBadRequest || strings.Contains(body, goodKey) || !strings.Contains(body, `id="f-config-region-error"`) || !strings.Contains(body, `value="mars"`) {
		t.Fatalf("bad region: %d\n%s", status, body)
	}
	e.assertUnchanged(before, sessionPrefix)
	// Fixed, it connects: a refused post does not spend the session.
	if status, body = uiPost(e, formOf(e, secret, "regional", map[string]any{"cred.api_key": goodKey, "config.region": "us"})); status != http.StatusOK {
		t.Fatalf("fixed post: %d\n%s", status, body)
	}
	if got := e.mustDo(logical.ReadOperation, "connections/regional/c", nil)["connection_config"].(map[string]any)["region"]; got != "us" {
		t.Fatalf("region %v", got)
	}
}

// customerClientPageEnv is a connect session for connection t1 of byo, an
// OAUTH2_CC integration whose connections bring their own client (the
// page asks for client_id and client_secret).
func customerClientPageEnv(t *testing.T) (*testEnv, *oauthtest.Server, string) {
	t.Helper()
	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "https://vault.example.test/v1/connect"})
	e.mustDo(logical.CreateOperation, "integrations/byo", map[string]any{
		"auth_mode": "OAUTH2_CC", "token_url": srv.TokenURL(),
		"credentials_schema": map[string]any{
			"client_id":     map[string]any{"title": "Client ID"},
			"client_secret": map[string]any{"title": "Client secret"},
		},
	})
	secret, _ := newSession(e, map[string]any{"connection_id": "t1", "integrations": "byo"})
	return e, srv, secret
}

func TestConnectPageClientCredentialsFailureInWords(t *testing.T) {
	e, srv, secret := customerClientPageEnv(t)
	wrongSecret := "wrong-client-secret-123"
	status, body := uiPost(e, formOf(e, secret, "byo", map[string]any{"cred.client_id": srv.ClientID, "cred.client_secret": wrongSecret}))
	if status != http.StatusFailedDependency || !strings.Contains(body, "could not obtain a token") || strings.Contains(body, wrongSecret) ||
		!strings.Contains(body, `value="`+srv.ClientID+`"`) {
		t.Fatalf("refused client: %d\n%s", status, body)
	}
	status, body = uiPost(e, formOf(e, secret, "byo", map[string]any{"cred.client_id": srv.ClientID, "cred.client_secret": srv.ClientSecret}))
	if status != http.StatusOK || strings.Contains(body, srv.ClientSecret) {
		t.Fatalf("good client: %d\n%s", status, body)
	}
	if tok := e.mustDo(logical.ReadOperation, "connections/byo/t1", nil)["access_token"].(string); !srv.AccessTokenValid(tok) {
		t.Fatalf("token %q", tok)
	}
}

// TestConnectPageEgressRule: a config value that would send the browser's
// consent, and later the tokens, to a host outside the integration's
// allowed hosts is refused beside its field, before anything is stored.
func TestConnectPageEgressRule(t *testing.T) {
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "https://vault.example.test/v1/connect"})
	e.mustDo(logical.CreateOperation, "integrations/okta", map[string]any{
		"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"auth_url":      "https://${connectionConfig.host}/oauth2/v1/authorize",
		"token_url":     "https://${connectionConfig.host}/oauth2/v1/token",
		"allowed_hosts": "*.okta.com",
		"connection_config_schema": map[string]any{
			"host": map[string]any{"title": "Okta domain", "example": "acme.okta.com"},
		},
	})
	secret, _ := newSession(e, map[string]any{"connection_id": "c", "integrations": "okta"})
	before := e.snapshot()
	status, body := uiPost(e, formOf(e, secret, "okta", map[string]any{"config.host": "evil.example.test"}))
	if status != http.StatusBadRequest || !strings.Contains(body, `id="f-config-host-error"`) || !strings.Contains(body, "allowed hosts") ||
		strings.Contains(body, "http-equiv=\"refresh\"") {
		t.Fatalf("host outside the allowed ones: %d\n%s", status, body)
	}
	e.assertUnchanged(before, sessionPrefix) // the session counts the failed post
	status, body = uiPost(e, formOf(e, secret, "okta", map[string]any{"config.host": "acme.okta.com"}))
	if status != http.StatusSeeOther || !strings.HasPrefix(continueURL(e, body), "https://acme.okta.com/oauth2/v1/authorize?") {
		t.Fatalf("allowed host: %d\n%s", status, body)
	}
}

// TestConnectPageBasicAndCustom: a Basic integration without a schema gets
// the default user name and password inputs; a custom one its schema's
// keys; both store what was typed, secrets never rendered back.
func TestConnectPageBasicAndCustom(t *testing.T) {
	e := sessionEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/jira", map[string]any{"auth_mode": "BASIC"})
	e.mustDo(logical.CreateOperation, "integrations/legacy", map[string]any{
		"auth_mode": "CUSTOM",
		"credentials_schema": map[string]any{
			"key_id": map[string]any{"title": "Key ID"},
			"secret": map[string]any{"title": "Key secret", "secret": true},
		},
	})
	e.mustDo(logical.CreateOperation, "integrations/bare", map[string]any{"auth_mode": "CUSTOM"})

	secret, _ := newSession(e, map[string]any{"connection_id": "c", "integrations": "jira"})
	_, body := uiGet(e, url.Values{sessionParam: {secret}})
	if !strings.Contains(body, `<label for="f-cred-username">User name</label>`) || !strings.Contains(body, `id="f-cred-password" name="cred.password" type="password"`) {
		t.Fatalf("basic form:\n%s", body)
	}
	if status, body := uiPost(e, formOf(e, secret, "jira", map[string]any{"cred.username": "bot", "cred.password": "pw with spaces "})); status != http.StatusOK {
		t.Fatalf("basic post: %d\n%s", status, body)
	}
	if c := e.mustDo(logical.ReadOperation, "connections/jira/c", nil); c["username"] != "bot" || c["password"] != "pw with spaces " {
		t.Fatalf("basic connection: %v", c)
	}

	secret, _ = newSession(e, map[string]any{"connection_id": "c", "integrations": "legacy"})
	status, body := uiPost(e, formOf(e, secret, "legacy", map[string]any{"cred.key_id": "kid-1"}))
	if status != http.StatusBadRequest || !strings.Contains(body, `id="f-cred-secret-error"`) || !strings.Contains(body, `value="kid-1"`) {
		t.Fatalf("custom without its secret: %d\n%s", status, body)
	}
	if status, body = uiPost(e, formOf(e, secret, "legacy", map[string]any{"cred.key_id": "kid-1", "cred.secret": "s3cr3t-value"})); status != http.StatusOK || strings.Contains(body, "s3cr3t-value") {
		t.Fatalf("custom post: %d\n%s", status, body)
	}
	creds := e.mustDo(logical.ReadOperation, "connections/legacy/c", nil)["credentials"].(map[string]any)
	if creds["key_id"] != "kid-1" || creds["secret"] != "s3cr3t-value" {
		t.Fatalf("custom credentials: %v", creds)
	}

	// A custom integration that does not describe its credentials cannot
	// be connected here, and says so.
	secret, _ = newSession(e, map[string]any{"connection_id": "c", "integrations": "bare"})
	if _, body = uiGet(e, url.Values{sessionParam: {secret}}); !strings.Contains(body, "credentials_schema") || strings.Contains(body, "<form") {
		t.Fatalf("bare custom:\n%s", body)
	}
}

// TestConnectLinkSpentAfterFiveFailedPosts: each failed post of an
// OAUTH2_CC form with the customer's own client costs provider calls; a
// link allows five, then it is spent, with a page that says so, and no
// further post reaches the provider.
func TestConnectLinkSpentAfterFiveFailedPosts(t *testing.T) {
	e, srv, secret := customerClientPageEnv(t)
	form := formOf(e, secret, "byo", map[string]any{"cred.client_id": srv.ClientID, "cred.client_secret": "wrong"})
	for i := range maxFailedPosts - 1 {
		if status, body := uiPost(e, form); status != http.StatusFailedDependency {
			t.Fatalf("failed post %d: %d\n%s", i+1, status, body)
		}
	}
	status, body := uiPost(e, form)
	if status != http.StatusGone || !strings.Contains(body, "too many") {
		t.Fatalf("the last failed post a link allows: %d\n%s", status, body)
	}
	requests := srv.Requests()
	form["cred.client_secret"] = srv.ClientSecret
	if status, body := uiPost(e, form); status != http.StatusGone || !strings.Contains(body, "too many") {
		t.Fatalf("a post with a spent link: %d\n%s", status, body)
	}
	if srv.Requests() != requests {
		t.Fatal("a post with a spent link reached the provider")
	}
	if status, _ := uiGet(e, url.Values{sessionParam: {secret}}); status != http.StatusGone {
		t.Fatalf("the spent link's page: %d", status)
	}
}

// prefixReads counts the storage reads of keys under one prefix.
type prefixReads struct {
	logical.Storage
	prefix string
	reads  atomic.Int64
}

func (s *prefixReads) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if strings.HasPrefix(key, s.prefix) {
		s.reads.Add(1)
	}
	return s.Storage.Get(ctx, key)
}

// TestChooserReadsIntegrationsFromTheCache: the chooser, an unauthenticated
// GET, reads the integrations a session offers from the integration cache,
// not from storage on every request: the first GET fills it, the next ones
// read no integration entry. An integration write clears it, so a change
// shows on the next GET.
func TestChooserReadsIntegrationsFromTheCache(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL})
	for i := range 20 {
		e.mustDo(logical.CreateOperation, fmt.Sprintf("integrations/key-%02d", i), map[string]any{"auth_mode": "API_KEY"})
	}
	counting := &prefixReads{Storage: e.storage, prefix: integrationPrefix}
	e.storage = counting
	secret, _ := newSession(e, map[string]any{"connection_id": "c", "integrations": "key-01,key-02,key-03"})
	if status, body := uiGet(e, url.Values{sessionParam: {secret}}); status != http.StatusOK || !strings.Contains(body, "key-02") {
		t.Fatalf("chooser: %d\n%s", status, body)
	}
	counting.reads.Store(0)
	for range 5 {
		uiGet(e, url.Values{sessionParam: {secret}})
	}
	if n := counting.reads.Load(); n != 0 {
		t.Fatalf("5 chooser GETs read %d integration entries from storage, want 0 (from the cache)", n)
	}
	e.mustDo(logical.UpdateOperation, "integrations/key-02", map[string]any{"display_name": "Renamed Two"})
	if _, body := uiGet(e, url.Values{sessionParam: {secret}}); !strings.Contains(body, "Renamed Two") {
		t.Fatalf("the chooser after an integration write does not show it:\n%s", body)
	}
}

// TestPageReadsOfferedIntegrationsFromTheCache: every unauthenticated GET
// of a session's pages, the chooser and one integration's form, reads the
// integrations it offers from the cache, a missing one (deleted since the
// session was made) included: after the first GET no integration entry is
// read from storage. Creating the missing one clears the cache, so it shows
// on the next GET.
func TestPageReadsOfferedIntegrationsFromTheCache(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL})
	for i := range 4 {
		e.mustDo(logical.CreateOperation, fmt.Sprintf("integrations/key-%02d", i), map[string]any{"auth_mode": "API_KEY"})
	}
	counting := &prefixReads{Storage: e.storage, prefix: integrationPrefix}
	e.storage = counting
	secret, _ := newSession(e, map[string]any{"connection_id": "c", "integrations": "key-01,key-02,key-03"})
	e.mustDo(logical.DeleteOperation, "integrations/key-03", nil)
	for _, q := range []url.Values{
		{sessionParam: {secret}},
		{sessionParam: {secret}, integrationParam: {"key-01"}},
		{sessionParam: {secret}, integrationParam: {"key-03"}},
	} {
		uiGet(e, q)
	}
	counting.reads.Store(0)
	for range 5 {
		if status, body := uiGet(e, url.Values{sessionParam: {secret}}); status != http.StatusOK || !strings.Contains(body, "key-02") || strings.Contains(body, "key-03") {
			t.Fatalf("chooser: %d\n%s", status, body)
		}
		if status, _ := uiGet(e, url.Values{sessionParam: {secret}, integrationParam: {"key-01"}}); status != http.StatusOK {
			t.Fatalf("form: %d", status)
		}
		if status, _ := uiGet(e, url.Values{sessionParam: {secret}, integrationParam: {"key-03"}}); status != http.StatusForbidden {
			t.Fatalf("the deleted integration's form: %d, want 403", status)
		}
	}
	if n := counting.reads.Load(); n != 0 {
		t.Fatalf("15 GETs read %d integration entries from storage, want 0 (from the cache, a missing one too)", n)
	}
	e.mustDo(logical.CreateOperation, "integrations/key-03", map[string]any{"auth_mode": "API_KEY", "display_name": "Three Again"})
	if _, body := uiGet(e, url.Values{sessionParam: {secret}}); !strings.Contains(body, "Three Again") {
		t.Fatalf("the chooser after the integration's re-creation does not show it:\n%s", body)
	}
}

// An integration written while the page's post gets the connection's first
// token: nothing is stored (the store refuses a token of an integration
// that changed), and the customer sees a page that says to try again, not
// a Vault error; the failed attempt does not count against the link.
func TestConnectPageIntegrationChangedMeanwhileSaysTryAgain(t *testing.T) {
	e, srv, secret := customerClientPageEnv(t)
	srv.OnToken(func() {
		srv.OnToken(nil)
		if _, status := e.do(logical.UpdateOperation, "integrations/byo", map[string]any{"token_url": srv.TokenURL() + "?v=2"}); status >= 300 {
			t.Errorf("integration write during the token request: %d", status)
		}
	})
	form := formOf(e, secret, "byo", map[string]any{"cred.client_id": srv.ClientID, "cred.client_secret": srv.ClientSecret})
	status, body := uiPost(e, form)
	if status != http.StatusConflict || !strings.Contains(body, "Try again") || strings.Contains(body, srv.ClientSecret) {
		t.Fatalf("post across an integration write: %d\n%s", status, body)
	}
	if c, _ := getConnection(t.Context(), e.storage, "byo", "t1"); c != nil {
		t.Fatal("the token issued for the old integration was stored")
	}
	status, body = uiPost(e, formOf(e, secret, "byo", map[string]any{"cred.client_id": srv.ClientID, "cred.client_secret": srv.ClientSecret}))
	if status != http.StatusOK {
		t.Fatalf("the next post: %d\n%s", status, body)
	}
}
