// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/connectpage"
)

// assertBindingCookie checks the binding cookie a page's 303 sets: one
// cookie, HttpOnly, SameSite=Lax, only for the callback's path, for the
// state's lifetime, Secure over https, and only its hash in storage.
func assertBindingCookie(t *testing.T, e *testEnv, resp *logical.Response, path string, secure bool) {
	t.Helper()
	lines := resp.Headers["Set-Cookie"]
	if len(lines) != 1 {
		t.Fatalf("Set-Cookie: %v", lines)
	}
	c, err := http.ParseSetCookie(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := e.b.config(t.Context(), e.storage)
	prefix := bindingCookiePrefix
	if secure {
		// Over https a __Secure- cookie: no plain-http answer (a network
		// attacker's) can set one of that name.
		prefix = "__Secure-" + prefix
	}
	if !strings.HasPrefix(c.Name, prefix) || len(c.Value) != 43 || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode ||
		c.Path != path || c.MaxAge != int(cfg.StateTTL.Seconds()) || c.Secure != secure || c.Domain != "" {
		t.Fatalf("binding cookie: %s", lines[0])
	}
	for k, v := range e.snapshot() {
		if strings.Contains(k, c.Value) || strings.Contains(v, c.Value) {
			t.Fatalf("storage %q holds the binding cookie's value", k)
		}
	}
}

// pageAuthorization opens a session's OAuth form as the env's browser and
// presses its button: the provider's URL the 303 sends the browser to.
func startPageAuthorization(t *testing.T, e *testEnv, session map[string]any) (authURL, secret string) {
	t.Helper()
	secret, _ = newSession(e, session)
	_, body := uiGet(e, url.Values{sessionParam: {secret}})
	status, body := uiPost(e, hiddenInputs(t, body))
	if status != http.StatusSeeOther {
		t.Fatalf("button: %d\n%s", status, body)
	}
	return continueURL(e, body), secret
}

func pageAuthEnv(t *testing.T) *testEnv {
	t.Helper()
	e, _ := authEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "https://vault.example.test/v1/connect"})
	return e
}

// TestPageCallbackRequiresTheBindingCookie is the account-linking attack
// of docs/security.md through the page: an attacker opens its own connect
// link, presses the button and sends the authorization URL to another
// person, whose browser the provider sends back to the callback. That
// browser has no binding cookie: 403, the state is spent, the code is never
// exchanged, nothing is stored. A wrong cookie is refused the same way;
// the browser that pressed the button connects.
func TestPageCallbackRequiresTheBindingCookie(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cookie func(e *testEnv)
	}{
		{"another browser", func(e *testEnv) { e.browser.cookies = nil }},
		{"a wrong value", func(e *testEnv) {
			for k := range e.browser.cookies {
				e.browser.cookies[k] = strings.Repeat("A", 43)
			}
		}},
		{"another session's cookie", func(e *testEnv) {
			for k, v := range e.browser.cookies {
				delete(e.browser.cookies, k)
				e.browser.cookies[bindingCookiePrefix+"0123456789abcdef"] = v
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, srv := authEnv(t)
			e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "https://vault.example.test/v1/connect"})
			authURL, _ := startPageAuthorization(t, e, map[string]any{"connection_id": "attacker", "integrations": "github"})
			q := followConsent(t, authURL)
			tc.cookie(e)
			tokenRequests := srv.Requests()
			status, body, _ := callback(e, q)
			if status != http.StatusForbidden || !strings.Contains(body, "not started from this browser") {
				t.Fatalf("callback: %d\n%s", status, body)
			}
			if srv.Requests() != tokenRequests {
				t.Fatal("the code was exchanged")
			}
			if _, status := e.do(logical.ReadOperation, "connections/github/attacker", nil); status != http.StatusNotFound {
				t.Fatalf("connection stored: %d", status)
			}
			// The state is spent: the right browser cannot use it either.
			e.browser.cookies = nil
			if status, _, _ := callback(e, q); status != http.StatusBadRequest {
				t.Fatalf("second use: %d", status)
			}
		})
	}
	t.Run("the browser that pressed the button", func(t *testing.T) {
		e := pageAuthEnv(t)
		authURL, _ := startPageAuthorization(t, e, map[string]any{"connection_id": "mine", "integrations": "github"})
		if status, body, _ := callback(e, followConsent(t, authURL)); status != http.StatusOK {
			t.Fatalf("callback: %d\n%s", status, body)
		}
		e.mustDo(logical.ReadOperation, "connections/github/mine", nil)
	})
}

// TestPageCookieOverHTTP: the cookie's path follows redirect_url, and it
// is Secure only when the page is served over https.
func TestPageCookieOverHTTP(t *testing.T) {
	e, srv := oauthEnv(t)
	const redirect = "http://127.0.0.1:8200/v1/team/connect/oauth/callback"
	srv.RegisterRedirectURI(redirect)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": redirect})
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"auth_url": srv.AuthURL()})
	secret, _ := newSession(e, map[string]any{"connection_id": "x", "integrations": "github"})
	_, body := uiGet(e, url.Values{sessionParam: {secret}})
	_, _, resp := uiRequest(e, logical.UpdateOperation, hiddenInputs(t, body))
	assertBindingCookie(t, e, resp, "/v1/team/connect/oauth/callback", false)
}

// TestPagePostsNeedThisVaultsOrigin: a post whose Origin is not the page's
// (another site's form, an opaque "null" origin, a look-alike host, the
// same host on another scheme or port) or that has none (a mount that does
// not pass it) is refused with 403 before anything is read or written: no
// state, no connection, no session change.
func TestPagePostsNeedThisVaultsOrigin(t *testing.T) {
	e := pageAuthEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	secret, _ := newSession(e, map[string]any{"connection_id": "acme", "integrations": "github,stripe"})
	oauthForm := formOf(e, secret, "github", nil)
	keyForm := formOf(e, secret, "stripe", map[string]any{"cred.apiKey": "sk_test_x"})
	before := e.snapshot()
	for _, origin := range []string{"null", "https://evil.example", "https://vault.example.test.evil.example", "http://vault.example.test",
		"https://vault.example.test:8443", "https://VAULT.example.test/", " "} {
		for _, form := range []map[string]any{oauthForm, keyForm} {
			e.browser.origin = origin
			status, body, resp := uiRequest(e, logical.UpdateOperation, form)
			if status != http.StatusForbidden || len(resp.Headers) != 0 {
				t.Fatalf("origin %q: %d %v\n%s", origin, status, resp.Headers, body)
			}
		}
	}
	// The page's referrer policy keeps the browser's Origin on its own
	// posts: under no-referrer a browser sends "Origin: null" on every
	// POST (Fetch, "serializing a request origin"), which the check refuses.
	if _, page := uiGet(e, url.Values{sessionParam: {secret}}); !strings.Contains(page, `<meta name="referrer" content="same-origin">`) {
		t.Fatalf("referrer policy:\n%s", page)
	}
	e.browser.origin = "-"
	status, body, _ := uiRequest(e, logical.UpdateOperation, oauthForm)
	if status != http.StatusForbidden || !strings.Contains(body, "-passthrough-request-headers=Origin") || !strings.Contains(body, " connect/") {
		t.Fatalf("without Origin: %d\n%s", status, body)
	}
	e.assertUnchanged(before)
	// The page's own origin, whatever its case and with the default port
	// left out, is accepted.
	e.browser.origin = "https://Vault.Example.Test"
	if status, body := uiPost(e, oauthForm); status != http.StatusSeeOther {
		t.Fatalf("own origin: %d\n%s", status, body)
	}
}

func TestPageOrigin(t *testing.T) {
	for base, want := range map[string]string{
		"https://vault.example.test/v1/connect":        "https://vault.example.test",
		"https://vault.example.test:443/v1/connect":    "https://vault.example.test",
		"http://127.0.0.1:8200/v1/connect":             "http://127.0.0.1:8200",
		"HTTP://Vault.Example.Test:80/v1/connect":      "http://vault.example.test",
		"https://[::1]:8200/v1/connect/oauth/callback": "https://[::1]:8200",
		"": "",
	} {
		if got := pageOrigin(&configEntry{PublicURL: base}); got != want {
			t.Errorf("%q: %q, want %q", base, got, want)
		}
	}
	if got := pageOrigin(&configEntry{RedirectURL: "https://v.example.test/v1/c/oauth/callback"}); got != "https://v.example.test" {
		t.Errorf("from redirect_url: %q", got)
	}
}

// TestPageCallbackNeverReplacesWithoutReconnect: a session without
// reconnect found no connection when its button was pressed; one created
// before the callback is left as it is, checked under the connection's
// lock, and the page says it exists.
func TestPageCallbackNeverReplacesWithoutReconnect(t *testing.T) {
	e := pageAuthEnv(t)
	authURL, _ := startPageAuthorization(t, e, map[string]any{
		"connection_id": "org:1", "integrations": "github", "metadata": map[string]any{"by": "session"},
	})
	q := followConsent(t, authURL)
	e.mustDo(logical.CreateOperation, "connections/github/org:1", map[string]any{"access_token": "theirs", "metadata": map[string]any{"by": "operator"}})
	status, body, _ := callback(e, q)
	if status != http.StatusConflict || !strings.Contains(body, "connected already") {
		t.Fatalf("callback: %d\n%s", status, body)
	}
	c := e.mustDo(logical.ReadOperation, "connections/github/org:1", nil)
	if c["access_token"] != "theirs" || c["metadata"].(map[string]any)["by"] != "operator" {
		t.Fatalf("the connection was replaced: %v", c)
	}
}

// TestCallbackPagesShowNoProviderWords: the page of a provider's refusal
// shows a fixed message and the error code only when RFC 6749 registers
// it; error_description and error_uri (anyone can put words in a link to
// Vault's address) go to the scrubbed log and the authorization_failed
// event only.
func TestCallbackPagesShowNoProviderWords(t *testing.T) {
	e, _ := authEnv(t)
	events := captureEvents(e)
	for _, tc := range []struct{ code, shown string }{
		{"access_denied", "(access_denied)"},
		{"call_support_at_evil", ""},
	} {
		authURL := e.mustDo(logical.UpdateOperation, "connections/github/acme/authorize", nil)["authorization_url"].(string)
		u, _ := url.Parse(authURL)
		status, page, _ := callback(e, url.Values{
			"state": {u.Query().Get("state")}, "error": {tc.code},
			"error_description": {"Your account is locked, call +1 555 0100"}, "error_uri": {"https://evil.example/help"},
		})
		if status != http.StatusBadRequest || !strings.Contains(page, "The provider refused the authorization.") {
			t.Fatalf("%s: %d\n%s", tc.code, status, page)
		}
		for _, never := range []string{"555", "evil", "locked", "call_support"} {
			if strings.Contains(page, never) {
				t.Fatalf("%s: the page shows %q:\n%s", tc.code, never, page)
			}
		}
		if tc.shown != "" && !strings.Contains(page, tc.shown) {
			t.Fatalf("%s: registered code not shown:\n%s", tc.code, page)
		}
		got := expectEvents(t, events, "acme", eventAuthorizationFailed)
		if d := got[0].data.Error; d.Code != tc.code || !strings.Contains(d.Description, "call +1 555 0100") || !strings.Contains(d.Description, "https://evil.example/help") {
			t.Fatalf("event error: %+v", d)
		}
	}
	if !strings.Contains(e.logs.String(), "call +1 555 0100") {
		t.Fatal("the description was not logged")
	}
}

// TestCallbackChecksTheIssuer: where the provider's redirect carries iss
// (RFC 9207) and the integration declares an issuer, they must be equal,
// or the code is not exchanged; without either, nothing is checked.
func TestCallbackChecksTheIssuer(t *testing.T) {
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"issuer": "https://as.example.test"})
	if got := e.mustDo(logical.ReadOperation, "integrations/github", nil)["issuer"]; got != "https://as.example.test" {
		t.Fatalf("issuer read back: %v", got)
	}
	q := consent(t, e, "connections/github/acme/authorize", nil)
	q.Set("iss", "https://mixup.example.test")
	requests := srv.Requests()
	if status, page, _ := callback(e, q); status != http.StatusBadRequest || !strings.Contains(page, "another issuer") || srv.Requests() != requests {
		t.Fatalf("wrong iss: %d exchanged=%v\n%s", status, srv.Requests() != requests, page)
	}
	q = consent(t, e, "connections/github/acme/authorize", nil)
	q.Set("iss", "https://as.example.test")
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("right iss: %d\n%s", status, page)
	}
	if status, _, _ := callback(e, consent(t, e, "connections/github/acme/authorize", nil)); status != http.StatusOK {
		t.Fatalf("no iss: %d", status)
	}
}

// TestPagesSayWhomAndWhatTheyConnect: a session's display_name is on
// every page of the session, with the integration's display name (its
// own, else the catalog provider's, never its machine name); a
// display_name over 200 characters or with control characters is refused.
func TestPagesSayWhomAndWhatTheyConnect(t *testing.T) {
	e := pageAuthEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/gh-main", map[string]any{"provider": "github", "client_id": "x", "client_secret": "y"})
	e.mustDo(logical.CreateOperation, "integrations/keys", map[string]any{"auth_mode": "API_KEY", "display_name": "Billing <API>"})
	if got := e.mustDo(logical.ReadOperation, "integrations/gh-main", nil)["display_name"]; got != "GitHub" {
		t.Fatalf("default display_name %v", got)
	}
	for _, bad := range []map[string]any{{"display_name": strings.Repeat("x", 201)}, {"display_name": "Acme\nCorp"}} {
		e.mustFail(logical.UpdateOperation, "integrations/keys", bad, http.StatusBadRequest)
		bad["connection_id"] = "x"
		e.mustFail(logical.UpdateOperation, "sessions", bad, http.StatusBadRequest)
	}
	secret, id := newSession(e, map[string]any{"connection_id": "acme", "integrations": "gh-main,keys", "display_name": "Acme Corp"})
	if got := e.mustDo(logical.ReadOperation, "sessions/"+id, nil)["display_name"]; got != "Acme Corp" {
		t.Fatalf("session display_name %v", got)
	}
	_, choices := uiGet(e, url.Values{sessionParam: {secret}})
	_, ghForm := uiGet(e, url.Values{sessionParam: {secret}, integrationParam: {"gh-main"}})
	_, keysForm := uiGet(e, url.Values{sessionParam: {secret}, integrationParam: {"keys"}})
	_, failed := uiPost(e, formOf(e, secret, "keys", map[string]any{"cred.apiKey": ""}))
	_, connected := uiPost(e, formOf(e, secret, "keys", map[string]any{"cred.apiKey": "k-123"}))
	for name, tc := range map[string]struct{ page, says string }{
		"choices":   {choices, "Connecting for <strong>Acme Corp</strong>"},
		"form":      {ghForm, "Connecting GitHub for <strong>Acme Corp</strong>"},
		"own name":  {keysForm, "Connecting Billing &lt;API&gt; for <strong>Acme Corp</strong>"},
		"failed":    {failed, "for <strong>Acme Corp</strong>"},
		"connected": {connected, "for <strong>Acme Corp</strong>"},
	} {
		if !strings.Contains(tc.page, tc.says) {
			t.Errorf("%s page does not say %q:\n%s", name, tc.says, tc.page)
		}
	}
	if strings.Contains(choices, ">gh-main<") {
		t.Error("the machine name is shown")
	}
}

// TestPageCookieGoesToTheMountsCallback: an integration that sends a
// registered name as redirect_uri (eBay's RuName) still gets its browser
// back at the mount's callback: the cookie's path is that callback's.
func TestPageCookieGoesToTheMountsCallback(t *testing.T) {
	e := pageAuthEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"redirect_uri_value": "Acme_Corp-AcmeApp-PRD-RuName"})
	secret, _ := newSession(e, map[string]any{"connection_id": "x", "integrations": "github"})
	_, body := uiGet(e, url.Values{sessionParam: {secret}})
	_, _, resp := uiRequest(e, logical.UpdateOperation, hiddenInputs(t, body))
	assertBindingCookie(t, e, resp, "/v1/connect/oauth/callback", true)
}

// TestPageRefusesACallbackOnAnotherHost: the binding cookie is the page's
// host's, so a redirect_url on another host than public_url could never
// bring it back; the button says so instead of sending the customer to a
// consent that must fail, and nothing is stored.
func TestPageRefusesACallbackOnAnotherHost(t *testing.T) {
	e := pageAuthEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "https://connect.example.test/v1/connect"})
	secret, _ := newSession(e, map[string]any{"connection_id": "x", "integrations": "github"})
	_, body := uiGet(e, url.Values{sessionParam: {secret}})
	form := hiddenInputs(t, body)
	before := e.snapshot()
	status, body, resp := uiRequest(e, logical.UpdateOperation, form)
	if status != http.StatusBadRequest || len(resp.Headers) != 0 || !strings.Contains(body, "another host") {
		t.Fatalf("button: %d %v\n%s", status, resp.Headers, body)
	}
	// The session counts the failed post (at most 5 per link); nothing else.
	e.assertUnchanged(before, sessionPrefix)
}

// TestDroppedCompletionsAreRevoked: the tokens of a pending completion
// that a new authorize replaces, or whose connection is deleted, are
// revoked like those of one that expires.
func TestDroppedCompletionsAreRevoked(t *testing.T) {
	e, srv := completionEnv(t)
	completionOf(t, e, consent(t, e, "connections/github/acme/authorize", authorizeForApp(nil)))
	e.mustDo(logical.UpdateOperation, "connections/github/acme/authorize", authorizeForApp(nil))
	if len(srv.Revoked()) != 2 {
		t.Fatalf("replaced: revoked %v", srv.Revoked())
	}
	completionOf(t, e, consent(t, e, "connections/github/bob/authorize", authorizeForApp(nil)))
	e.mustDo(logical.CreateOperation, "connections/github/bob", map[string]any{"access_token": "x"})
	e.mustDo(logical.DeleteOperation, "connections/github/bob", nil)
	if got := srv.Revoked(); len(got) < 4 {
		t.Fatalf("deleted: revoked %v", got)
	}
}

// TestOAuthFormMayLeaveForTheProvider: a browser applies form-action to
// the redirects of a form's submission too, so the OAuth form's policy
// names the provider's authorization origin (a placeholder label as a
// wildcard, a host wholly a placeholder as the allowed hosts); every other
// page's forms go to Vault only.
func TestOAuthFormMayLeaveForTheProvider(t *testing.T) {
	for authURL, want := range map[string]string{
		"https://github.com/login/oauth/authorize":                     "form-action 'self' https://github.com;",
		"http://127.0.0.1:8080/t/${connectionConfig.subdomain}/auth":   "form-action 'self' http://127.0.0.1:8080;",
		"https://${connectionConfig.subdomain}.okta.com/oauth2/v1/aut": "form-action 'self' https://*.okta.com;",
		"https://${connectionConfig.host}/authorize":                   "form-action 'self' https://*.example.test https://login.example.test;",
		"https://a.example.test/x || https://b.example.test/y":         "form-action 'self' https://a.example.test https://b.example.test;",
	} {
		in := &integrationEntry{Name: "x", AuthMode: "OAUTH2"}
		in.AuthURL, in.AllowedHosts = authURL, []string{"*.example.test", "login.example.test"}
		if got := connectpage.CSPFor(pageIntegration(in)) + ";"; !strings.Contains(got, want) {
			t.Errorf("%s: %s", authURL, got)
		}
	}
	in := &integrationEntry{Name: "k", AuthMode: "API_KEY"}
	if got := connectpage.CSPFor(pageIntegration(in)); !strings.HasSuffix(got, "form-action 'self'") {
		t.Errorf("API key form: %s", got)
	}
	e := pageAuthEnv(t)
	secret, _ := newSession(e, map[string]any{"connection_id": "x", "integrations": "github"})
	_, body := uiGet(e, url.Values{sessionParam: {secret}})
	srvURL, _ := url.Parse(e.mustDo(logical.ReadOperation, "integrations/github", nil)["auth_url"].(string))
	if !strings.Contains(html.UnescapeString(body), "form-action 'self' http://"+srvURL.Host+"\"") {
		t.Fatalf("OAuth form's policy:\n%s", body)
	}
}
