// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestDeleteRevokesTokens(t *testing.T) {
	for _, style := range []string{"header", "params"} {
		t.Run(style, func(t *testing.T) {
			e, srv := authEnv(t)
			srv.RequireAuthStyle(style)
			e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": srv.RevocationURL(), "auth_style": style})
			callback(e, consent(t, e, "connections/github/acme/authorize", nil))
			raw := e.mustDo(logical.ReadOperation, "connections/github/acme/raw", nil)

			resp, status := e.do(logical.DeleteOperation, "connections/github/acme", nil)
			if status >= 300 || (resp != nil && len(resp.Warnings) > 0) {
				t.Fatalf("delete: %d %v", status, resp)
			}
			revoked := strings.Join(srv.Revoked(), " ")
			if !strings.Contains(revoked, raw["refresh_token"].(string)) || !strings.Contains(revoked, raw["access_token"].(string)) {
				t.Fatalf("revoked %v, want both tokens", srv.Revoked())
			}
			if srv.RefreshTokenValid(raw["refresh_token"].(string)) {
				t.Fatal("refresh token still valid")
			}
			e.mustFail(logical.ReadOperation, "connections/github/acme", nil, http.StatusNotFound)
		})
	}
}

func TestDeleteWithoutRevocation(t *testing.T) {
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": srv.RevocationURL()})
	callback(e, consent(t, e, "connections/github/acme/authorize", nil))
	e.mustDo(logical.DeleteOperation, "connections/github/acme", map[string]any{"revoke": false})
	if len(srv.Revoked()) != 0 {
		t.Fatalf("revoke=false revoked %v", srv.Revoked())
	}
	// No revocation_url: nothing to revoke.
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": ""})
	callback(e, consent(t, e, "connections/github/acme/authorize", nil))
	e.mustDo(logical.DeleteOperation, "connections/github/acme", nil)
	if len(srv.Revoked()) != 0 {
		t.Fatalf("revoked without a revocation_url: %v", srv.Revoked())
	}
}

func TestRevocationFailureWarnsAndDeletes(t *testing.T) {
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": srv.RevocationURL()})
	callback(e, consent(t, e, "connections/github/acme/authorize", nil))
	raw := e.mustDo(logical.ReadOperation, "connections/github/acme/raw", nil)
	srv.FailRevocation(http.StatusServiceUnavailable)

	resp, status := e.do(logical.DeleteOperation, "connections/github/acme", nil)
	if status != http.StatusOK || len(resp.Warnings) != 2 || !strings.Contains(resp.Warnings[0], "HTTP 503") {
		t.Fatalf("delete: %d %v", status, resp)
	}
	for _, w := range resp.Warnings {
		if strings.Contains(w, raw["refresh_token"].(string)) || strings.Contains(w, raw["access_token"].(string)) {
			t.Fatalf("warning shows a token: %q", w)
		}
	}
	e.mustFail(logical.ReadOperation, "connections/github/acme", nil, http.StatusNotFound)
}
