// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

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
