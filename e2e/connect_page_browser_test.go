// SPDX-License-Identifier: MPL-2.0

package e2e

// The hosted connect page in a real browser: the application makes a
// session through the API, the customer opens its connect_url in Chromium
// and connects by reading labels and pressing buttons, and the connection
// is then read with the vault CLI. Screenshots of every page are written at
// 1280 and 375 px (see screenshot).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// pageTimeout bounds one browser test's tab.
const pageTimeout = 45 * time.Second

// Words of the page the tests read, as a person would.
const (
	keyLabel       = "API key"
	subdomainLabel = "Subdomain"
	connectButton  = "Connect"
	oauthButton    = "Continue to sign in"
)

// returnApp is the application the page sends the customer back to.
type returnApp struct {
	*httptest.Server
	mu   sync.Mutex
	hits []string
}

func newReturnApp(t *testing.T) *returnApp {
	t.Helper()
	a := &returnApp{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.hits = append(a.hits, r.URL.RequestURI())
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>App</title><p>Back in the app</p>")
	}))
	t.Cleanup(a.Close)
	return a
}

// connectSession is a session as the sessions call answers it.
type connectSession struct {
	ID         string `json:"session_id"`
	ConnectURL string `json:"connect_url"`
	ExpiresAt  string `json:"expires_at"`
}

// newSession makes a session through the API with these fields.
func newSession(t *testing.T, s *vaultServer, fields map[string]any) connectSession {
	t.Helper()
	body, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.cli(body, "write", "-format=json", "connect/sessions", "-")
	if err != nil {
		t.Fatalf("sessions %s: %v\n%s", body, err, out)
	}
	var resp struct {
		Data connectSession `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Data.ConnectURL == "" || resp.Data.ID == "" {
		t.Fatalf("sessions answer: %v\n%s", err, out)
	}
	if strings.Contains(resp.Data.ConnectURL, resp.Data.ID) {
		t.Fatalf("connect_url %s carries the session_id", resp.Data.ConnectURL)
	}
	noteSecrets(sessionSecret(t, resp.Data))
	return resp.Data
}

// connectPageSetup is what every browser test of the page shares: the
// mount's config, an API-key integration whose key has a format, an
// integration the sessions never allow, and an OAuth one whose URLs take
// the customer's subdomain, against a loopback authorization server.
type connectPageSetup struct {
	s   *vaultServer
	as  *oauthtest.Server
	app *returnApp
}

const (
	pageKeyIntegration   = "browser-key"
	pageKeyDisplay       = pageKeyIntegration
	pageOtherIntegration = "browser-other"
	pageOAuthIntegration = "browser-tenant"
	pageOAuthProvider    = "e2e-browser-tenant"
	pageKeyPattern       = `sk_page_[a-z0-9]+`
	pageKeyHint          = "a key that starts with sk_page_ then lower-case letters and digits"
	// pageDisplayOAuth is the OAuth integration's display_name.
	pageDisplayOAuth      = "Browser Tenant"
	pageAPIKey            = "sk_page_browser1"
	pageBadKey            = "not-a-page-key-xyz"
	pageSecondTabFirstKey = "sk_page_secondtab"
	pageKeyboardKey       = "sk_page_keyboard1"
)

// The keys typed in the page, for the leak check.
func init() {
	noteSecrets(pageAPIKey, pageSecondTabFirstKey, pageKeyboardKey, pageBadKey, "sk_page_corrected1", "sk_page_revoked1",
		"sk_page_secondtab2", "sk_page_notallowed1", "sk_page_crossed1", "sk_page_theirs1",
		"sk_page_before1", "sk_page_notreplaced1", "sk_page_after1")
}

func setUpConnectPage(t *testing.T) *connectPageSetup {
	t.Helper()
	s := vaultFor(t)
	app := newReturnApp(t)
	as := flowServer(t, s, app.URL+"/done")
	// The page's address as a browser reaches it, whatever another test
	// set before.
	s.mustCLI(t, "write", "connect/config", "public_url="+s.addr+"/v1/connect")

	keySchema := fmt.Sprintf(`{"auth_mode": "API_KEY", "credentials_schema": {"api_key": {"title": %q, "secret": true, "pattern": %q, "pattern_hint": %q, "example": "sk_page_abc123"}}}`,
		keyLabel, pageKeyPattern, pageKeyHint)
	if out, err := s.cli([]byte(keySchema), "write", "connect/integrations/"+pageKeyIntegration, "-"); err != nil {
		t.Fatalf("API-key integration: %v\n%s", err, out)
	}
	s.mustCLI(t, "write", "connect/integrations/"+pageOtherIntegration, "auth_mode=API_KEY")

	base := as.URL + "/t/${connectionConfig.subdomain}"
	s.mustCLI(t, "write", "connect/providers/"+pageOAuthProvider, "auth_mode=OAUTH2",
		"auth_url="+base+"/authorize", "token_url="+base+"/token", "tokens_expire=true")
	oauth := fmt.Sprintf(`{"provider": %q, "client_id": %q, "client_secret": %q, "display_name": "`+pageDisplayOAuth+`",
		"connection_config_schema": {"subdomain": {"title": %q, "pattern": "[a-z0-9-]+", "suffix": ".example.test", "example": "acme"}}}`,
		pageOAuthProvider, as.ClientID, as.ClientSecret, subdomainLabel)
	if out, err := s.cli([]byte(oauth), "write", "connect/integrations/"+pageOAuthIntegration, "-"); err != nil {
		t.Fatalf("OAuth integration: %v\n%s", err, out)
	}
	return &connectPageSetup{s: s, as: as, app: app}
}

func TestConnectPageInBrowser(t *testing.T) {
	p := setUpConnectPage(t)
	s := p.s

	t.Run("API key", func(t *testing.T) {
		sess := newSession(t, s, map[string]any{
			"connection_id": "browser-acme",
			"integrations":  []string{pageKeyIntegration, pageOAuthIntegration},
			"tags":          map[string]string{"organization_id": "acme-org"},
			"metadata":      map[string]any{"plan": "pro"},
			"return_url":    p.app.URL + "/done",
		})
		ctx := browserTab(t, pageTimeout)
		if resp := open(t, ctx, sess.ConnectURL); resp.Status != http.StatusOK {
			t.Fatalf("connect_url: %d\n%s", resp.Status, pageText(ctx))
		}
		list := pageText(ctx)
		if !strings.Contains(list, pageKeyDisplay) || !strings.Contains(list, pageDisplayOAuth) || strings.Contains(list, pageOtherIntegration) {
			t.Fatalf("the list shows other than the allowed integrations:\n%s", list)
		}
		screenshot(t, ctx, "integrations")
		fitsNarrowScreen(t, ctx)

		press(t, ctx, pageKeyDisplay)
		screenshot(t, ctx, "api-key-form")
		fitsNarrowScreen(t, ctx)
		fill(t, ctx, keyLabel, pageAPIKey)
		if resp := press(t, ctx, connectButton); resp.Status != http.StatusOK {
			t.Fatalf("submit: %d\n%s", resp.Status, pageText(ctx))
		}
		done := pageText(ctx)
		if !strings.Contains(done, "onnected") || !strings.Contains(done, pageKeyDisplay) {
			t.Fatalf("success page does not say what is connected:\n%s", done)
		}
		if strings.Contains(pageHTML(t, ctx), pageAPIKey) {
			t.Fatal("the success page shows the key")
		}
		screenshot(t, ctx, "success")
		fitsNarrowScreen(t, ctx)

		conn := data(t, s, "connect/connections/"+pageKeyIntegration+"/browser-acme")
		if conn["api_key"] != pageAPIKey {
			t.Fatalf("stored key: %v", conn)
		}
		if tags, _ := conn["tags"].(map[string]any); tags["organization_id"] != "acme-org" {
			t.Fatalf("the session's tags are not on the connection: %v", conn)
		}
		if got := s.mustCLI(t, "read", "-field=plan", "connect/connections/"+pageKeyIntegration+"/browser-acme/metadata"); got != "pro" {
			t.Fatalf("the session's metadata is not on the connection: plan=%q", got)
		}

		// Back to the application by the success page's link.
		press(t, ctx, "Back")
		if u := location(t, ctx); !strings.HasPrefix(u, p.app.URL+"/done") {
			t.Fatalf("the link back went to %s, not the return_url", u)
		}
	})

	t.Run("OAuth with a subdomain", func(t *testing.T) {
		sess := newSession(t, s, map[string]any{
			"connection_id": "browser-oauth",
			"display_name":  "Acme Corp",
			"integrations":  []string{pageOAuthIntegration},
			"tags":          map[string]string{"organization_id": "oauth-org"},
			"return_url":    p.app.URL + "/done",
		})
		ctx := browserTab(t, pageTimeout)
		// One integration allowed: the page is its form at once.
		open(t, ctx, sess.ConnectURL)
		if form := pageText(ctx); !strings.Contains(form, "Connecting "+pageDisplayOAuth+" for Acme Corp") {
			t.Fatalf("the form does not say whom and what it connects:\n%s", form)
		}
		screenshot(t, ctx, "oauth-form")
		fitsNarrowScreen(t, ctx)
		fill(t, ctx, subdomainLabel, "acme")
		// The button leads to a page that sends the browser on to the
		// provider; the loopback provider consents at once and sends it to
		// Vault's callback, which shows the success page.
		press(t, ctx, oauthButton)
		waitForText(t, ctx, "onnected")
		if p.as.LastTenant() != "acme" || p.as.LastAuthorize().Get("state") == "" {
			t.Fatalf("the provider saw tenant %q, authorize %v", p.as.LastTenant(), p.as.LastAuthorize())
		}
		if done := pageText(ctx); !strings.Contains(done, "onnected") || !strings.Contains(done, pageOAuthIntegration) {
			t.Fatalf("callback page:\n%s", done)
		}
		screenshot(t, ctx, "oauth-success")
		press(t, ctx, "Back")
		if u := location(t, ctx); !strings.HasPrefix(u, p.app.URL+"/done") {
			t.Fatalf("after success the browser is at %s, not the return_url", u)
		}

		conn := data(t, s, "connect/connections/"+pageOAuthIntegration+"/browser-oauth")
		access, _ := conn["access_token"].(string)
		if !p.as.AccessTokenValid(access) {
			t.Fatalf("access token %q was not issued by the provider", access)
		}
		if tags, _ := conn["tags"].(map[string]any); tags["organization_id"] != "oauth-org" {
			t.Fatalf("the session's tags are not on the connection the callback stored: %v", conn["tags"])
		}
		if got := s.mustCLI(t, "read", "-field=subdomain", "connect/connections/"+pageOAuthIntegration+"/browser-oauth/config"); got != "acme" {
			t.Fatalf("connection config subdomain = %q", got)
		}
		// Fresh: a forced refresh through the provider gives a new valid token.
		forced := jsonOut(t, s, "write", "-f", "connect/connections/"+pageOAuthIntegration+"/browser-oauth/refresh")["data"].(map[string]any)["access_token"]
		if forced == access || !p.as.AccessTokenValid(forced.(string)) {
			t.Fatal("the connection made through the page does not refresh")
		}
	})

	t.Run("reconnect", func(t *testing.T) {
		path := "connect/connections/" + pageKeyIntegration + "/browser-reconnect"
		if out, err := s.cli([]byte(`{"api_key": "sk_page_before1", "metadata": {"plan": "team"}, "tags": {"organization_id": "re-org"}}`), "write", path, "-"); err != nil {
			t.Fatalf("existing connection: %v\n%s", err, out)
		}
		// Without reconnect the page refuses to replace it.
		plain := newSession(t, s, map[string]any{"connection_id": "browser-reconnect", "integrations": []string{pageKeyIntegration}})
		ctx := browserTab(t, pageTimeout)
		open(t, ctx, plain.ConnectURL)
		fill(t, ctx, keyLabel, "sk_page_notreplaced1")
		if resp := press(t, ctx, connectButton); resp.Status < 400 {
			t.Fatalf("a session without reconnect replaced a connection: %d\n%s", resp.Status, pageText(ctx))
		}
		if got := s.mustCLI(t, "read", "-field=api_key", path); got != "sk_page_before1" {
			t.Fatalf("key %q after a refused replace", got)
		}

		re := newSession(t, s, map[string]any{"connection_id": "browser-reconnect", "integrations": []string{pageKeyIntegration}, "reconnect": true})
		open(t, ctx, re.ConnectURL)
		fill(t, ctx, keyLabel, "sk_page_after1")
		if resp := press(t, ctx, connectButton); resp.Status != http.StatusOK {
			t.Fatalf("reconnect: %d\n%s", resp.Status, pageText(ctx))
		}
		conn := data(t, s, path)
		if conn["api_key"] != "sk_page_after1" {
			t.Fatalf("reconnect did not replace the key: %v", conn["api_key"])
		}
		if md, _ := conn["metadata"].(map[string]any); md["plan"] != "team" {
			t.Fatalf("reconnect lost the metadata: %v", conn["metadata"])
		}
		if tags, _ := conn["tags"].(map[string]any); tags["organization_id"] != "re-org" {
			t.Fatalf("reconnect lost the tags: %v", conn["tags"])
		}
	})

	t.Run("by keyboard alone", func(t *testing.T) {
		sess := newSession(t, s, map[string]any{"connection_id": "browser-keyboard", "integrations": []string{pageOAuthIntegration, pageKeyIntegration}})
		ctx := browserTab(t, pageTimeout)
		open(t, ctx, sess.ConnectURL)
		tabTo(t, ctx, pageKeyDisplay)
		key(t, ctx, kb.Enter)
		tabTo(t, ctx, keyLabel)
		if err := chromedp.Do(ctx, chromedp.KeyEvent(pageKeyboardKey)); err != nil {
			t.Fatal(err)
		}
		if resp := key(t, ctx, kb.Enter); resp.Status != http.StatusOK {
			t.Fatalf("Enter in the key field: %d\n%s", resp.Status, pageText(ctx))
		}
		if got := s.mustCLI(t, "read", "-field=api_key", "connect/connections/"+pageKeyIntegration+"/browser-keyboard"); got != pageKeyboardKey {
			t.Fatalf("stored key %q", got)
		}
	})

	t.Run("bad key format", func(t *testing.T) {
		sess := newSession(t, s, map[string]any{"connection_id": "browser-badkey", "integrations": []string{pageKeyIntegration}})
		ctx := browserTab(t, pageTimeout)
		open(t, ctx, sess.ConnectURL)
		fill(t, ctx, keyLabel, pageBadKey)
		if resp := press(t, ctx, connectButton); resp.Status < 400 || resp.Status > 499 {
			t.Fatalf("a key of the wrong format: %d\n%s", resp.Status, pageText(ctx))
		}
		// The error is tied to the field, as a screen reader reads it.
		described, err := chromedp.Run(ctx, chromedp.AttributeValue(labelled(keyLabel), "aria-describedby"))
		if err != nil || !described.Exists || described.Value == "" {
			t.Fatalf("the key field has no aria-describedby (%v):\n%s", err, pageHTML(t, ctx))
		}
		msg := ""
		for _, id := range strings.Fields(described.Value) {
			text, err := chromedp.Run(ctx, chromedp.Text(chromedp.Search(fmt.Sprintf("//*[@id=%s]", xq(id)))))
			if err != nil {
				t.Fatalf("aria-describedby names %q, which is not on the page: %v", id, err)
			}
			msg += text + " "
		}
		// In words (the schema's pattern_hint), never the expression.
		if !strings.Contains(msg, keyLabel) || !strings.Contains(msg, pageKeyHint) || strings.Contains(msg, pageKeyPattern) {
			t.Fatalf("the error next to the key does not say, in the field's own words, what is wrong: %q", msg)
		}
		if v, err := chromedp.Run(ctx, chromedp.Value(labelled(keyLabel))); err != nil || v != "" {
			t.Fatalf("the key field was filled back in with %q (%v)", v, err)
		}
		if strings.Contains(pageHTML(t, ctx), pageBadKey) {
			t.Fatal("the page echoes the refused key")
		}
		screenshot(t, ctx, "api-key-error")
		fitsNarrowScreen(t, ctx)
		s.failCLI(t, "read", "connect/connections/"+pageKeyIntegration+"/browser-badkey")

		// The person corrects it and goes on.
		fill(t, ctx, keyLabel, "sk_page_corrected1")
		if resp := press(t, ctx, connectButton); resp.Status != http.StatusOK {
			t.Fatalf("the corrected key: %d\n%s", resp.Status, pageText(ctx))
		}
		if got := s.mustCLI(t, "read", "-field=api_key", "connect/connections/"+pageKeyIntegration+"/browser-badkey"); got != "sk_page_corrected1" {
			t.Fatalf("stored key %q", got)
		}
	})

	t.Run("expired session", func(t *testing.T) {
		sess := newSession(t, s, map[string]any{"connection_id": "browser-expired", "ttl": "1s"})
		time.Sleep(1500 * time.Millisecond)
		ctx := browserTab(t, pageTimeout)
		refused(t, ctx, open(t, ctx, sess.ConnectURL).Status, "expired")
		screenshot(t, ctx, "expired")
	})

	t.Run("revoked session", func(t *testing.T) {
		sess := newSession(t, s, map[string]any{"connection_id": "browser-revoked"})
		ctx := browserTab(t, pageTimeout)
		open(t, ctx, sess.ConnectURL)
		press(t, ctx, pageKeyDisplay)
		s.mustCLI(t, "delete", "connect/sessions/"+sess.ID)
		fill(t, ctx, keyLabel, "sk_page_revoked1")
		refused(t, ctx, press(t, ctx, connectButton).Status, "")
		s.failCLI(t, "read", "connect/connections/"+pageKeyIntegration+"/browser-revoked")
		refused(t, ctx, open(t, ctx, sess.ConnectURL).Status, "")
	})

	t.Run("integration not allowed", func(t *testing.T) {
		sess := newSession(t, s, map[string]any{"connection_id": "browser-notallowed", "integrations": []string{pageKeyIntegration}})
		ctx := browserTab(t, pageTimeout)
		open(t, ctx, sess.ConnectURL)
		if list := pageText(ctx); strings.Contains(list, pageOtherIntegration) || strings.Contains(list, pageOAuthIntegration) {
			t.Fatalf("the page offers integrations the session does not allow:\n%s", list)
		}
		formPage := location(t, ctx)
		// The form's own page, asked for another integration.
		if strings.Contains(formPage, pageKeyIntegration) {
			other := strings.ReplaceAll(formPage, pageKeyIntegration, pageOtherIntegration)
			refused(t, ctx, open(t, ctx, other).Status, "")
			open(t, ctx, formPage)
		}
		// The form posted for another integration.
		retarget(t, ctx, func(v string) string { return strings.ReplaceAll(v, pageKeyIntegration, pageOtherIntegration) })
		fill(t, ctx, keyLabel, "sk_page_notallowed1")
		refused(t, ctx, press(t, ctx, connectButton).Status, "")
		s.failCLI(t, "read", "connect/connections/"+pageOtherIntegration+"/browser-notallowed")
		s.failCLI(t, "read", "connect/connections/"+pageKeyIntegration+"/browser-notallowed")
	})

	t.Run("form of one session posted with another's URL", func(t *testing.T) {
		mine := newSession(t, s, map[string]any{"connection_id": "browser-mine", "integrations": []string{pageKeyIntegration}})
		theirs := newSession(t, s, map[string]any{"connection_id": "browser-theirs", "integrations": []string{pageKeyIntegration}})
		mineSecret, theirSecret := sessionSecret(t, mine), sessionSecret(t, theirs)
		ctx := browserTab(t, pageTimeout)
		open(t, ctx, mine.ConnectURL)
		// Every place the form carries its session (the action URL, hidden
		// fields) now names the other one; the form token stays this one's.
		retarget(t, ctx, func(v string) string { return strings.ReplaceAll(v, mineSecret, theirSecret) })
		fill(t, ctx, keyLabel, "sk_page_crossed1")
		refused(t, ctx, press(t, ctx, connectButton).Status, "")
		s.failCLI(t, "read", "connect/connections/"+pageKeyIntegration+"/browser-theirs")
		s.failCLI(t, "read", "connect/connections/"+pageKeyIntegration+"/browser-mine")

		// The other session's own page still works: the attempt spent nothing.
		ctx = browserTab(t, pageTimeout)
		open(t, ctx, theirs.ConnectURL)
		fill(t, ctx, keyLabel, "sk_page_theirs1")
		if resp := press(t, ctx, connectButton); resp.Status != http.StatusOK {
			t.Fatalf("the other session after the attempt: %d\n%s", resp.Status, pageText(ctx))
		}
	})

	t.Run("second tab after success", func(t *testing.T) {
		sess := newSession(t, s, map[string]any{"connection_id": "browser-twotabs", "integrations": []string{pageKeyIntegration}})
		first := browserTab(t, pageTimeout)
		open(t, first, sess.ConnectURL)
		second := newTabLike(t, first)
		open(t, second, sess.ConnectURL)

		fill(t, first, keyLabel, pageSecondTabFirstKey)
		if resp := press(t, first, connectButton); resp.Status != http.StatusOK {
			t.Fatalf("first tab: %d\n%s", resp.Status, pageText(first))
		}
		fill(t, second, keyLabel, "sk_page_secondtab2")
		refused(t, second, press(t, second, connectButton).Status, "")
		screenshot(t, second, "used")
		if got := s.mustCLI(t, "read", "-field=api_key", "connect/connections/"+pageKeyIntegration+"/browser-twotabs"); got != pageSecondTabFirstKey {
			t.Fatalf("the second tab replaced the key: %q", got)
		}
	})
}

// refused checks that the page answered a 4xx and says so in words (want,
// when given, among them), with nothing to post again.
func refused(t *testing.T, ctx context.Context, status int64, want string) {
	t.Helper()
	text := pageText(ctx)
	if status < 400 || status > 499 {
		t.Fatalf("status %d, want a refusal:\n%s", status, text)
	}
	if want != "" && !strings.Contains(strings.ToLower(text), want) {
		t.Fatalf("the refusal does not say %q:\n%s", want, text)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.forms.length`)); err != nil || n != 0 {
		t.Fatalf("a refusal page with %d forms (%v)", n, err)
	}
}

// sessionSecret is the secret a session's connect_url carries: the value
// of its one query parameter.
func sessionSecret(t *testing.T, sess connectSession) string {
	t.Helper()
	u, err := url.Parse(sess.ConnectURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if len(q) != 1 {
		t.Fatalf("connect_url %s: want one query parameter, the secret", sess.ConnectURL)
	}
	for _, v := range q {
		if len(v) != 1 || len(v[0]) < 32 {
			t.Fatalf("connect_url %s: the secret is too short", sess.ConnectURL)
		}
		return v[0]
	}
	return ""
}

// retarget rewrites, as an attacker crafting a request would, the action
// URL and the hidden fields of the form on the page with change.
func retarget(t *testing.T, ctx context.Context, change func(string) string) {
	t.Helper()
	type formState struct {
		Action string            `json:"action"`
		Hidden map[string]string `json:"hidden"`
	}
	st, err := chromedp.Run(ctx, chromedp.Evaluate[formState](`(() => {
		const f = document.forms[document.forms.length - 1];
		const hidden = {};
		for (const el of f.querySelectorAll('input[type=hidden]')) hidden[el.name] = el.value;
		return {action: f.getAttribute('action') || document.URL, hidden};
	})()`))
	if err != nil {
		t.Fatalf("reading the form: %v", err)
	}
	changed := formState{Action: change(st.Action), Hidden: map[string]string{}}
	for k, v := range st.Hidden {
		changed.Hidden[k] = change(v)
	}
	if reflect.DeepEqual(st, changed) {
		t.Fatalf("the form carries nothing to change: %+v", st)
	}
	arg, _ := json.Marshal(changed)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const want = `+string(arg)+`;
		const f = document.forms[document.forms.length - 1];
		if (want.action) f.setAttribute('action', want.action);
		for (const el of f.querySelectorAll('input[type=hidden]')) el.value = want.hidden[el.name];
	})()`)); err != nil {
		t.Fatalf("changing the form: %v", err)
	}
}
