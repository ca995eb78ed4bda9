// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// oauthEnv is a backend with an OAUTH2 integration "github" and an
// OAUTH2_CC integration "machine" whose token endpoint is a real loopback
// authorization server.
func oauthEnv(t *testing.T) (*testEnv, *oauthtest.Server) {
	t.Helper()
	return oauthEnvOn(t, &logical.InmemStorage{})
}

// oauthEnvOn is oauthEnv on the given storage.
func oauthEnvOn(t *testing.T, s logical.Storage) (*testEnv, *oauthtest.Server) {
	t.Helper()
	srv := oauthtest.New()
	t.Cleanup(srv.Close)
	e := newTestEnvOn(t, s)
	body := oauthIntegration(srv.TokenURL())
	body["client_id"], body["client_secret"] = srv.ClientID, srv.ClientSecret
	e.mustDo(logical.CreateOperation, "integrations/github", body)
	e.mustDo(logical.CreateOperation, "integrations/machine", map[string]any{
		"auth_mode": "OAUTH2_CC", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"token_url": srv.TokenURL(), "scopes": "read,write",
	})
	return e, srv
}

// importExpiring imports a token expiring in `in` with a refresh token the
// server will accept.
func importExpiring(e *testEnv, srv *oauthtest.Server, id string, in time.Duration) (string, string) {
	access, refresh := "imported-at-"+id, srv.IssueRefreshToken()
	e.mustDo(logical.CreateOperation, "connections/github/"+id, map[string]any{
		"access_token": access, "refresh_token": refresh, "expires_at": time.Now().Add(in).UTC().Format(time.RFC3339),
	})
	return access, refresh
}

func TestReadRefreshesTokenWithinMargin(t *testing.T) {
	e, srv := oauthEnv(t)
	oldAccess, oldRefresh := importExpiring(e, srv, "c1", 5*time.Minute) // inside the 15m margin

	data := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)
	newAccess := data["access_token"].(string)
	if newAccess == oldAccess || !srv.AccessTokenValid(newAccess) {
		t.Fatalf("read returned %q, not a fresh token from the server", newAccess)
	}
	exp, err := time.Parse(time.RFC3339, data["expires_at"].(string))
	if err != nil || time.Until(exp) < 50*time.Minute {
		t.Fatalf("expires_at = %v (%v), want about an hour ahead", data["expires_at"], err)
	}
	if srv.LastForm().Get("grant_type") != "refresh_token" || srv.LastForm().Get("refresh_token") != oldRefresh {
		t.Fatalf("token request form = %v", srv.LastForm())
	}
	// The server rotated the refresh token: the new one is stored.
	raw := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)
	newRefresh := raw["refresh_token"].(string)
	if newRefresh == oldRefresh || !srv.RefreshTokenValid(newRefresh) || srv.RefreshTokenValid(oldRefresh) {
		t.Fatal("rotated refresh token not stored")
	}
	if rawResp := raw["raw_token_response"].(map[string]any); rawResp["access_token"] != newAccess || rawResp["token_type"] != "Bearer" {
		t.Fatalf("raw_token_response = %v", rawResp)
	}
	if srv.Requests() != 1 {
		t.Fatalf("token requests = %d, want 1", srv.Requests())
	}
	e.assertNoSecretLogged(oldRefresh, newRefresh, newAccess, srv.ClientSecret)
}

func TestReadLeavesFreshTokenAlone(t *testing.T) {
	e, srv := oauthEnv(t)
	access, _ := importExpiring(e, srv, "c1", 2*time.Hour)
	if got := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)["access_token"]; got != access {
		t.Fatalf("access_token = %v", got)
	}
	// A larger margin makes the same token due.
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"refresh_margin": "3h"})
	if got := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)["access_token"]; got == access {
		t.Fatal("token within the new margin was not refreshed")
	}
	if srv.Requests() != 1 {
		t.Fatalf("token requests = %d, want 1", srv.Requests())
	}
}

func TestRefreshWithoutNewRefreshTokenKeepsOld(t *testing.T) {
	e, srv := oauthEnv(t)
	srv.SetRotate(false, true)
	_, oldRefresh := importExpiring(e, srv, "c1", time.Minute)
	e.mustDo(logical.ReadOperation, "connections/github/c1", nil)
	raw := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)
	if raw["refresh_token"] != oldRefresh {
		t.Fatal("refresh token lost when the response had none")
	}
	if _, ok := raw["raw_token_response"].(map[string]any)["refresh_token"]; ok {
		t.Fatal("raw response should be the provider's, which had no refresh token")
	}
}

func TestConcurrentReadsSpendOneRefresh(t *testing.T) {
	e, srv := oauthEnv(t)
	srv.SetDelay(100 * time.Millisecond)
	importExpiring(e, srv, "c1", time.Minute)

	const readers = 40
	var wg sync.WaitGroup
	tokens := make([]string, readers)
	errs := make([]string, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, status := e.do(logical.ReadOperation, "connections/github/c1", nil)
			if status != http.StatusOK {
				errs[i] = fmt.Sprintf("status %d: %s", status, errorText(resp))
				return
			}
			tokens[i] = resp.Data["access_token"].(string)
		}(i)
	}
	wg.Wait()
	for i := range tokens {
		if errs[i] != "" {
			t.Fatalf("reader %d: %s", i, errs[i])
		}
		if tokens[i] != tokens[0] || !srv.AccessTokenValid(tokens[i]) {
			t.Fatalf("reader %d got %q, reader 0 got %q", i, tokens[i], tokens[0])
		}
	}
	if srv.Requests() != 1 {
		t.Fatalf("token requests = %d, want exactly 1", srv.Requests())
	}
}

func TestRefreshFailureWhileTokenValidWarns(t *testing.T) {
	e, srv := oauthEnv(t)
	access, refresh := importExpiring(e, srv, "c1", 5*time.Minute)
	// With auth_style auto, x/oauth2 retries a failed request with the
	// other style; fix the style so one refresh is one request.
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"auth_style": "header"})
	srv.Fail("temporarily_unavailable", http.StatusServiceUnavailable)

	resp, status := e.do(logical.ReadOperation, "connections/github/c1", nil)
	if status != http.StatusOK || resp.Data["access_token"] != access {
		t.Fatalf("status %d, data %v", status, resp.Data)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "temporarily_unavailable") {
		t.Fatalf("warnings = %v", resp.Warnings)
	}
	// The credentials are kept; the failure is recorded, with a retry
	// after the first backoff step, and reads until then do not retry.
	raw := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)
	if raw["access_token"] != access || raw["refresh_token"] != refresh {
		t.Fatal("a failed refresh changed the credentials")
	}
	if raw["refresh_status"] != "failing" || raw["refresh_failures"] != 1 || !strings.Contains(raw["last_refresh_error"].(string), "temporarily_unavailable") {
		t.Fatalf("refresh state = %v %v %v", raw["refresh_status"], raw["refresh_failures"], raw["last_refresh_error"])
	}
	next, _ := time.Parse(time.RFC3339, raw["next_refresh_at"].(string))
	if d := time.Until(next); d < 20*time.Second || d > 31*time.Second {
		t.Fatalf("next_refresh_at in %v, want the 30s backoff", d)
	}
	if srv.Requests() != 1 {
		t.Fatalf("token requests = %d, want 1 (reads within the backoff do not retry)", srv.Requests())
	}
	e.assertNoSecretLogged(access, refresh)
}

func TestRefreshFailureOfExpiredTokenIs424(t *testing.T) {
	e, srv := oauthEnv(t)
	access, refresh := importExpiring(e, srv, "c1", -time.Minute)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"auth_style": "header"})
	srv.Fail("invalid_grant", http.StatusBadRequest)

	msg := e.mustFail(logical.ReadOperation, "connections/github/c1", nil, http.StatusFailedDependency)
	if !strings.Contains(msg, "invalid_grant") || !strings.Contains(msg, "HTTP 400") {
		t.Fatalf("error %q lacks the provider's reason", msg)
	}
	for _, secret := range []string{access, refresh, srv.ClientSecret} {
		if strings.Contains(msg, secret) {
			t.Fatalf("error contains a secret: %q", msg)
		}
	}
	// invalid_grant: only the customer can fix it. Reads do not retry;
	// a forced refresh does, and fails the same way.
	stored, _ := getConnection(t.Context(), e.storage, "github", "c1")
	if stored.RefreshStatus != refreshReauth || stored.Credentials.RefreshToken != refresh || !stored.NextRefreshAt.IsZero() {
		t.Fatalf("after invalid_grant: %+v", stored)
	}
	e.mustFail(logical.ReadOperation, "connections/github/c1", nil, http.StatusFailedDependency)
	if srv.Requests() != 1 {
		t.Fatalf("token requests = %d, want 1", srv.Requests())
	}
	e.mustFail(logical.UpdateOperation, "connections/github/c1/refresh", nil, http.StatusFailedDependency)
	if srv.Requests() != 2 {
		t.Fatalf("token requests = %d, want 2 after a forced refresh", srv.Requests())
	}
	e.assertNoSecretLogged(access, refresh, srv.ClientSecret)
}

func TestExpiredTokenWithoutRefreshToken(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.CreateOperation, "connections/github/c1", map[string]any{"access_token": "a", "expires_in": 1})
	time.Sleep(1100 * time.Millisecond)
	msg := e.mustFail(logical.ReadOperation, "connections/github/c1", nil, http.StatusFailedDependency)
	if !strings.Contains(msg, "no refresh token") {
		t.Fatalf("error = %q", msg)
	}
	e.mustFail(logical.UpdateOperation, "connections/github/c1/refresh", nil, http.StatusBadRequest)
	if srv.Requests() != 0 {
		t.Fatalf("token requests = %d, want 0", srv.Requests())
	}
}

func TestClientCredentialsConnection(t *testing.T) {
	e, srv := oauthEnv(t)
	data := e.mustDo(logical.CreateOperation, "connections/machine/tenant-1", map[string]any{"metadata": map[string]any{"tier": "gold"}})
	access := data["access_token"].(string)
	if !srv.AccessTokenValid(access) {
		t.Fatalf("create returned %q, not a server-issued token", access)
	}
	form := srv.LastForm()
	if form.Get("grant_type") != "client_credentials" || form.Get("scope") != "read write" {
		t.Fatalf("token request form = %v", form)
	}
	if got := e.mustDo(logical.ReadOperation, "connections/machine/tenant-1", nil)["access_token"]; got != access {
		t.Fatal("fresh client-credentials token was replaced on read")
	}
	// Once within the margin, a read gets a new one.
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"refresh_margin": "2h"})
	if got := e.mustDo(logical.ReadOperation, "connections/machine/tenant-1", nil)["access_token"]; got == access {
		t.Fatal("client-credentials token within the margin was not renewed")
	}
	if srv.Requests() != 2 {
		t.Fatalf("token requests = %d, want 2", srv.Requests())
	}
	e.mustFail(logical.UpdateOperation, "connections/machine/tenant-2", map[string]any{"access_token": "x"}, http.StatusBadRequest)
}

func TestClientCredentialsFailureStoresNothing(t *testing.T) {
	e, srv := oauthEnv(t)
	srv.Fail("invalid_scope", http.StatusBadRequest)
	before := e.snapshot()
	msg := e.mustFail(logical.CreateOperation, "connections/machine/tenant-1", nil, http.StatusFailedDependency)
	if !strings.Contains(msg, "invalid_scope") || strings.Contains(msg, srv.ClientSecret) {
		t.Fatalf("error = %q", msg)
	}
	e.assertUnchanged(before)
}

func TestProviderUnreachableIs424(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", -time.Minute)
	srv.Close()
	msg := e.mustFail(logical.ReadOperation, "connections/github/c1", nil, http.StatusFailedDependency)
	if !strings.Contains(msg, "could not be reached") {
		t.Fatalf("error = %q", msg)
	}
}

// TestRefreshUnderProviderFaults: for each way a provider fails a refresh,
// a read of a connection within its refresh margin returns the old token
// with a warning, the stored credentials are unchanged, the failure state
// is recorded with a clear message, and no goroutine is left behind.
func TestRefreshUnderProviderFaults(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("redirect followed") }))
	defer target.Close()
	cases := []struct {
		name       string
		handler    http.HandlerFunc
		delay      time.Duration
		refused    bool // the token URL is a closed port
		wantStatus refreshStatus
		wantError  string
		retryAfter time.Duration // expected next attempt, when the provider says
	}{
		{"http 500", oauthtest.Answer(500, `{"error":"server_error"}`), 0, false, refreshFailing, "HTTP 500", 0},
		{"503 retry-after", oauthtest.Answer(503, `{"error":"temporarily_unavailable"}`, "Retry-After", "600"), 0, false, refreshFailing, "HTTP 503", 600 * time.Second},
		{"timeout", oauthtest.Answer(200, `{"access_token":"late"}`), 2 * time.Second, false, refreshFailing, "could not be reached", 0},
		{"connection refused", nil, 0, true, refreshFailing, "could not be reached", 0},
		{"invalid_grant", oauthtest.Answer(400, `{"error":"invalid_grant"}`), 0, false, refreshReauth, "invalid_grant", 0},
		{"invalid_client", oauthtest.Answer(401, `{"error":"invalid_client"}`), 0, false, refreshFailing, "invalid_client", 0},
		{"temporarily_unavailable", oauthtest.Answer(400, `{"error":"temporarily_unavailable"}`), 0, false, refreshFailing, "temporarily_unavailable", 0},
		{"malformed json", oauthtest.Answer(200, `{"access_token":`), 0, false, refreshFailing, "could not be parsed", 0},
		{"no access_token", oauthtest.Answer(200, `{"token_type":"Bearer","refresh_token":"rt-new"}`), 0, false, refreshFailing, "no access_token", 0},
		{"expires_in a string", oauthtest.Answer(200, `{"access_token":"a","expires_in":"soon"}`), 0, false, refreshFailing, "could not be parsed", 0},
		{"50 MB body", oauthtest.HugeBody(50), 0, false, refreshFailing, "exceeds", 0},
		{"307 elsewhere", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
		}, 0, false, refreshFailing, "HTTP 307", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reliabilityCase(t, "refresh: provider "+tc.name, "old token served with a warning; stored credentials unchanged; refresh_status "+string(tc.wantStatus)+"; error says "+tc.wantError+"; no goroutine left")
			e, srv := oauthEnv(t)
			clock := func() time.Time { return time.Now() }
			client := provider.New(&http.Client{Timeout: 300 * time.Millisecond}, clock)
			e.b.issuer.client = client
			access, refresh := importExpiring(e, srv, "c1", 10*time.Minute) // within the margin, still valid
			if tc.refused {
				l, _ := net.Listen("tcp", "127.0.0.1:0")
				addr := l.Addr().String()
				l.Close()
				e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"token_url": "http://" + addr + "/token"})
			} else {
				srv.SetOverride(tc.handler)
				srv.SetDelay(tc.delay)
			}
			before := runtime.NumGoroutine()

			resp, status := e.do(logical.ReadOperation, "connections/github/c1", nil)
			if status != http.StatusOK || resp.Data["access_token"] != access || len(resp.Warnings) == 0 {
				t.Fatalf("read: %d %v %v", status, resp.Data["access_token"], resp.Warnings)
			}
			stored, _ := getConnection(t.Context(), e.storage, "github", "c1")
			if stored.Credentials.AccessToken != access || stored.Credentials.RefreshToken != refresh {
				t.Fatal("the stored credentials changed")
			}
			if stored.RefreshStatus != tc.wantStatus || !strings.Contains(stored.LastRefreshError, tc.wantError) {
				t.Fatalf("refresh state %s %q, want %s %q", stored.RefreshStatus, stored.LastRefreshError, tc.wantStatus, tc.wantError)
			}
			if tc.retryAfter > 0 {
				if d := time.Until(stored.NextRefreshAt); d < tc.retryAfter-10*time.Second || d > tc.retryAfter+10*time.Second {
					t.Fatalf("next attempt in %v, want the provider's Retry-After %v", d, tc.retryAfter)
				}
			}
			client.CloseIdleConnections()
			srv.CloseClientConnections()
			if n := oauthtest.SettledGoroutines(before); n > before {
				t.Fatalf("goroutines: %d before, %d after", before, n)
			}
		})
	}
}

// TestRotationThenFailureKeepsTheRotatedToken: a provider rotates the
// refresh token, then fails the next refresh; the stored refresh token is
// the rotated one, which the provider still accepts.
func TestRotationThenFailureKeepsTheRotatedToken(t *testing.T) {
	reliabilityCase(t, "provider rotates the refresh token, then fails the next refresh", "the rotated refresh token is stored and still accepted")
	e, srv := oauthEnv(t)
	_, first := importExpiring(e, srv, "c1", time.Minute)
	rotated := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)["refresh_token"].(string)
	if rotated == first || srv.RefreshTokenValid(first) {
		t.Fatal("no rotation")
	}
	srv.Fail("server_error", 500)
	e.mustFail(logical.UpdateOperation, "connections/github/c1/refresh", nil, http.StatusFailedDependency)
	stored, _ := getConnection(t.Context(), e.storage, "github", "c1")
	if stored.Credentials.RefreshToken != rotated || !srv.RefreshTokenValid(rotated) {
		t.Fatal("the rotated refresh token was not kept")
	}
}

// TestRefreshWithoutRefreshTokenInTheAnswer: the provider answers without a
// refresh token; the old one is kept and keeps working.
func TestRefreshWithoutRefreshTokenInTheAnswer(t *testing.T) {
	reliabilityCase(t, "refresh answer without a refresh token", "the old refresh token is kept and still works")
	e, srv := oauthEnv(t)
	_, refresh := importExpiring(e, srv, "c1", time.Minute)
	srv.SetRotate(false, true)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	stored, _ := getConnection(t.Context(), e.storage, "github", "c1")
	if stored.Credentials.RefreshToken != refresh || !srv.RefreshTokenValid(refresh) {
		t.Fatal("the refresh token was lost")
	}
}

// A forced refresh that fails answers 424 and nothing else: no warning
// that a token is returned (none is), and its error says the stored token
// is kept and until when it works, so the caller knows reads still get it.
func TestForcedRefreshFailureIs424WithoutAContradictingWarning(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 5*time.Minute)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"auth_style": "header"})
	srv.Fail("temporarily_unavailable", http.StatusServiceUnavailable)
	for range 2 { // the first failure, then one with the warning a read would carry
		resp, status := e.do(logical.UpdateOperation, "connections/github/c1/refresh", nil)
		if status != http.StatusFailedDependency || resp == nil {
			t.Fatalf("status %d", status)
		}
		if len(resp.Warnings) != 0 || len(resp.Data) != 1 {
			t.Fatalf("a 424 carries %v, data %v", resp.Warnings, resp.Data)
		}
		msg := errorText(resp)
		if strings.Contains(msg, "returning") || !strings.Contains(msg, "the stored token is kept; it works until") {
			t.Fatalf("error = %q", msg)
		}
	}
}
