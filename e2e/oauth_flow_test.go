// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// callbackURL is the mount's callback on the test server.
func callbackURL(s *vaultServer) string { return s.addr + "/v1/connect/oauth/callback" }

// flowServer is a loopback authorization server that knows Vault's
// callback, with config pointing at it and the callback storing the
// connections of authorize (oauth_completion "callback"); the
// application's completion has TestApplicationCompletionThroughVault.
func flowServer(t *testing.T, s *vaultServer, allowedReturn string) *oauthtest.Server {
	t.Helper()
	as := newAuthServer(t)
	as.RegisterRedirectURI(callbackURL(s))
	s.mustCLI(t, "write", "connect/config", "redirect_url="+callbackURL(s), "allowed_return_urls="+allowedReturn, "oauth_completion=callback")
	return as
}

// browse follows a URL like a browser without a Vault token, through the
// provider's redirect to Vault's callback and on, and returns the last
// response's URL, status and body.
func browse(t *testing.T, rawURL string) (*url.URL, int, string) {
	t.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Request.URL, resp.StatusCode, string(body)
}

func TestAuthorizationFlowThroughVault(t *testing.T) {
	s := vaultFor(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app got "+r.URL.RawQuery)
	}))
	t.Cleanup(app.Close)
	as := flowServer(t, s, app.URL+"/done")
	s.mustCLI(t, "write", "connect/integrations/flow-gh", "auth_mode=OAUTH2", "client_id="+as.ClientID,
		"client_secret="+as.ClientSecret, "auth_url="+as.AuthURL(), "token_url="+as.TokenURL(),
		"revocation_url="+as.RevocationURL(), "scopes=repo")

	authURL := s.mustCLI(t, "write", "-force", "-field=authorization_url", "connect/connections/flow-gh/acme/authorize")
	final, status, body := browse(t, authURL)
	if status != http.StatusOK || !strings.Contains(body, "Connected") || final.Path != "/v1/connect/oauth/callback" {
		t.Fatalf("callback page: %d %s %s", status, final, body)
	}
	access := s.mustCLI(t, "read", "-field=access_token", "connect/connections/flow-gh/acme")
	if !as.AccessTokenValid(access) {
		t.Fatalf("access token %q was not issued by the server", access)
	}
	if q := as.LastAuthorize(); q.Get("code_challenge_method") != "S256" || q.Get("scope") != "repo" {
		t.Fatalf("authorize request: %v", q)
	}

	// Again, back to the application this time.
	authURL = s.mustCLI(t, "write", "-field=authorization_url", "connect/connections/flow-gh/bob/authorize", "return_url="+app.URL+"/done")
	final, status, body = browse(t, authURL)
	if status != http.StatusOK || final.Host != strings.TrimPrefix(app.URL, "http://") || !strings.Contains(body, "connection_id=bob") {
		t.Fatalf("return_url: %d %s %s", status, final, body)
	}

	// A replayed or forged callback is an HTML error page.
	status, page := getPage(t, callbackURL(s)+"?state=forged&code=x")
	if status != http.StatusBadRequest || !strings.Contains(page, "unknown or was already used") {
		t.Fatalf("forged state: %d %s", status, page)
	}
	as.Deny("access_denied", "<b>no</b>")
	authURL = s.mustCLI(t, "write", "-force", "-field=authorization_url", "connect/connections/flow-gh/carol/authorize")
	_, status, body = browse(t, authURL)
	if status != http.StatusBadRequest || strings.Contains(body, "<b>") || strings.Contains(body, "no</") || !strings.Contains(body, "(access_denied)") {
		t.Fatalf("denied consent: %d %s", status, body)
	}
	as.Deny("", "")
	if out := s.failCLI(t, "read", "connect/connections/flow-gh/carol"); !strings.Contains(out, "No value found") {
		t.Fatalf("denied consent stored a connection: %s", out)
	}

	// Deleting revokes at the provider.
	rt := data(t, s, "connect/connections/flow-gh/acme/raw")["refresh_token"].(string)
	s.mustCLI(t, "delete", "connect/connections/flow-gh/acme")
	if as.RefreshTokenValid(rt) || !strings.Contains(strings.Join(as.Revoked(), " "), rt) {
		t.Fatal("delete did not revoke the refresh token")
	}
}

func getPage(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("content type %q", ct)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTemplatedProviderThroughVault(t *testing.T) {
	s := vaultFor(t)
	as := flowServer(t, s, "http://127.0.0.1/")
	base := as.URL + "/t/${connectionConfig.subdomain}"
	s.mustCLI(t, "write", "connect/providers/e2e-tenant", "auth_mode=OAUTH2",
		"auth_url="+base+"/authorize", "token_url="+base+"/token", "tokens_expire=true")
	if out := s.mustCLI(t, "list", "connect/providers"); !strings.Contains(out, "e2e-tenant") || !strings.Contains(out, "zendesk") {
		t.Fatalf("provider list:\n%s", out)
	}
	s.mustCLI(t, "write", "connect/integrations/e2e-tenant", "provider=e2e-tenant", "client_id="+as.ClientID, "client_secret="+as.ClientSecret)

	out := s.failCLI(t, "write", "-force", "connect/connections/e2e-tenant/acme/authorize")
	if !strings.Contains(out, "connection_config.subdomain is required") {
		t.Fatalf("missing subdomain: %s", out)
	}
	out, err := s.cli([]byte(`{"connection_config": {"subdomain": "acme"}}`), "write", "-field=authorization_url", "connect/connections/e2e-tenant/acme/authorize", "-")
	if err != nil {
		t.Fatalf("authorize: %v %s", err, out)
	}
	if !strings.Contains(out, "/t/acme/authorize") {
		t.Fatalf("authorization_url = %s", out)
	}
	if _, status, body := browse(t, out); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, body)
	}
	if as.LastTenant() != "acme" {
		t.Fatalf("token exchange went to tenant %q", as.LastTenant())
	}
	if got := s.mustCLI(t, "read", "-field=subdomain", "connect/connections/e2e-tenant/acme/config"); got != "acme" {
		t.Fatalf("connection config subdomain = %q", got)
	}
	if !as.AccessTokenValid(s.mustCLI(t, "read", "-field=access_token", "connect/connections/e2e-tenant/acme")) {
		t.Fatal("templated provider's token not stored")
	}
}

func TestAppModeThroughVault(t *testing.T) {
	s := vaultFor(t)
	as := newAuthServer(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	as.SetApp("31337", &key.PublicKey)
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	notePEM(keyPEM)
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustCLI(t, "write", "connect/integrations/e2e-app", "provider=github-app", "app_id=31337",
		"private_key=@"+keyFile, "api_base_url="+as.URL)
	if strings.Contains(s.mustCLI(t, "read", "-format=json", "connect/integrations/e2e-app"), "PRIVATE KEY") {
		t.Fatal("integration read shows the private key")
	}
	out, err := s.cli([]byte(`{"installation_id": "555"}`), "write", "connect/connections/e2e-app/acme", "-")
	if err != nil {
		t.Fatalf("app connection: %v %s", err, out)
	}
	tok := s.mustCLI(t, "read", "-field=access_token", "connect/connections/e2e-app/acme")
	if !strings.HasPrefix(tok, "ghs_") || !as.AccessTokenValid(tok) || as.LastTenant() != "555" {
		t.Fatalf("installation token %q for installation %q", tok, as.LastTenant())
	}
	forced := jsonOut(t, s, "write", "-f", "connect/connections/e2e-app/acme/refresh")["data"].(map[string]any)["access_token"]
	if forced == tok || !as.AccessTokenValid(forced.(string)) {
		t.Fatal("forced refresh of an APP connection did not renew the token")
	}
}

// TestApplicationCompletionThroughVault: with oauth_completion
// "application" (the default), the real Vault's callback exchanges the code,
// stores nothing and answers 303 with a Location (the mount allows it) to
// the return_url with connect_completion; the application completes with
// the browser binding it gave authorize. Another binding spends the
// completion and revokes the tokens.
func TestApplicationCompletionThroughVault(t *testing.T) {
	s := vaultFor(t)
	var arrived []url.Values
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived = append(arrived, r.URL.Query())
		io.WriteString(w, "app got it")
	}))
	t.Cleanup(app.Close)
	as := flowServer(t, s, app.URL+"/done")
	s.mustCLI(t, "write", "connect/config", "oauth_completion=application")
	// The Vault is shared: the other tests set what they need, or find the
	// callback storing as flowServer left it.
	t.Cleanup(func() { s.mustCLI(t, "write", "connect/config", "oauth_completion=callback") })
	s.mustCLI(t, "write", "connect/integrations/app-gh", "auth_mode=OAUTH2", "client_id="+as.ClientID,
		"client_secret="+as.ClientSecret, "auth_url="+as.AuthURL(), "token_url="+as.TokenURL(),
		"revocation_url="+as.RevocationURL())
	const binding = "e2e-app-session-hmac-000111"
	noteSecrets(binding)
	if out := s.failCLI(t, "write", "-force", "connect/connections/app-gh/acme/authorize"); !strings.Contains(out, "return_url is required") {
		t.Fatalf("authorize without return_url: %s", out)
	}

	start := func(id string) string {
		authURL := s.mustCLI(t, "write", "-field=authorization_url", "connect/connections/app-gh/"+id+"/authorize",
			"return_url="+app.URL+"/done", "browser_binding="+binding)
		// The provider's redirect to the callback, then the callback's
		// answer, seen as they are.
		resp, _ := pageDo(t, mustRequest(t, http.MethodGet, authURL))
		resp, body := pageDo(t, mustRequest(t, http.MethodGet, resp.Header.Get("Location")))
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Host != strings.TrimPrefix(app.URL, "http://") {
			t.Fatalf("callback: %d Location %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		if out := s.failCLI(t, "read", "connect/connections/app-gh/"+id); !strings.Contains(out, "No value found") {
			t.Fatalf("the callback stored the connection: %s", out)
		}
		return loc.Query().Get("connect_completion")
	}

	completion := start("acme")
	out := s.mustCLI(t, "write", "-field=access_token", "connect/connections/app-gh/acme/complete", "completion="+completion, "browser_binding="+binding)
	if !as.AccessTokenValid(out) {
		t.Fatalf("completed token %q", out)
	}
	if out := s.failCLI(t, "write", "connect/connections/app-gh/acme/complete", "completion="+completion, "browser_binding="+binding); !strings.Contains(out, "Code: 400") {
		t.Fatalf("second completion: %s", out)
	}

	completion = start("bob")
	if out := s.failCLI(t, "write", "connect/connections/app-gh/bob/complete", "completion="+completion, "browser_binding="+binding+"-other"); !strings.Contains(out, "Code: 403") {
		t.Fatalf("another binding: %s", out)
	}
	if len(as.Revoked()) != 2 {
		t.Fatalf("the refused completion's tokens were not revoked: %v", as.Revoked())
	}
	if out := s.failCLI(t, "write", "connect/connections/app-gh/bob/complete", "completion="+completion, "browser_binding="+binding); !strings.Contains(out, "Code: 400") {
		t.Fatalf("a spent completion: %s", out)
	}
	// Followed like a browser, the 303 leads to the application.
	authURL := s.mustCLI(t, "write", "-field=authorization_url", "connect/connections/app-gh/carol/authorize",
		"return_url="+app.URL+"/done", "browser_binding="+binding)
	final, status, _ := browse(t, authURL)
	if status != http.StatusOK || final.Host != strings.TrimPrefix(app.URL, "http://") || arrived[len(arrived)-1].Get("connect_completion") == "" {
		t.Fatalf("browser ended at %d %s", status, final)
	}
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
