// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAppInstallationNotMovableThroughConfig: a write to an APP
// connection's config sub-path, which a customer policy may grant, cannot
// point its tokens at another installation: a config holding installation_id
// is refused. The operator's connection write moves it, with a token of the
// new installation in the same answer.
func TestAppInstallationNotMovableThroughConfig(t *testing.T) {
	s := vaultFor(t)
	as := newAuthServer(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	as.SetApp("4711", &key.PublicKey)
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	notePEM(keyPEM)
	os.WriteFile(keyFile, keyPEM, 0o600)
	s.mustCLI(t, "write", "connect/integrations/trust-app", "provider=github-app", "app_id=4711", "private_key=@"+keyFile, "api_base_url="+as.URL)
	s.mustCLI(t, "write", "connect/connections/trust-app/acme", "installation_id=100")
	for _, verb := range []string{"write", "patch"} {
		out, err := s.cli(nil, verb, "connect/connections/trust-app/acme/config", "installation_id=200")
		if err == nil || !strings.Contains(out, "Code: 400") || !strings.Contains(out, "installation_id") {
			t.Errorf("%s of installation_id to the config: %v\n%s", verb, err, out)
		}
	}
	first := s.mustCLI(t, "write", "-field=access_token", "-f", "connect/connections/trust-app/acme/refresh")
	if as.LastTenant() != "100" {
		t.Fatalf("a config write moved the token to installation %s", as.LastTenant())
	}
	moved := s.mustCLI(t, "write", "-field=access_token", "connect/connections/trust-app/acme", "installation_id=101")
	if as.LastTenant() != "101" || moved == first || !as.AccessTokenValid(moved) {
		t.Fatalf("after the operator's move: asked for installation %s, token replaced %v", as.LastTenant(), moved != first)
	}
}

// TestReturnURLLookAlikesThroughVault: authorize refuses
// return URLs that a string prefix of an allowed URL would admit.
func TestReturnURLLookAlikesThroughVault(t *testing.T) {
	s := vaultFor(t)
	as := flowServer(t, s, "https://app.example.test/done")
	s.mustCLI(t, "write", "connect/integrations/trust-rt", "auth_mode=OAUTH2", "client_id="+as.ClientID,
		"client_secret="+as.ClientSecret, "auth_url="+as.AuthURL(), "token_url="+as.TokenURL())
	for _, u := range []string{
		"https://app.example.test/done/../admin",
		"https://app.example.test/done/%2e%2e/admin",
		"https://app.example.test/done-evil",
		"https://app.example.test/doneXYZ",
	} {
		body := `{"return_url":"` + u + `"}`
		status, out := s.raw(t, "PUT", "connect/connections/trust-rt/acme/authorize", []byte(body), "application/json")
		if status != http.StatusBadRequest || !strings.Contains(out, "allowed_return_urls") {
			t.Errorf("return_url %s: %d %s", u, status, out)
		}
	}
	status, out := s.raw(t, "PUT", "connect/connections/trust-rt/acme/authorize", []byte(`{"return_url":"https://app.example.test/done/ok"}`), "application/json")
	if status != http.StatusOK {
		t.Fatalf("allowed return_url: %d %s", status, out)
	}
}

// TestProviderRedirectThroughVault: a token endpoint that
// answers 307 does not get the refresh token re-posted elsewhere; the read
// answers 424 naming the status, and the connection keeps its tokens.
func TestProviderRedirectThroughVault(t *testing.T) {
	reliabilityCase(t, "token endpoint answers 307 to another host (through Vault)", "424 naming HTTP 307; the other host gets nothing; the refresh token is kept")
	s := vaultFor(t)
	as := oauthIntegrations(t, s, "redir")
	var stolen atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		io.WriteString(w, `{"access_token":"x","token_type":"Bearer"}`)
	}))
	t.Cleanup(target.Close)
	rt := as.IssueRefreshToken()
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	s.mustCLI(t, "write", "connect/connections/redir-gh/c1", "access_token=old", "refresh_token="+rt, "expires_at="+past)
	as.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/token?"+url.Values{"from": {"provider"}}.Encode(), http.StatusTemporaryRedirect)
	})
	status, body := s.raw(t, "GET", "connect/connections/redir-gh/c1", nil, "")
	if status != http.StatusFailedDependency || !strings.Contains(body, "HTTP 307") {
		t.Fatalf("redirected refresh: %d %s", status, body)
	}
	if stolen.Load() != 0 {
		t.Fatalf("the redirect target got %d requests", stolen.Load())
	}
	// The stored refresh token is still the one the provider accepts: a
	// forced refresh with it succeeds once the provider behaves.
	as.SetOverride(nil)
	forced := jsonOut(t, s, "write", "-f", "connect/connections/redir-gh/c1/refresh")["data"].(map[string]any)
	if !as.AccessTokenValid(forced["access_token"].(string)) || as.RefreshTokenValid(rt) {
		t.Fatal("the refresh token was not kept")
	}
}

// TestEgressRuleThroughVault: through a real Vault, a token URL whose host
// a connection's config chooses needs allowed_hosts, and a config that
// points it at another host is refused on the config sub-path a customer
// may be granted; a loopback decoy on that host receives nothing.
func TestEgressRuleThroughVault(t *testing.T) {
	s := vaultFor(t)
	as := newAuthServer(t)
	u, _ := url.Parse(as.URL)
	var decoyHits atomic.Int64
	decoy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		decoyHits.Add(1)
		http.Error(w, "decoy", http.StatusTeapot)
	}))
	l, err := net.Listen("tcp", "127.0.0.2:"+u.Port())
	if err != nil {
		t.Fatal(err)
	}
	decoy.Listener.Close()
	decoy.Listener = l
	decoy.Start()
	defer decoy.Close()

	tokenURL := "token_url=http://${connectionConfig.host}:" + u.Port() + "/token"
	out, err := s.cli(nil, "write", "connect/integrations/egress-cc", "auth_mode=OAUTH2_CC", "client_id="+as.ClientID, "client_secret="+as.ClientSecret, tokenURL)
	if err == nil || !strings.Contains(out, "Code: 400") || !strings.Contains(out, "allowed_hosts") {
		t.Fatalf("a whole-host token_url without allowed_hosts: %v\n%s", err, out)
	}
	s.mustCLI(t, "write", "connect/integrations/egress-cc", "auth_mode=OAUTH2_CC", "client_id="+as.ClientID, "client_secret="+as.ClientSecret, tokenURL, "allowed_hosts=127.0.0.1")
	if out, err := s.cli([]byte(`{"connection_config": {"host": "127.0.0.1"}}`), "write", "connect/connections/egress-cc/acme", "-"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	for _, verb := range []string{"write", "patch"} {
		out, err := s.cli(nil, verb, "connect/connections/egress-cc/acme/config", "host=127.0.0.2")
		if err == nil || !strings.Contains(out, "Code: 400") || !strings.Contains(out, "connection_config.host") {
			t.Errorf("%s of a config pointing elsewhere: %v\n%s", verb, err, out)
		}
	}
	s.mustCLI(t, "write", "-f", "connect/connections/egress-cc/acme/refresh")
	if n := decoyHits.Load(); n != 0 {
		t.Fatalf("the decoy on 127.0.0.2 received %d requests", n)
	}
}
