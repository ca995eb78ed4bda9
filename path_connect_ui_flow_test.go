// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestConnectPageReconnect(t *testing.T) {
	e := sessionEnv(t)
	e.mustDo(logical.CreateOperation, "connections/stripe/acme", map[string]any{
		"api_key": "sk_live_old", "metadata": map[string]any{"plan": "basic"}, "tags": map[string]any{"org": "acme"},
	})
	events := captureEvents(e)
	// A session that creates refuses an existing connection.
	secret, _ := newSession(e, map[string]any{"connection_id": "acme", "integrations": "stripe", "metadata": map[string]any{"plan": "new"}})
	status, body := uiPost(e, formOf(e, secret, "stripe", map[string]any{"cred.api_key": "sk_live_new"}))
	if status != http.StatusBadRequest || !strings.Contains(body, "reconnect") {
		t.Fatalf("create over existing: %d\n%s", status, body)
	}
	secret, _ = newSession(e, map[string]any{
		"connection_id": "acme", "integrations": "stripe", "reconnect": true,
		"metadata": map[string]any{"plan": "new"}, "tags": map[string]any{"org": "other"},
	})
	if status, body = uiPost(e, formOf(e, secret, "stripe", map[string]any{"cred.api_key": "sk_live_new"})); status != http.StatusOK {
		t.Fatalf("reconnect: %d\n%s", status, body)
	}
	c := e.mustDo(logical.ReadOperation, "connections/stripe/acme", nil)
	if c["api_key"] != "sk_live_new" || c["metadata"].(map[string]any)["plan"] != "basic" || c["tags"].(map[string]string)["org"] != "acme" {
		t.Fatalf("reconnected connection: %v", c)
	}
	if got := expectEvents(t, events, "acme", eventConnectionUpdated); got[0].data.Tags["org"] != "acme" {
		t.Fatalf("updated event tags: %v", got[0].data.Tags)
	}
	// A reconnect of nothing is refused.
	secret, _ = newSession(e, map[string]any{"connection_id": "ghost", "integrations": "stripe", "reconnect": true})
	if status, _ = uiPost(e, formOf(e, secret, "stripe", map[string]any{"cred.api_key": "sk_live_x"})); status != http.StatusBadRequest {
		t.Fatalf("reconnect of nothing: %d", status)
	}
}

func TestConnectPageOAuth(t *testing.T) {
	e, srv := authEnv(t)
	events := captureEvents(e)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "https://vault.example.test/v1/connect"})
	secret, id := newSession(e, map[string]any{
		"connection_id": "org:9", "integrations": "github", "metadata": map[string]any{"team": "blue"},
		"tags": map[string]any{"end_user_id": "7"}, "return_url": "https://app.example.test/done",
	})
	status, body := uiGet(e, url.Values{sessionParam: {secret}})
	// The button's 303 leads to the provider: its origin, and no other, is
	// a form target besides Vault (TestOAuthFormMayLeaveForTheProvider).
	srvOrigin := strings.TrimSuffix(srv.AuthURL(), "/authorize")
	if status != http.StatusOK || !strings.Contains(body, `method="post"`) || !strings.Contains(html.UnescapeString(body), "form-action 'self' "+srvOrigin+"\"") {
		t.Fatalf("oauth form: %d\n%s", status, body)
	}
	form := hiddenInputs(t, body)
	// The button is refused with another purpose's token.
	bad := map[string]any{}
	for k, v := range form {
		bad[k] = v
	}
	bad[formTokenParam] = mustSession(e, secret).formToken("github", purposeConnect)
	if status, _ := uiPost(e, bad); status != http.StatusForbidden {
		t.Fatalf("oauth with a connect token: %d", status)
	}

	status, body, resp := uiRequest(e, logical.UpdateOperation, form)
	authURL := continueURL(e, body)
	if status != http.StatusSeeOther || !strings.HasPrefix(authURL, srv.AuthURL()+"?") || strings.Contains(authURL, secret) {
		t.Fatalf("oauth button: %d %q\n%s", status, authURL, body)
	}
	// No page on the way: the body, for a mount that drops the Location,
	// links nowhere and says what to tune.
	if strings.Contains(body, authURL) || strings.Contains(body, "refresh") || !strings.Contains(body, "allowed-response-headers=Location") {
		t.Fatalf("303's body:\n%s", body)
	}
	assertPageIsSelfContained(t, body)
	assertBindingCookie(t, e, resp, "/v1/connect/oauth/callback", true)
	q := followConsent(t, authURL)
	status, body, _ = callback(e, q)
	if status != http.StatusOK || !strings.Contains(body, "github is connected") ||
		!strings.Contains(body, "https://app.example.test/done?connection_id=org%3A9&amp;integration=github&amp;status=connected") {
		t.Fatalf("callback: %d\n%s", status, body)
	}
	c := e.mustDo(logical.ReadOperation, "connections/github/org:9", nil)
	if !srv.AccessTokenValid(c["access_token"].(string)) || c["metadata"].(map[string]any)["team"] != "blue" || c["tags"].(map[string]string)["end_user_id"] != "7" {
		t.Fatalf("connection: %v", c)
	}
	if got := expectEvents(t, events, "org:9", eventConnectionCreated); got[0].data.Tags["end_user_id"] != "7" {
		t.Fatalf("created event tags: %v", got[0].data.Tags)
	}
	if got := e.mustDo(logical.ReadOperation, "sessions/"+id, nil)["status"]; got != "connected" {
		t.Fatalf("session status %v", got)
	}
	if status, _ := uiGet(e, url.Values{sessionParam: {secret}}); status != http.StatusConflict {
		t.Fatalf("page after connecting: %d", status)
	}
}

func TestConnectPageOAuthCallbackOfRevokedSession(t *testing.T) {
	e, _ := authEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "https://vault.example.test/v1/connect"})
	secret, id := newSession(e, map[string]any{"connection_id": "org:9", "integrations": "github"})
	_, body := uiGet(e, url.Values{sessionParam: {secret}})
	_, body = uiPost(e, hiddenInputs(t, body))
	q := followConsent(t, continueURL(e, body))
	e.mustDo(logical.DeleteOperation, "sessions/"+id, nil)
	status, body, _ := callback(e, q)
	if status != http.StatusBadRequest || !strings.Contains(body, "revoked") {
		t.Fatalf("callback of a revoked session: %d\n%s", status, body)
	}
	if _, status := e.do(logical.ReadOperation, "connections/github/org:9", nil); status != http.StatusNotFound {
		t.Fatalf("connection stored through a revoked session: %d", status)
	}
}

// continueURL is where a continue page sends the browser: its refresh,
// which its link repeats.
func continueURL(e *testEnv, body string) string {
	e.t.Helper()
	if e.browser.location == "" {
		e.t.Fatalf("the page sent the browser nowhere:\n%s", body)
	}
	return e.browser.location
}

// followConsent plays the browser at the provider and returns the query
// it sends back to the callback.
func followConsent(t *testing.T, authURL string) url.Values {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("provider answered %d %v", resp.StatusCode, err)
	}
	return loc.Query()
}

// TestConnectPageReconnectKeepsConnectionConfig: a reconnect that posts
// only credentials (and a required config key as it was) keeps the
// connection's other config keys, those outside the schema and the
// optional ones left blank.
func TestConnectPageReconnectKeepsConnectionConfig(t *testing.T) {
	e := sessionEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/desk", map[string]any{
		"auth_mode": "API_KEY",
		"connection_config_schema": map[string]any{
			"subdomain": map[string]any{"type": "string", "title": "Subdomain", "pattern": "[a-z0-9-]+"},
			"region":    map[string]any{"type": "string", "title": "Region", "optional": true},
		},
	})
	e.mustDo(logical.CreateOperation, "connections/desk/acme", map[string]any{
		"api_key": "old-key", "connection_config": map[string]any{"subdomain": "acme", "region": "eu", "account_ref": "A-77"},
	})
	secret, _ := newSession(e, map[string]any{"connection_id": "acme", "integrations": "desk", "reconnect": true})
	status, body := uiPost(e, formOf(e, secret, "desk", map[string]any{"cred.api_key": "new-key", "config.subdomain": "acme-2"}))
	if status != http.StatusOK {
		t.Fatalf("reconnect: %d\n%s", status, body)
	}
	c := e.mustDo(logical.ReadOperation, "connections/desk/acme", nil)
	cfg := c["connection_config"].(map[string]any)
	if c["api_key"] != "new-key" || cfg["subdomain"] != "acme-2" || cfg["region"] != "eu" || cfg["account_ref"] != "A-77" {
		t.Fatalf("reconnect (credentials and subdomain) lost connection config: %v %v", c["api_key"], cfg)
	}
	// The merged config passes the schema's checks: a posted value that
	// does not match is refused and nothing changes.
	secret, _ = newSession(e, map[string]any{"connection_id": "acme", "integrations": "desk", "reconnect": true})
	before := e.snapshot()
	if status, body = uiPost(e, formOf(e, secret, "desk", map[string]any{"cred.api_key": "newer-key", "config.subdomain": "Not Valid"})); status != http.StatusBadRequest {
		t.Fatalf("reconnect with a bad subdomain: %d\n%s", status, body)
	}
	e.assertUnchanged(before, sessionPrefix) // the session counts the failed post
}

// TestConnectPageOAuthReconnectKeepsConnectionConfig: an OAuth reconnect
// merges the posted config keys over the connection's config as it is
// when the callback stores it, so keys outside the form and a key edited
// during the authorization are kept.
func TestConnectPageOAuthReconnectKeepsConnectionConfig(t *testing.T) {
	e, _ := authEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "https://vault.example.test/v1/connect"})
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{
		"connection_config_schema": map[string]any{
			"team":   map[string]any{"type": "string", "title": "Team"},
			"region": map[string]any{"type": "string", "title": "Region", "optional": true},
		},
	})
	e.mustDo(logical.CreateOperation, "connections/github/org:9", map[string]any{
		"access_token": "old-token", "connection_config": map[string]any{"team": "blue", "region": "eu", "account_ref": "A-77"},
	})
	secret, _ := newSession(e, map[string]any{"connection_id": "org:9", "integrations": "github", "reconnect": true})
	status, body := uiPost(e, formOf(e, secret, "github", map[string]any{"config.team": "red"}))
	if status != http.StatusSeeOther {
		t.Fatalf("oauth reconnect: %d\n%s", status, body)
	}
	q := followConsent(t, continueURL(e, body))
	e.mustDo(logical.UpdateOperation, "connections/github/org:9", map[string]any{
		"connection_config": map[string]any{"team": "blue", "region": "us", "account_ref": "A-77"},
	})
	if status, body, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d\n%s", status, body)
	}
	c := e.mustDo(logical.ReadOperation, "connections/github/org:9", nil)
	cfg := c["connection_config"].(map[string]any)
	if c["access_token"] == "old-token" || cfg["team"] != "red" || cfg["region"] != "us" || cfg["account_ref"] != "A-77" {
		t.Fatalf("oauth reconnect lost connection config: %v", cfg)
	}
}
