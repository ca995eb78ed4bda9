// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

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
