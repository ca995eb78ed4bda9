// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

func testClient(timeout time.Duration) *Client {
	return New(&http.Client{Timeout: timeout}, time.Now)
}

func appOf(srv *oauthtest.Server) OAuthApp {
	return OAuthApp{ClientID: srv.ClientID, ClientSecret: srv.ClientSecret, AuthStyle: "header", Scopes: []string{"repo"}}
}

func endpointsOf(srv *oauthtest.Server) Endpoints {
	return resolved(Endpoints{Auth: srv.AuthURL(), Token: srv.TokenURL(), Revocation: srv.RevocationURL(), APIBase: srv.URL})
}

// resolved is templates without placeholders as ResolveEndpoints returns
// them, with their host policy: the only Endpoints the Client sends to.
func resolved(templates Endpoints) Endpoints {
	ep, err := ResolveEndpoints(templates, nil)
	if err != nil {
		panic(err)
	}
	return ep
}

func TestRefreshRotates(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	rt := srv.IssueRefreshToken()
	tok, err := testClient(time.Second).Refresh(context.Background(), appOf(srv), endpointsOf(srv), rt)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.AccessTokenValid(tok.AccessToken) || tok.RefreshToken == rt || !srv.RefreshTokenValid(tok.RefreshToken) {
		t.Fatalf("token %+v", tok.Token)
	}
	if srv.RefreshTokenValid(rt) {
		t.Fatal("the old refresh token is still valid")
	}
	if tok.Raw["access_token"] != tok.AccessToken {
		t.Fatalf("raw response %v", tok.Raw)
	}
	// The spent one is refused with invalid_grant.
	_, err = testClient(time.Second).Refresh(context.Background(), appOf(srv), endpointsOf(srv), rt)
	var pe *Error
	if !errors.As(err, &pe) || !pe.InvalidGrant() || pe.Status != http.StatusBadRequest {
		t.Fatalf("spent refresh token: %v", err)
	}
}

func TestClientCredentialsSendsTokenParams(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	app := appOf(srv)
	app.TokenParams = map[string]string{"audience": "urn:x", "grant_type": "must-not-win"}
	tok, err := testClient(time.Second).ClientCredentials(context.Background(), app, endpointsOf(srv), nil)
	if err != nil || !srv.AccessTokenValid(tok.AccessToken) {
		t.Fatalf("client credentials: %v", err)
	}
	form := srv.LastForm()
	if form.Get("audience") != "urn:x" || form.Get("grant_type") != "client_credentials" || form.Get("scope") != "repo" {
		t.Fatalf("form %v", form)
	}
}

func TestExchangeCodeWithPKCE(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	const redirect = "https://vault.example.test/v1/connect/oauth/callback"
	srv.RegisterRedirectURI(redirect)
	verifier := strings.Repeat("v", 43)
	authURL := AuthCodeURL(appOf(srv), endpointsOf(srv), redirect, "st", nil, verifier)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "st" {
		t.Fatalf("authorize answered %d %s", resp.StatusCode, loc)
	}
	if _, err := testClient(time.Second).ExchangeCode(context.Background(), appOf(srv), endpointsOf(srv), redirect, code, "wrong"+verifier[5:]); err == nil {
		t.Fatal("a wrong verifier was accepted")
	}
	// The code was spent by the failed attempt; a new consent is needed.
	resp, _ = noRedirect.Get(authURL)
	resp.Body.Close()
	loc, _ = url.Parse(resp.Header.Get("Location"))
	tok, err := testClient(time.Second).ExchangeCode(context.Background(), appOf(srv), endpointsOf(srv), redirect, loc.Query().Get("code"), verifier)
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	rt := srv.IssueRefreshToken()
	for _, style := range []string{"header", "params"} {
		app := appOf(srv)
		app.AuthStyle = style
		if err := testClient(time.Second).Revoke(context.Background(), app, endpointsOf(srv), rt, "refresh_token"); err != nil {
			t.Fatalf("%s: %v", style, err)
		}
	}
	if srv.RefreshTokenValid(rt) {
		t.Fatal("not revoked")
	}
	srv.FailRevocation(http.StatusServiceUnavailable)
	err := testClient(time.Second).Revoke(context.Background(), appOf(srv), endpointsOf(srv), "x-token", "access_token")
	var pe *Error
	if !errors.As(err, &pe) || pe.Status != http.StatusServiceUnavailable {
		t.Fatalf("failed revocation: %v", err)
	}
}

func TestInstallationToken(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	srv.SetApp("42", &key.PublicKey)
	c := testClient(time.Second)
	tok, err := c.InstallationToken(context.Background(), App{AppID: "42", PrivateKey: keyPEM}, endpointsOf(srv), "987")
	if err != nil || !srv.AccessTokenValid(tok.AccessToken) || srv.LastTenant() != "987" || tok.Expiry.IsZero() {
		t.Fatalf("installation token: %v (tenant %s)", err, srv.LastTenant())
	}
	var ce *ConfigError
	if _, err := c.InstallationToken(context.Background(), App{AppID: "42", PrivateKey: keyPEM}, endpointsOf(srv), "1/../2"); !errors.As(err, &ce) {
		t.Fatalf("a path in the installation id: %v", err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)}))
	var pe *Error
	if _, err := c.InstallationToken(context.Background(), App{AppID: "42", PrivateKey: otherPEM}, endpointsOf(srv), "987"); !errors.As(err, &pe) || pe.Status != http.StatusUnauthorized {
		t.Fatalf("unknown key: %v", err)
	}
}

// elsewhere is a server that must never be reached: it counts what it gets.
func elsewhere(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"access_token":"stolen","token_type":"Bearer"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv := oauthtest.New()
			defer srv.Close()
			target, hits := elsewhere(t)
			srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/steal", status)
			})
			c := testClient(time.Second)
			_, refreshErr := c.Refresh(context.Background(), appOf(srv), endpointsOf(srv), srv.IssueRefreshToken())
			_, ccErr := c.ClientCredentials(context.Background(), appOf(srv), endpointsOf(srv), nil)
			revokeErr := c.Revoke(context.Background(), appOf(srv), endpointsOf(srv), "tok", "access_token")
			for name, err := range map[string]error{"refresh": refreshErr, "client credentials": ccErr, "revoke": revokeErr} {
				var pe *Error
				if !errors.As(err, &pe) || pe.Status != status || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", status)) {
					t.Errorf("%s: %v", name, err)
				}
			}
			if hits.Load() != 0 {
				t.Fatalf("the redirect target got %d requests", hits.Load())
			}
		})
	}
}

func TestResponseBodiesAreBounded(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"a","pad":"`))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 50 << 4 { // 50 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		w.Write([]byte(`"}`))
	})
	_, err := testClient(5*time.Second).Refresh(context.Background(), appOf(srv), endpointsOf(srv), srv.IssueRefreshToken())
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("50 MiB body: %v", err)
	}
}

func TestTimeoutBoundsACall(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	srv.SetDelay(2 * time.Second)
	start := time.Now()
	_, err := testClient(200*time.Millisecond).Refresh(context.Background(), appOf(srv), endpointsOf(srv), srv.IssueRefreshToken())
	var pe *Error
	if !errors.As(err, &pe) || !pe.Unreachable() {
		t.Fatalf("timeout: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("the call took %v", time.Since(start))
	}
}

func TestErrorsCarryNoSecret(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	// A provider that echoes what it was sent in its error.
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_request","error_description":"bad: rt=%s code=%s verifier=%s secret=%s","refresh_token":"body-only"}`,
			r.PostForm.Get("refresh_token"), r.PostForm.Get("code"), r.PostForm.Get("code_verifier"), srv.ClientSecret)
	})
	c := testClient(time.Second)
	rt := srv.IssueRefreshToken()
	_, err1 := c.Refresh(context.Background(), appOf(srv), endpointsOf(srv), rt)
	_, err2 := c.ExchangeCode(context.Background(), appOf(srv), endpointsOf(srv), "https://r.test/cb", "the-code-123", "the-verifier-456")
	err3 := c.Revoke(context.Background(), appOf(srv), endpointsOf(srv), "revoked-token-789", "access_token")
	for _, err := range []error{err1, err2, err3} {
		msg := err.Error()
		for _, secret := range []string{rt, "the-code-123", "the-verifier-456", srv.ClientSecret, "body-only"} {
			if strings.Contains(msg, secret) {
				t.Fatalf("error %q holds a secret", msg)
			}
		}
		if !strings.Contains(msg, "invalid_request") {
			t.Fatalf("error %q lost the provider's code", msg)
		}
	}
}

func TestMalformedAnswers(t *testing.T) {
	for name, body := range map[string]string{
		"not json":            `{"access_token":`,
		"no access_token":     `{"token_type":"Bearer"}`,
		"expires_in a string": `{"access_token":"a","expires_in":"soon"}`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := oauthtest.New()
			defer srv.Close()
			srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(body))
			})
			_, err := testClient(time.Second).Refresh(context.Background(), appOf(srv), endpointsOf(srv), srv.IssueRefreshToken())
			var pe *Error
			if !errors.As(err, &pe) || pe.Unreachable() {
				t.Fatalf("%s: %v", name, err)
			}
		})
	}
}

func TestScopeSeparatorRefreshURLAndParams(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	app := appOf(srv)
	app.Scopes = []string{"a", "b"}
	app.ScopeSeparator = ","
	app.TokenParams = map[string]string{"audience": "x"}
	app.RefreshParams = map[string]string{"expires_in": "1800"}
	u, _ := url.Parse(AuthCodeURL(app, endpointsOf(srv), "https://r.test/cb", "st", nil, ""))
	if got := u.Query().Get("scope"); got != "a,b" {
		t.Fatalf("scope = %q", got)
	}
	ep := endpointsOf(srv)
	ep.Refresh = srv.URL + "/t/refresher/token"
	if _, err := testClient(time.Second).Refresh(context.Background(), app, ep, srv.IssueRefreshToken()); err != nil {
		t.Fatal(err)
	}
	if form := srv.LastForm(); srv.LastTenant() != "refresher" || form.Get("expires_in") != "1800" || form.Get("audience") != "x" {
		t.Fatalf("refresh went to %q with %v", srv.LastTenant(), form)
	}
	if _, err := testClient(time.Second).ClientCredentials(context.Background(), app, ep, nil); err != nil {
		t.Fatal(err)
	}
	if form := srv.LastForm(); form.Get("expires_in") != "" || form.Get("scope") != "a,b" {
		t.Fatalf("client credentials sent %v", form)
	}
}

func TestJSONTokenRequests(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	app := appOf(srv)
	app.AuthStyle = "params"
	app.JSONBody = true
	app.TokenParams = map[string]string{"audience": "x"}
	tok, err := testClient(time.Second).Refresh(context.Background(), app, endpointsOf(srv), srv.IssueRefreshToken())
	if err != nil || !srv.AccessTokenValid(tok.AccessToken) {
		t.Fatalf("JSON refresh: %v", err)
	}
	if ct := srv.LastContentType(); ct != "application/json" || srv.LastForm().Get("audience") != "x" || srv.LastForm().Get("grant_type") != "refresh_token" {
		t.Fatalf("request was %q with %v", ct, srv.LastForm())
	}
}
