// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var pageHiddenInputRe = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// pageForm returns the hidden fields of the form on a connect page.
func pageForm(t *testing.T, body string) url.Values {
	t.Helper()
	form := url.Values{}
	for _, m := range pageHiddenInputRe.FindAllStringSubmatch(body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if form.Get("form_token") == "" {
		t.Fatalf("no form on the page:\n%s", body)
	}
	return form
}

// noRedirects is a client that stops at the first redirect, to see it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func pageDo(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestConnectPageThroughVault: the page works through Vault's own HTTP
// layer, without a token: a GET renders it with its headers, a form
// posted as application/x-www-form-urlencoded stores the connection, and
// the OAuth button's POST leads to the provider and back through the
// callback to the page's success.
func TestConnectPageThroughVault(t *testing.T) {
	s := vaultFor(t)
	as := flowServer(t, s, "https://app.example.test/done")
	s.mustCLI(t, "write", "connect/config", "public_url="+s.addr+"/v1/connect")
	s.mustCLI(t, "write", "connect/integrations/page-key", "auth_mode=API_KEY")
	s.mustCLI(t, "write", "connect/integrations/page-gh", "auth_mode=OAUTH2", "client_id="+as.ClientID,
		"client_secret="+as.ClientSecret, "auth_url="+as.AuthURL(), "token_url="+as.TokenURL())

	connectURL, err := s.cli([]byte(`{"connection_id": "page-acme", "integrations": "page-key", "metadata": {"plan": "pro"}, "tags": {"end_user_id": "42"}, "return_url": "https://app.example.test/done"}`),
		"write", "-field=connect_url", "connect/sessions", "-")
	if err != nil {
		t.Fatalf("session: %v %s", err, connectURL)
	}
	req, _ := http.NewRequest(http.MethodGet, strings.TrimSpace(connectURL), nil)
	resp, body := pageDo(t, req)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(body, "Content-Security-Policy") {
		t.Fatalf("page: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}

	key := "page-api-key-0123456789"
	noteSecrets(key)
	form := pageForm(t, body)
	form.Set("cred.api_key", key)
	// A post without Origin (a mount that does not pass it) or from
	// another site's form changes nothing.
	for _, origin := range []string{"", "null", "http://evil.example.test"} {
		req, _ = http.NewRequest(http.MethodPost, s.addr+"/v1/connect/connect/ui", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if resp, body = pageDo(t, req); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("post with Origin %q: %d\n%s", origin, resp.StatusCode, body)
		}
	}
	if out := s.failCLI(t, "read", "connect/connections/page-key/page-acme"); !strings.Contains(out, "No value found") {
		t.Fatalf("a refused post stored: %s", out)
	}
	req, _ = http.NewRequest(http.MethodPost, s.addr+"/v1/connect/connect/ui", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.addr)
	resp, body = pageDo(t, req)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "page-key is connected") || strings.Contains(body, key) {
		t.Fatalf("post: %d\n%s", resp.StatusCode, body)
	}
	if got := s.mustCLI(t, "read", "-field=api_key", "connect/connections/page-key/page-acme"); got != key {
		t.Fatalf("stored key %q", got)
	}
	if got := s.mustCLI(t, "read", "-field=metadata", "connect/connections/page-key/page-acme"); !strings.Contains(got, "plan:pro") {
		t.Fatalf("stored metadata %q", got)
	}
	if got := s.mustCLI(t, "read", "-field=tags", "connect/connections/page-key/page-acme"); !strings.Contains(got, "end_user_id:42") {
		t.Fatalf("stored tags %q", got)
	}

	// OAuth: the button's POST answers 303 to the provider, with the
	// binding cookie, both through the real Vault (the mount passes them);
	// nothing of the form goes with it.
	pressOAuth := func(id string) (string, *http.Cookie) {
		connectURL := s.mustCLI(t, "write", "-field=connect_url", "connect/sessions", "connection_id="+id, "integrations=page-gh")
		req, _ := http.NewRequest(http.MethodGet, strings.TrimSpace(connectURL), nil)
		_, body := pageDo(t, req)
		form := pageForm(t, body)
		req, _ = http.NewRequest(http.MethodPost, s.addr+"/v1/connect/connect/ui", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", s.addr)
		resp, body := pageDo(t, req)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, as.AuthURL()+"?") || strings.Contains(loc, form.Get("session")) {
			t.Fatalf("oauth button: %d Location %q\n%s", resp.StatusCode, loc, body)
		}
		cookies := resp.Cookies()
		if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteLaxMode || cookies[0].Path != "/v1/connect/oauth/callback" {
			t.Fatalf("binding cookie: %v", resp.Header["Set-Cookie"])
		}
		return loc, cookies[0]
	}
	// The provider's redirect opened in another browser (no cookie):
	// refused, nothing stored.
	loc, _ := pressOAuth("page-victim")
	resp, _ = pageDo(t, mustRequest(t, http.MethodGet, loc))
	resp, body = pageDo(t, mustRequest(t, http.MethodGet, resp.Header.Get("Location")))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not started from this browser") {
		t.Fatalf("callback without the cookie: %d\n%s", resp.StatusCode, body)
	}
	if out := s.failCLI(t, "read", "connect/connections/page-gh/page-victim"); !strings.Contains(out, "No value found") {
		t.Fatalf("stored without the cookie: %s", out)
	}
	// The browser that pressed the button sends it back.
	loc, cookie := pressOAuth("page-acme")
	resp, _ = pageDo(t, mustRequest(t, http.MethodGet, loc))
	cb := mustRequest(t, http.MethodGet, resp.Header.Get("Location"))
	cb.AddCookie(cookie)
	resp, body = pageDo(t, cb)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "page-gh is connected") {
		t.Fatalf("after consent: %d\n%s", resp.StatusCode, body)
	}
	if access := s.mustCLI(t, "read", "-field=access_token", "connect/connections/page-gh/page-acme"); !as.AccessTokenValid(access) {
		t.Fatalf("access token %q was not issued by the server", access)
	}
}

// docsSessionPolicy is the sessions policy of docs/policies.md, read from
// the document as it stands so that the example is the one tested.
func docsSessionPolicy(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(examplePolicy("x")), "..", "..", "docs", "policies.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Connect sessions")
	_, block, ok2 := strings.Cut(section, "```hcl\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/policies.md has no hcl block under its Connect sessions section")
	}
	return block
}

// TestSessionPolicyFromTheDocs: the documented policy lets its holder
// create sessions only for the integrations it lists, never one that
// offers them all, and revoke but not read them.
func TestSessionPolicyFromTheDocs(t *testing.T) {
	s := vaultFor(t)
	s.mustCLI(t, "write", "connect/config", "public_url="+s.addr+"/v1/connect")
	for _, name := range []string{"stripe", "github", "policy-other"} {
		s.cli(nil, "write", "connect/integrations/"+name, "auth_mode=API_KEY")
	}
	policyFile := filepath.Join(t.TempDir(), "sessions.hcl")
	if err := os.WriteFile(policyFile, []byte(docsSessionPolicy(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustCLI(t, "policy", "write", "connect-sessions-doc", policyFile)
	token := strings.TrimSpace(s.mustCLI(t, "token", "create", "-policy=connect-sessions-doc", "-field=token"))

	status, body := s.rawAs(t, token, "POST", "connect/sessions", []byte(`{"connection_id": "pol-1", "integrations": "stripe", "ttl": "5m"}`))
	if status != http.StatusOK || !strings.Contains(body, "connect_url") {
		t.Fatalf("allowed session: %d %s", status, body)
	}
	var out struct {
		Data struct {
			SessionID string `json:"session_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	for _, refused := range []string{
		`{"connection_id": "pol-1", "integrations": "policy-other"}`,
		`{"connection_id": "pol-1"}`,
		`{"connection_id": "pol-1", "integrations": "stripe", "reconnect": true}`,
	} {
		if status, body := s.rawAs(t, token, "POST", "connect/sessions", []byte(refused)); status != http.StatusForbidden {
			t.Fatalf("%s: %d %s", refused, status, body)
		}
	}
	if status, _ := s.rawAs(t, token, "GET", "connect/sessions/"+out.Data.SessionID, nil); status != http.StatusForbidden {
		t.Fatalf("read of a session: %d", status)
	}
	if status, body := s.rawAs(t, token, "DELETE", "connect/sessions/"+out.Data.SessionID, nil); status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", status, body)
	}
}
