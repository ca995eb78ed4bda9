// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"crypto/rsa"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// decoy is an attacker's server: it listens on 127.0.0.2 at the port of the
// real provider on 127.0.0.1, so that a config naming host 127.0.0.2 makes a
// URL that would reach it. It records every request; the egress rule says
// there must be none.
type decoy struct {
	mu       sync.Mutex
	requests []string
}

func startDecoy(t *testing.T, port string) *decoy {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(decoyHost, port))
	if err != nil {
		t.Fatalf("decoy on %s:%s: %v", decoyHost, port, err)
	}
	d := &decoy{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.requests = append(d.requests, r.Method+" "+r.URL.Path)
		d.mu.Unlock()
		http.Error(w, "decoy", http.StatusTeapot)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return d
}

func (d *decoy) requested() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.requests...)
}

const (
	providerHost = "127.0.0.1"
	decoyHost    = "127.0.0.2"
)

// egressEnv has integrations whose every URL's host is chosen by
// connection_config.host, with allowed_hosts naming only the real
// provider's host, and a decoy listening where host=127.0.0.2 points.
type egressEnv struct {
	*testEnv
	srv   *oauthtest.Server
	decoy *decoy
	key   *rsa.PrivateKey
}

func newEgressEnv(t *testing.T) *egressEnv {
	t.Helper()
	return newEgressEnvOn(t, &logical.InmemStorage{})
}

// newEgressEnvOn is newEgressEnv on the given storage.
func newEgressEnvOn(t *testing.T, s logical.Storage) *egressEnv {
	t.Helper()
	srv := oauthtest.New()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port := u.Port()
	at := "http://${connectionConfig.host}:" + port
	e := newTestEnvOn(t, s)
	srv.RegisterRedirectURI(testRedirectURL)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL, "oauth_completion": "callback"})
	e.mustDo(logical.CreateOperation, "integrations/cc", map[string]any{
		"auth_mode": "OAUTH2_CC", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"token_url": at + "/token", "allowed_hosts": providerHost,
	})
	e.mustDo(logical.CreateOperation, "integrations/oauth", map[string]any{
		"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"auth_url": at + "/authorize", "token_url": at + "/token", "revocation_url": at + "/revoke",
		"allowed_hosts": providerHost,
	})
	key, keyPEM := rsaKeyPEM(t)
	srv.SetApp("4242", &key.PublicKey)
	e.mustDo(logical.CreateOperation, "integrations/app", map[string]any{
		"provider": "github-app", "app_id": "4242", "private_key": keyPEM, "api_base_url": at, "allowed_hosts": providerHost,
	})
	e.mustDo(logical.CreateOperation, "integrations/keys", map[string]any{
		"auth_mode": "API_KEY", "api_base_url": "https://${connectionConfig.host}/api", "allowed_hosts": "*.keys.example",
	})
	return &egressEnv{testEnv: e, srv: srv, decoy: startDecoy(t, port), key: key}
}

func hostConfig(host string) map[string]any { return map[string]any{"host": host} }

// assertNothingReachedTheDecoy is the egress rule seen from outside.
func (e *egressEnv) assertNothingReachedTheDecoy() {
	e.t.Helper()
	if got := e.decoy.requested(); len(got) > 0 {
		e.t.Fatalf("requests reached a host outside allowed_hosts: %v", got)
	}
}

func TestHostChoosingTemplatesNeedAllowedHosts(t *testing.T) {
	e := newTestEnv(t)
	_, keyPEM := rsaKeyPEM(t)
	before := e.snapshot()
	e.assertRejected([]rejection{
		{"whole-host token_url", "providers/x", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${connectionConfig.domain}/oauth2/token"}, "token_url"},
		{"whole-host on an integration", "integrations/x", map[string]any{"auth_mode": "OAUTH2_CC", "client_id": "c", "client_secret": "s", "token_url": "https://${connectionConfig.domain}/token"}, "allowed_hosts"},
		{"APP api_base_url", "integrations/x", map[string]any{"provider": "github-app", "app_id": "1", "private_key": keyPEM, "api_base_url": "https://${connectionConfig.host}/api/v3"}, "api_base_url"},
		{"client base_url as a whole URL", "providers/y", map[string]any{"auth_mode": "API_KEY", "api_base_url": "${connectionConfig.instance_url}/api"}, "api_base_url"},
		{"placeholder under a public suffix", "providers/x", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${connectionConfig.tenant}.com/token"}, "token_url"},
		{"placeholder under a private public suffix", "providers/x", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${connectionConfig.user}.github.io/token"}, "token_url"},
		{"placeholder ends the host", "providers/z", map[string]any{"auth_mode": "API_KEY", "api_base_url": "https://api.${connectionConfig.site}"}, "api_base_url"},
		{"placeholder in the port", "providers/x", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://login.example.com:${connectionConfig.port}/token"}, "token_url"},
		{"pattern over a public suffix", "providers/x", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${connectionConfig.d}/t", "allowed_hosts": "*.com"}, "allowed_hosts"},
		{"pattern over co.uk", "providers/x", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${connectionConfig.d}/t", "allowed_hosts": "*.co.uk"}, "allowed_hosts"},
		{"partial wildcard", "providers/x", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${connectionConfig.d}/t", "allowed_hosts": "okta*.com"}, "allowed_hosts"},
		{"bare wildcard", "providers/x", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${connectionConfig.d}/t", "allowed_hosts": "*"}, "allowed_hosts"},
	}, "never-a-secret")
	e.assertUnchanged(before)
	// A placeholder inside a fixed registrable suffix needs no declaration;
	// a whole-host one is fine once declared.
	e.mustDo(logical.CreateOperation, "providers/zd", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${connectionConfig.subdomain}.zendesk.example.com/oauth/tokens"})
	e.mustDo(logical.CreateOperation, "providers/okta-like", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": "https://${connectionConfig.domain}/oauth2/token", "allowed_hosts": "*.okta.com,*.oktapreview.com"})
	got := e.mustDo(logical.ReadOperation, "providers/okta-like", nil)["allowed_hosts"]
	if !equalStrings(got, []string{"*.okta.com", "*.oktapreview.com"}) {
		t.Fatalf("allowed_hosts read back as %v", got)
	}
	// An integration inherits the provider's declaration, with its source.
	e.mustDo(logical.CreateOperation, "integrations/okta", map[string]any{"provider": "okta-like", "client_id": "c", "client_secret": "s"})
	in := e.mustDo(logical.ReadOperation, "integrations/okta", nil)
	if !equalStrings(in["allowed_hosts"], []string{"*.okta.com", "*.oktapreview.com"}) || in["sources"].(map[string]string)["allowed_hosts"] != "provider" {
		t.Fatalf("integration read: allowed_hosts %v, sources %v", in["allowed_hosts"], in["sources"])
	}
}

func equalStrings(got any, want []string) bool {
	var list []string
	switch v := got.(type) {
	case []string:
		list = v
	case []any:
		for _, s := range v {
			list = append(list, s.(string))
		}
	}
	return strings.Join(list, ",") == strings.Join(want, ",")
}

// Every surface that writes a connection's config refuses one that points a
// URL outside allowed_hosts: a 400 naming the key, nothing stored, nothing
// sent.
func TestConfigCannotPointSecretsElsewhere(t *testing.T) {
	e := newEgressEnv(t)
	e.mustDo(logical.CreateOperation, "connections/cc/acme", map[string]any{"connection_config": hostConfig(providerHost)})
	e.mustDo(logical.CreateOperation, "connections/keys/acme", map[string]any{"api_key": "k-1", "connection_config": hostConfig("acme.keys.example")})
	bad := hostConfig(decoyHost)
	before := e.snapshot()
	for _, c := range []struct {
		name, path string
		op         logical.Operation
		body       map[string]any
	}{
		{"create", "connections/cc/new", logical.CreateOperation, map[string]any{"connection_config": bad}},
		{"update", "connections/cc/acme", logical.UpdateOperation, map[string]any{"connection_config": bad}},
		{"config write", "connections/cc/acme/config", logical.UpdateOperation, bad},
		{"config patch", "connections/cc/acme/config", logical.PatchOperation, bad},
		{"import", "import/cc", logical.UpdateOperation, map[string]any{"connections": []any{map[string]any{"connection_id": "imp", "connection_config": bad}}}},
		{"authorize", "connections/oauth/acme/authorize", logical.UpdateOperation, map[string]any{"connection_config": bad}},
		{"app create", "connections/app/inst", logical.CreateOperation, map[string]any{"installation_id": "987", "connection_config": bad}},
		{"client base_url", "connections/keys/acme/config", logical.UpdateOperation, hostConfig("keys.example.evil.test")},
	} {
		resp, status := e.do(c.op, c.path, c.body)
		msg := ""
		switch {
		case resp != nil && resp.IsError():
			msg = resp.Error().Error()
		case resp != nil && c.name == "import":
			msg, status = importItemError(resp)
		}
		if status != http.StatusBadRequest || !strings.Contains(msg, "connection_config.host") {
			t.Errorf("%s: status %d, error %q; want 400 naming connection_config.host", c.name, status, msg)
		}
	}
	e.assertUnchanged(before)
	e.assertNothingReachedTheDecoy()
}

// importItemError is the error of the only item of an import, as a 400 the
// way a single write would answer it.
func importItemError(resp *logical.Response) (string, int) {
	for _, key := range []string{"results", "connections", "items"} {
		if items, ok := resp.Data[key].([]map[string]any); ok && len(items) == 1 {
			if msg, _ := items[0]["error"].(string); msg != "" {
				return msg, http.StatusBadRequest
			}
		}
		if items, ok := resp.Data[key].([]any); ok && len(items) == 1 {
			if m, ok := items[0].(map[string]any); ok {
				if msg, _ := m["error"].(string); msg != "" {
					return msg, http.StatusBadRequest
				}
			}
		}
	}
	return "", http.StatusOK
}

// The provider client refuses to send a secret outside the integration's
// hosts whatever config the connection holds: here one stored past every
// write check, as an earlier version could have.
func TestProviderClientRefusesPlantedHosts(t *testing.T) {
	e := newEgressEnv(t)
	e.mustDo(logical.CreateOperation, "connections/cc/acme", map[string]any{"connection_config": hostConfig(providerHost)})
	e.mustDo(logical.CreateOperation, "connections/app/acme", map[string]any{"installation_id": "987", "connection_config": hostConfig(providerHost)})
	rt := e.srv.IssueRefreshToken()
	e.mustDo(logical.CreateOperation, "connections/oauth/acme", map[string]any{"access_token": "at-0", "refresh_token": rt, "connection_config": hostConfig(providerHost)})
	for _, in := range []string{"cc", "app", "oauth"} {
		e.rewriteStoredConnection(in, "acme", func(c *connectionEntry) { c.ConnectionConfig["host"] = decoyHost })
		if _, status := e.do(logical.UpdateOperation, "connections/"+in+"/acme/refresh", nil); status/100 == 2 {
			t.Errorf("%s: a refresh towards %s answered %d", in, decoyHost, status)
		}
	}
	e.mustDo(logical.DeleteOperation, "connections/oauth/acme", nil) // revocation would go to the decoy
	e.assertNothingReachedTheDecoy()
	if !e.srv.RefreshTokenValid(rt) {
		t.Fatal("the refresh token was spent")
	}
}

// Values a provider's redirect carries (callback_config) and members of its
// token response (token_response_config) are config writes too.
func TestProviderSuppliedConfigCannotPointSecretsElsewhere(t *testing.T) {
	e := newEgressEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/oauth", map[string]any{"callback_config": "host"})
	e.srv.SetCallbackExtras(url.Values{"host": {decoyHost}})
	q := consent(t, e.testEnv, "connections/oauth/acme/authorize", map[string]any{"connection_config": hostConfig(providerHost)})
	status, page, _ := callback(e.testEnv, q)
	if status != http.StatusBadRequest || !strings.Contains(page, "connection_config.host") {
		t.Fatalf("callback carrying host=%s: %d %s", decoyHost, status, page)
	}
	if c, _ := getConnection(t.Context(), e.storage, "oauth", "acme"); c != nil {
		t.Fatal("the callback stored a connection")
	}

	// A token response member mapped into the config is not copied when it
	// would point elsewhere; the tokens are kept.
	e.srv.SetCallbackExtras(nil)
	e.mustDo(logical.UpdateOperation, "integrations/oauth", map[string]any{"callback_config": "", "token_response_config": "host=host"})
	e.srv.SetExtraFields(map[string]any{"host": decoyHost})
	status, page, _ = callback(e.testEnv, consent(t, e.testEnv, "connections/oauth/acme/authorize", map[string]any{"connection_config": hostConfig(providerHost)}))
	if status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	c := e.mustDo(logical.ReadOperation, "connections/oauth/acme", nil)
	if c["connection_config"].(map[string]any)["host"] != providerHost || c["access_token"] == "" {
		t.Fatalf("connection after a token response naming %s: %v", decoyHost, c["connection_config"])
	}
	e.mustDo(logical.UpdateOperation, "connections/oauth/acme/refresh", nil)
	e.assertNothingReachedTheDecoy()
}

// The catalog's whole-host entries: a customer cannot send the okta-cc
// client secret, or salesforce and gitlab-pat tokens, to its own host.
func TestCatalogHostChoicesAreBounded(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/okta", map[string]any{"provider": "okta-cc", "client_id": "c", "client_secret": "s"})
	e.mustDo(logical.CreateOperation, "integrations/sf", map[string]any{"provider": "salesforce", "client_id": "c", "client_secret": "s"})
	e.mustDo(logical.CreateOperation, "integrations/gl", map[string]any{"provider": "gitlab-pat"})
	e.mustDo(logical.CreateOperation, "integrations/pd", map[string]any{"provider": "pipedrive", "client_id": "c", "client_secret": "s"})
	for _, c := range []struct {
		path string
		body map[string]any
		key  string
	}{
		{"connections/okta/acme", map[string]any{"connection_config": map[string]any{"domain": "attacker.example"}}, "domain"},
		{"connections/okta/acme", map[string]any{"connection_config": map[string]any{"domain": "okta.com.attacker.example"}}, "domain"},
		{"connections/sf/acme", map[string]any{"access_token": "a", "refresh_token": "r", "connection_config": map[string]any{"hostname": "evil.salesforce.com"}}, "hostname"},
		{"connections/sf/acme", map[string]any{"access_token": "a", "refresh_token": "r", "connection_config": map[string]any{"instance_url": "https://attacker.example"}}, "instance_url"},
		{"connections/gl/acme", map[string]any{"api_key": "glpat-x", "connection_config": map[string]any{"host": "attacker.example"}}, "host"},
		{"connections/pd/acme", map[string]any{"access_token": "a", "refresh_token": "r", "connection_config": map[string]any{"api_domain": "https://acme.pipedrive.com.attacker.example"}}, "api_domain"},
	} {
		msg := e.mustFail(logical.CreateOperation, c.path, c.body, http.StatusBadRequest)
		if !strings.Contains(msg, "connection_config."+c.key) {
			t.Errorf("%s %v: error %q does not name the key", c.path, c.body, msg)
		}
	}
	// The documented hosts pass the rule.
	e.mustDo(logical.CreateOperation, "connections/sf/acme", map[string]any{"access_token": "a", "refresh_token": "r", "connection_config": map[string]any{"hostname": "acme.my.salesforce.com", "instance_url": "https://acme.my.salesforce.com"}})
	e.mustDo(logical.CreateOperation, "connections/gl/acme", map[string]any{"api_key": "glpat-x"})
	if got := e.mustDo(logical.ReadOperation, "connections/gl/acme", nil)["base_url"]; got != "https://gitlab.com/api/v4" {
		t.Fatalf("gitlab base_url = %v", got)
	}
}
