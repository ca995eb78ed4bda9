// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

func TestTokenParamsAreSentWithEveryGrant(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"token_params": "audience=https://api.example"})
	e.mustDo(logical.UpdateOperation, "integrations/machine", map[string]any{"token_params": map[string]any{"resource": "urn:x", "grant_type": "must-not-win"}})

	importExpiring(e, srv, "c1", time.Minute)
	e.mustDo(logical.ReadOperation, "connections/github/c1", nil)
	if got := srv.LastForm().Get("audience"); got != "https://api.example" {
		t.Fatalf("refresh request audience = %q", got)
	}
	e.mustDo(logical.CreateOperation, "connections/machine/m1", nil)
	form := srv.LastForm()
	if form.Get("resource") != "urn:x" || form.Get("grant_type") != "client_credentials" {
		t.Fatalf("client-credentials form = %v", form)
	}
}

func TestAuthStyles(t *testing.T) {
	for _, tc := range []struct {
		integration, server string
		ok                  bool
	}{
		{"header", "header", true},
		{"params", "params", true},
		{"auto", "params", true}, // x/oauth2 tries the header, then the form
		{"header", "params", false},
	} {
		t.Run(tc.integration+"-"+tc.server, func(t *testing.T) {
			e, srv := oauthEnv(t)
			srv.RequireAuthStyle(tc.server)
			e.mustDo(logical.UpdateOperation, "integrations/machine", map[string]any{"auth_style": tc.integration})
			resp, status := e.do(logical.CreateOperation, "connections/machine/m1", nil)
			if tc.ok != (status == http.StatusOK) {
				t.Fatalf("status %d: %s", status, errorText(resp))
			}
			if !tc.ok && !strings.Contains(errorText(resp), "invalid_client") {
				t.Fatalf("error = %q", errorText(resp))
			}
			if tc.ok && srv.LastAuthStyle() != tc.server {
				t.Fatalf("last request used %s", srv.LastAuthStyle())
			}
		})
	}
}

func TestFormEncodedTokenResponse(t *testing.T) {
	e, srv := oauthEnv(t)
	srv.SetFormEncoding(true)
	srv.SetExtraFields(map[string]any{"instance_url": "https://acme.my.example"})
	importExpiring(e, srv, "c1", time.Minute)
	raw := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)
	if !srv.AccessTokenValid(raw["access_token"].(string)) {
		t.Fatal("form-encoded response not understood")
	}
	if got := raw["raw_token_response"].(map[string]any)["instance_url"]; got != "https://acme.my.example" {
		t.Fatalf("raw_token_response instance_url = %v", got)
	}
}

func TestTokenWithoutExpiry(t *testing.T) {
	e, srv := oauthEnv(t)
	srv.SetExpiresIn(0)
	data := e.mustDo(logical.CreateOperation, "connections/machine/m1", nil)
	if data["expires_at"] != "" {
		t.Fatalf("expires_at = %v for a token without expires_in", data["expires_at"])
	}
	e.mustDo(logical.ReadOperation, "connections/machine/m1", nil)
	if srv.Requests() != 1 {
		t.Fatalf("a token without expiry was refreshed: %d requests", srv.Requests())
	}
}

// TestProviderRedirectIsRefused: a 307 from the token endpoint would
// re-post the refresh token and client secret to its Location.
func TestProviderRedirectIsRefused(t *testing.T) {
	e, srv := oauthEnv(t)
	var stolen atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		w.Write([]byte(`{"access_token":"x"}`))
	}))
	defer target.Close()
	_, refresh := importExpiring(e, srv, "c1", -time.Minute)
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/token", http.StatusTemporaryRedirect)
	})
	msg := e.mustFail(logical.ReadOperation, "connections/github/c1", nil, http.StatusFailedDependency)
	if !strings.Contains(msg, "HTTP 307") || stolen.Load() != 0 {
		t.Fatalf("error %q, requests to the redirect target %d", msg, stolen.Load())
	}
	stored, _ := getConnection(t.Context(), e.storage, "github", "c1")
	if stored.Credentials.RefreshToken != refresh {
		t.Fatal("the old refresh token was not kept")
	}
}

// TestNonPositiveLifetimeIsAMinute: a provider answering expires_in <= 0
// would make every read refresh.
func TestNonPositiveLifetimeIsAMinute(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"refresh_margin": "0s"})
	importExpiring(e, srv, "c1", -time.Minute)
	srv.SetExpiresIn(-30)
	for range 5 {
		e.mustDo(logical.ReadOperation, "connections/github/c1", nil)
	}
	if srv.Requests() != 1 {
		t.Fatalf("%d token requests for 5 reads", srv.Requests())
	}
	if n := strings.Count(e.logs.String(), "expires in under a minute"); n != 1 {
		t.Fatalf("logged %d times", n)
	}
}

// TestRefreshErrorHoldsNoEchoedSecret: a provider that echoes the refresh
// token and client secret in error_description; neither is stored, shown
// or logged, and the stored error is capped.
func TestRefreshErrorHoldsNoEchoedSecret(t *testing.T) {
	e, srv := oauthEnv(t)
	_, refresh := importExpiring(e, srv, "c1", time.Minute)
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_request","error_description":"refresh_token %s client %s %s"}`,
			r.PostForm.Get("refresh_token"), srv.ClientSecret, strings.Repeat("long ", 200))
	})
	data := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)
	stored, _ := getConnection(t.Context(), e.storage, "github", "c1")
	for _, s := range []string{stored.LastRefreshError, fmt.Sprint(data), e.logs.String()} {
		if strings.Contains(s, refresh) || strings.Contains(s, srv.ClientSecret) {
			t.Fatal("an echoed secret was stored, returned or logged")
		}
	}
	if !strings.Contains(stored.LastRefreshError, "invalid_request") || len([]rune(stored.LastRefreshError)) > maxRefreshErrorLen+1 {
		t.Fatalf("last_refresh_error = %q", stored.LastRefreshError)
	}
}

// TestClientCredentialsConfigChangeReissuesToken: a config change that
// moves an OAUTH2_CC connection's token endpoint (here, another tenant)
// discards the old token and gets one from the new endpoint in the same
// request, on every path that writes config; if the new endpoint refuses,
// the write fails and the connection keeps its config and token.
func TestClientCredentialsConfigChangeReissuesToken(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/tenantcc", map[string]any{
		"auth_mode": "OAUTH2_CC", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"token_url": srv.URL + "/t/${connectionConfig.tenant}/token",
	})
	tok := e.mustDo(logical.CreateOperation, "connections/tenantcc/m1", map[string]any{"connection_config": map[string]any{"tenant": "acme"}})["access_token"]
	if srv.LastTenant() != "acme" {
		t.Fatalf("first token from tenant %q", srv.LastTenant())
	}
	for _, w := range []struct {
		name, tenant string
		op           logical.Operation
		path         string
		body         map[string]any
	}{
		{"connection update", "globex", logical.UpdateOperation, "connections/tenantcc/m1", map[string]any{"connection_config": map[string]any{"tenant": "globex"}}},
		{"config write", "initech", logical.UpdateOperation, "connections/tenantcc/m1/config", map[string]any{"tenant": "initech"}},
		{"config patch", "umbrella", logical.PatchOperation, "connections/tenantcc/m1/config", map[string]any{"tenant": "umbrella"}},
		{"import", "hooli", logical.UpdateOperation, "import/tenantcc", map[string]any{"connections": []any{
			map[string]any{"connection_id": "m1", "connection_config": map[string]any{"tenant": "hooli"}}}, "overwrite": true}},
	} {
		e.mustDo(w.op, w.path, w.body)
		if srv.LastTenant() != w.tenant {
			t.Fatalf("%s: the new token was asked of tenant %q", w.name, srv.LastTenant())
		}
		read := e.mustDo(logical.ReadOperation, "connections/tenantcc/m1", nil)
		if read["access_token"] == tok || !srv.AccessTokenValid(read["access_token"].(string)) {
			t.Fatalf("%s: the connection still serves the old tenant's token", w.name)
		}
		tok = read["access_token"]
	}

	// The new tenant's endpoint refuses: nothing changes.
	before := e.snapshot()
	srv.Fail("invalid_client", http.StatusUnauthorized)
	msg := e.mustFail(logical.UpdateOperation, "connections/tenantcc/m1/config", map[string]any{"tenant": "soylent"}, http.StatusFailedDependency)
	if !strings.Contains(msg, "invalid_client") || strings.Contains(msg, srv.ClientSecret) {
		t.Fatalf("error = %q", msg)
	}
	e.assertUnchanged(before)
	read := e.mustDo(logical.ReadOperation, "connections/tenantcc/m1", nil)
	if read["access_token"] != tok || read["connection_config"].(map[string]any)["tenant"] != "hooli" {
		t.Fatalf("after a refused move: config %v, token kept %v", read["connection_config"], read["access_token"] == tok)
	}

	// A config change that leaves the token endpoint alone keeps the token
	// and asks the provider nothing.
	srv.Fail("", 0)
	requests := srv.Requests()
	e.mustDo(logical.PatchOperation, "connections/tenantcc/m1/config", map[string]any{"region": "eu"})
	if read := e.mustDo(logical.ReadOperation, "connections/tenantcc/m1", nil); read["access_token"] != tok || srv.Requests() != requests {
		t.Fatal("a config change that keeps the token endpoint replaced the token")
	}
}

// TestRefreshErrorHoldsNoPartOfASecretAtTheCut: a provider that echoes the
// refresh token where the provider client cuts its error description (300
// characters): last_refresh_error, which a customer policy may read, the
// read's answer and the log hold no part of it.
func TestRefreshErrorHoldsNoPartOfASecretAtTheCut(t *testing.T) {
	e, srv := oauthEnv(t)
	refresh := "rt-" + strings.Repeat("Zq7Xw", 8)
	e.mustDo(logical.CreateOperation, "connections/github/c1", map[string]any{
		"access_token": "at-c1", "refresh_token": refresh, "expires_at": time.Now().Add(time.Minute).UTC().Format(time.RFC3339),
	})
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		desc := strings.Repeat(".", 300-12) + r.PostForm.Get("refresh_token")
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": desc})
	})
	data := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)
	shown, _ := data["last_refresh_error"].(string)
	if !strings.Contains(shown, "invalid_request") {
		t.Fatalf("last_refresh_error = %q", shown)
	}
	stored, _ := getConnection(t.Context(), e.storage, "github", "c1")
	for _, s := range []string{shown, stored.LastRefreshError, fmt.Sprint(data), e.logs.String()} {
		if strings.Contains(s, refresh[:8]) {
			t.Fatalf("part of the refresh token is in %q", s)
		}
	}
}

// countingClient is a provider client that answers every grant with a
// token of its own, without a request, and counts the calls by grant.
type countingClient struct {
	mu    sync.Mutex
	calls map[string]int
}

func (f *countingClient) issue(grant string) (*provider.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[grant]++
	tok := fmt.Sprintf("fake-%s-%d", grant, f.calls[grant])
	return &provider.Token{
		Token: &oauth2.Token{AccessToken: tok, RefreshToken: "refresh-" + tok, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)},
		Raw:   map[string]any{"access_token": tok, "refresh_token": "refresh-" + tok, "token_type": "Bearer"},
	}, nil
}

func (f *countingClient) count(grant string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[grant]
}

func (f *countingClient) ClientCredentials(context.Context, provider.OAuthApp, provider.Endpoints, []string) (*provider.Token, error) {
	return f.issue("client_credentials")
}

func (f *countingClient) Refresh(context.Context, provider.OAuthApp, provider.Endpoints, string) (*provider.Token, error) {
	return f.issue("refresh_token")
}

func (f *countingClient) InstallationToken(context.Context, provider.App, provider.Endpoints, string) (*provider.Token, error) {
	return f.issue("installation")
}

func (f *countingClient) ExchangeCode(context.Context, provider.OAuthApp, provider.Endpoints, string, string, string) (*provider.Token, error) {
	return f.issue("authorization_code")
}

func (f *countingClient) Revoke(context.Context, provider.OAuthApp, provider.Endpoints, string, string) error {
	_, err := f.issue("revoke")
	return err
}

// The issuer is the one owner of token issuing: with its provider client
// replaced, the first token of a new connection, a renewal (forced and on
// read), the callback's code exchange and the revocation at a deletion all
// reach the fake, and not one request reaches the real provider.
func TestEveryTokenRequestGoesThroughTheIssuer(t *testing.T) {
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": srv.RevocationURL()})
	fake := &countingClient{}
	e.b.issuer.client = fake
	before := srv.Requests()

	// The first token of a connection the engine obtains tokens for.
	if got := e.mustDo(logical.CreateOperation, "connections/machine/m1", nil)["access_token"]; got != "fake-client_credentials-1" {
		t.Fatalf("created connection holds %v, not the issuer's token", got)
	}
	// A forced renewal, and one on a read that finds the token due.
	importExpiring(e, srv, "c1", time.Minute)
	if got := e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)["access_token"]; got != "fake-refresh_token-1" {
		t.Fatalf("forced refresh returned %v", got)
	}
	importExpiring(e, srv, "c2", time.Minute)
	if got := e.mustDo(logical.ReadOperation, "connections/github/c2", nil)["access_token"]; got != "fake-refresh_token-2" {
		t.Fatalf("read refresh returned %v", got)
	}
	// The callback's code exchange.
	q := consent(t, e, "connections/github/acme/authorize", nil)
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	if got := e.mustDo(logical.ReadOperation, "connections/github/acme", nil)["access_token"]; got != "fake-authorization_code-1" {
		t.Fatalf("authorized connection holds %v", got)
	}
	// The revocation at a deletion: refresh token, then access token.
	e.mustDo(logical.DeleteOperation, "connections/github/acme", nil)

	want := map[string]int{"client_credentials": 1, "refresh_token": 2, "authorization_code": 1, "revoke": 2}
	for grant, n := range want {
		if got := fake.count(grant); got != n {
			t.Errorf("%s: %d calls through the issuer, want %d", grant, got, n)
		}
	}
	if n := srv.Requests() - before; n != 0 {
		t.Errorf("%d token requests reached the provider without the issuer's client", n)
	}
	if revoked := srv.Revoked(); len(revoked) != 0 {
		t.Errorf("the provider saw revocations %v without the issuer's client", revoked)
	}
}
