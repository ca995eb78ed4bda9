// SPDX-License-Identifier: MPL-2.0

// Cross-cutting on purpose: fuzzes outbound requests from every flow, not one file.

package connect

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// hostRecorder is the transport under the provider client in the egress
// fuzz target: it records the host of every request the client lets out
// and delivers each, whatever its host, to the loopback provider, the way a
// resolver that answers every name with 127.0.0.1 would.
type hostRecorder struct {
	mu    sync.Mutex
	hosts []string
	next  http.RoundTripper
}

func newHostRecorder(providerAddr string) *hostRecorder {
	dialer := &net.Dialer{Timeout: time.Second}
	return &hostRecorder{next: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, providerAddr)
		},
	}}
}

func (r *hostRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.hosts = append(r.hosts, req.URL.Hostname())
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *hostRecorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.hosts...)
}

// fuzzAllowedHost is the fuzz target's oracle, written apart from the
// plugin's own matching: the integrations below allow the provider's literal
// host and any host of whole labels under tenant.example.
func fuzzAllowedHost(h string) bool {
	if h == "127.0.0.1" {
		return true
	}
	prefix, ok := strings.CutSuffix(strings.ToLower(h), ".tenant.example")
	if !ok || prefix == "" {
		return false
	}
	for _, label := range strings.Split(prefix, ".") {
		if label == "" {
			return false
		}
	}
	return true
}

// egressFuzzEnv: integrations whose token URLs take their host from
// connection_config.host, with allowed_hosts *.tenant.example, and whose
// token responses and callbacks may carry a host too.
func egressFuzzEnv(t *testing.T) (*testEnv, *oauthtest.Server, *hostRecorder) {
	srv := oauthtest.New()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	rec := newHostRecorder(u.Host)
	e := newTestEnv(t)
	e.b.issuer.client = provider.New(&http.Client{Transport: rec, Timeout: 2 * time.Second}, time.Now)
	srv.RegisterRedirectURI(testRedirectURL)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL, "oauth_completion": "callback"})
	at := "http://${connectionConfig.host}:" + u.Port()
	common := map[string]any{"client_id": srv.ClientID, "client_secret": srv.ClientSecret, "allowed_hosts": "*.tenant.example"}
	cc := map[string]any{"auth_mode": "OAUTH2_CC", "token_url": at + "/token || " + srv.TokenURL()}
	oauth := map[string]any{"auth_mode": "OAUTH2", "auth_url": at + "/authorize", "token_url": at + "/token", "revocation_url": at + "/revoke",
		"token_response_config": "host=host"}
	for name, body := range map[string]map[string]any{"cc": cc, "oauth": oauth} {
		for k, v := range common {
			body[k] = v
		}
		e.mustDo(logical.CreateOperation, "integrations/"+name, body)
	}
	key, keyPEM := rsaKeyPEM(t)
	srv.SetApp("4242", &key.PublicKey)
	e.mustDo(logical.CreateOperation, "integrations/app", map[string]any{
		"provider": "github-app", "app_id": "4242", "private_key": keyPEM, "api_base_url": at, "allowed_hosts": "*.tenant.example",
	})
	e.mustDo(logical.CreateOperation, "connections/app/base", map[string]any{"installation_id": "987", "connection_config": hostConfig("base.tenant.example")})
	e.mustDo(logical.CreateOperation, "connections/cc/base", map[string]any{"connection_config": hostConfig("base.tenant.example")})
	e.mustDo(logical.CreateOperation, "connections/oauth/base", map[string]any{"access_token": "at", "refresh_token": srv.IssueRefreshToken(),
		"connection_config": hostConfig("base.tenant.example")})
	return e, srv, rec
}

// FuzzEgress writes fuzzed hosts through every surface that sets a
// connection's config, and through what a provider answers, then makes
// every call that sends a secret; no request may leave for a host outside
// the allowed set.
func FuzzEgress(f *testing.F) {
	for _, seed := range []struct {
		surface uint8
		host    string
	}{
		{0, "acme.tenant.example"}, {1, "attacker.example"}, {2, "tenant.example"}, {3, "tenant.example.attacker.example"},
		{4, "a..tenant.example"}, {5, "ACME.TENANT.EXAMPLE."}, {6, "127.0.0.2"}, {7, "x.tenant.example:8080"},
		{8, "evil.test/.tenant.example"}, {9, "evil.test#.tenant.example"}, {10, "user@acme.tenant.example"}, {11, "%65vil.test"},
	} {
		f.Add(seed.surface, seed.host)
	}
	f.Fuzz(func(t *testing.T, surface uint8, host string) {
		e, srv, rec := egressFuzzEnv(t)
		cfg := hostConfig(host)
		switch surface % 8 {
		case 0:
			e.do(logical.CreateOperation, "connections/cc/new", map[string]any{"connection_config": cfg})
		case 1:
			e.do(logical.UpdateOperation, "connections/cc/base", map[string]any{"connection_config": cfg})
		case 2:
			e.do(logical.UpdateOperation, "connections/oauth/base/config", cfg)
		case 3:
			e.do(logical.PatchOperation, "connections/oauth/base/config", cfg)
		case 4:
			e.do(logical.UpdateOperation, "import/cc", map[string]any{"connections": []any{map[string]any{"connection_id": "imp", "connection_config": cfg}}})
		case 5: // authorize's config, through the consent and the callback
			if resp, status := e.do(logical.UpdateOperation, "connections/oauth/base/authorize", map[string]any{"connection_config": cfg}); status == http.StatusOK {
				if q, ok := consentAt(e, resp.Data["authorization_url"].(string)); ok {
					callback(e, q)
				}
			}
			e.do(logical.UpdateOperation, "connections/app/base", map[string]any{"connection_config": cfg})
		case 6: // a provider's token response names the host
			srv.SetExtraFields(map[string]any{"host": host})
			e.do(logical.UpdateOperation, "connections/oauth/base/refresh", nil)
			srv.SetExtraFields(nil)
		case 7: // a callback's query names it
			e.do(logical.UpdateOperation, "integrations/oauth", map[string]any{"callback_config": "host"})
			srv.SetCallbackExtras(url.Values{"host": {host}})
			if q, ok := tryConsent(e, "connections/oauth/base/authorize"); ok {
				callback(e, q)
			}
		}
		// Every call that sends a secret, with whatever is stored now.
		for _, path := range []string{"connections/cc/base", "connections/cc/new", "connections/cc/imp", "connections/oauth/base", "connections/app/base"} {
			e.do(logical.UpdateOperation, path+"/refresh", nil)
		}
		e.do(logical.DeleteOperation, "connections/oauth/base", nil)
		if len(rec.seen()) == 0 {
			t.Fatal("no request reached the provider: the target would test nothing")
		}
		for _, h := range rec.seen() {
			if !fuzzAllowedHost(h) {
				t.Fatalf("surface %d with host %q: a request went to %q", surface%8, host, h)
			}
		}
	})
}

// tryConsent is consent for a fuzz target: false instead of a failure when
// authorize refuses.
func tryConsent(e *testEnv, path string) (url.Values, bool) {
	resp, status := e.do(logical.UpdateOperation, path, nil)
	if status != http.StatusOK {
		return nil, false
	}
	authURL, _ := resp.Data["authorization_url"].(string)
	return consentAt(e, authURL)
}

// consentAt is the browser at an authorization URL: the provider's answer
// is the redirect to the callback, whose query it returns. The browser
// reaches the loopback provider whatever host the URL names.
func consentAt(_ *testEnv, authURL string) (url.Values, bool) {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u, err := url.Parse(authURL)
	if err != nil {
		return nil, false
	}
	u.Host = strings.Replace(u.Host, u.Hostname(), "127.0.0.1", 1)
	r, err := client.Get(u.String())
	if err != nil {
		return nil, false
	}
	r.Body.Close()
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil || r.StatusCode != http.StatusFound {
		return nil, false
	}
	return loc.Query(), true
}
