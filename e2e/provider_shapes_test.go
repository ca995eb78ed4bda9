// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"net/http"
	"testing"
)

// TestProviderShapesThroughVault: a provider that restates
// response_type=code, sends a registered name as redirect_uri (eBay's
// RuName) and fills its audience token parameter from each connection's
// config, written and authorized through a real Vault; the provider sees
// each as it documents.
func TestProviderShapesThroughVault(t *testing.T) {
	s := vaultFor(t)
	as := newAuthServer(t)
	const ruName = "Acme_Corp-AcmeApp-PRD-e2e"
	as.RegisterRedirectName(ruName, callbackURL(s))
	s.mustCLI(t, "write", "connect/config", "redirect_url="+callbackURL(s), "oauth_completion=callback")
	provider := `{"auth_mode": "OAUTH2", "auth_url": "` + as.AuthURL() + `", "token_url": "` + as.TokenURL() + `",
		"auth_params": {"response_type": "code"}, "token_params": {"audience": "${connectionConfig.audience}"},
		"connection_config_schema": {"audience": {"type": "string", "pattern": "https://\\S+"}},
		"redirect_uri_value": "` + ruName + `", "tokens_expire": true}`
	if out, err := s.cli([]byte(provider), "write", "connect/providers/e2e-shapes", "-"); err != nil {
		t.Fatalf("provider write: %v %s", err, out)
	}
	s.mustCLI(t, "write", "connect/integrations/e2e-shapes", "provider=e2e-shapes", "client_id="+as.ClientID, "client_secret="+as.ClientSecret)

	out, err := s.cli([]byte(`{"connection_config": {"audience": "https://api.acme.test/"}}`), "write", "-field=authorization_url", "connect/connections/e2e-shapes/acme/authorize", "-")
	if err != nil {
		t.Fatalf("authorize: %v %s", err, out)
	}
	if final, status, body := browse(t, out); status != http.StatusOK || final.Path != "/v1/connect/oauth/callback" {
		t.Fatalf("callback: %d %s %s", status, final, body)
	}
	if q := as.LastAuthorize(); len(q["response_type"]) != 1 || q.Get("redirect_uri") != ruName {
		t.Fatalf("authorization request: %v", q)
	}
	if f := as.LastForm(); f.Get("grant_type") != "authorization_code" || f.Get("redirect_uri") != ruName || f.Get("audience") != "https://api.acme.test/" {
		t.Fatalf("code exchange: %v", f)
	}
	s.mustCLI(t, "write", "-force", "connect/connections/e2e-shapes/acme/refresh")
	if f := as.LastForm(); f.Get("grant_type") != "refresh_token" || f.Get("audience") != "https://api.acme.test/" {
		t.Fatalf("refresh: %v", f)
	}
	if !as.AccessTokenValid(s.mustCLI(t, "read", "-field=access_token", "connect/connections/e2e-shapes/acme")) {
		t.Fatal("the connection's token was not issued by the server")
	}
}
