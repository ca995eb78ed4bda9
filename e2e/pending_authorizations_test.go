// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestPendingAuthorizationCapThroughVault: beyond config's
// max_pending_authorizations for one integration, Vault answers authorize
// with HTTP 429 and a message naming the setting; re-authorizing a
// connection that has one pending still works.
func TestPendingAuthorizationCapThroughVault(t *testing.T) {
	s := vaultFor(t)
	as := flowServer(t, s, "https://app.example.test/done")
	s.mustCLI(t, "write", "connect/config", "max_pending_authorizations=2")
	t.Cleanup(func() { s.mustCLI(t, "write", "connect/config", "max_pending_authorizations=10000") })
	s.mustCLI(t, "write", "connect/integrations/capped", "auth_mode=OAUTH2", "client_id="+as.ClientID,
		"client_secret="+as.ClientSecret, "auth_url="+as.AuthURL(), "token_url="+as.TokenURL())
	t.Cleanup(func() { s.mustCLI(t, "delete", "connect/integrations/capped") })

	for _, id := range []string{"a", "b"} {
		s.mustCLI(t, "write", "-force", "connect/connections/capped/"+id+"/authorize")
	}
	status, body := s.raw(t, http.MethodPost, "connect/connections/capped/c/authorize", []byte(`{}`), "application/json")
	if status != http.StatusTooManyRequests || !strings.Contains(body, "max_pending_authorizations") {
		t.Fatalf("authorize beyond the cap: %d %s", status, body)
	}
	s.mustCLI(t, "write", "-force", "connect/connections/capped/a/authorize")
}
