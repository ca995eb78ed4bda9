// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// make dev's local OAuth provider as a person uses it: authorize, open the
// URL in a browser, click Allow on the provider's consent page, see Vault's
// "Connected" page; the connection then reads and refreshes. A denial
// stores nothing.
func TestLocalOAuthProviderInBrowser(t *testing.T) {
	s := vaultFor(t)
	ctx := browserTab(t, 2*time.Minute)
	as, err := oauthtest.NewAt("127.0.0.1:0", func(as *oauthtest.Server) { as.SetConsent(true) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)
	secretsMu.Lock()
	authServers = append(authServers, as) // its tokens and secret join the leak check
	secretsMu.Unlock()
	as.RegisterRedirectURI(callbackURL(s))
	s.mustCLI(t, "write", "connect/config", "redirect_url="+callbackURL(s))
	s.mustCLI(t, "write", "connect/integrations/local-oauth", "auth_mode=OAUTH2", "client_id="+as.ClientID,
		"client_secret="+as.ClientSecret, "auth_url="+as.AuthURL(), "token_url="+as.TokenURL(), "scopes=read")

	// Deny, as the button posts it (the callback's refusal page is the
	// connect page's concern): the browser comes back with access_denied
	// and nothing is stored.
	authURL := strings.TrimSpace(s.mustCLI(t, "write", "-f", "-field=authorization_url", "connect/connections/local-oauth/denied/authorize"))
	query := authURL[strings.Index(authURL, "?")+1:]
	resp, err := http.Post(as.URL+"/consent", "application/x-www-form-urlencoded", strings.NewReader(query+"&decision=deny"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Request.URL.RawQuery, "error=access_denied") {
		t.Fatalf("a denial came back to %s", resp.Request.URL)
	}
	if _, err := s.cli(nil, "read", "connect/connections/local-oauth/denied"); err == nil {
		t.Fatal("a denied consent stored a connection")
	}

	authURL = strings.TrimSpace(s.mustCLI(t, "write", "-f", "-field=authorization_url", "connect/connections/local-oauth/me/authorize"))
	open(t, ctx, authURL)
	waitForText(t, ctx, as.ClientID) // the consent page names the application
	press(t, ctx, "Allow")
	waitForText(t, ctx, "Connected")
	first := s.mustCLI(t, "read", "-field=access_token", "connect/connections/local-oauth/me")
	if !as.AccessTokenValid(strings.TrimSpace(first)) {
		t.Fatalf("the stored token is not one the provider issued: %q", first)
	}
	s.mustCLI(t, "write", "-f", "connect/connections/local-oauth/me/refresh")
	if again := s.mustCLI(t, "read", "-field=access_token", "connect/connections/local-oauth/me"); again == first {
		t.Fatal("a forced refresh kept the old token")
	}
}
