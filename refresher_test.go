// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
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
