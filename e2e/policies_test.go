// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// examplePolicy is the path of a policy under examples/policies.
func examplePolicy(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "examples", "policies", name+".hcl")
}

// loginAs creates a userpass user with policies, tied to an identity entity
// with the given metadata, and returns a token of its login.
func loginAs(t *testing.T, s *vaultServer, user string, metadata map[string]string, policies ...string) string {
	t.Helper()
	s.mustCLI(t, "write", "auth/userpass/users/"+user, "password=pw-"+user, "token_policies="+strings.Join(policies, ","))
	args := []string{"write", "-field=id", "identity/entity", "name=entity-" + user}
	for k, v := range metadata {
		args = append(args, "metadata="+k+"="+v)
	}
	entityID := strings.TrimSpace(s.mustCLI(t, args...))
	accessor := strings.TrimSpace(s.mustCLI(t, "read", "-field=accessor", "sys/auth/userpass"))
	s.mustCLI(t, "write", "identity/entity-alias", "name="+user, "canonical_id="+entityID, "mount_accessor="+accessor)
	status, body := s.rawAs(t, "", "POST", "auth/userpass/login/"+user, []byte(`{"password":"pw-`+user+`"}`))
	if status != http.StatusOK {
		t.Fatalf("login %s: %d %s", user, status, body)
	}
	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	json.Unmarshal([]byte(body), &out)
	return out.Auth.ClientToken
}

func TestPoliciesThroughVault(t *testing.T) {
	s := vaultFor(t)
	s.cli(nil, "auth", "enable", "userpass")
	for _, name := range []string{"customer", "application", "operator", "onboarding"} {
		s.mustCLI(t, "policy", "write", "connect-"+name, examplePolicy(name))
	}
	as := flowServer(t, s, "https://app.example.test/done")
	// Anew, whatever an earlier test of the shared Vault made under these
	// names (the sessions policy's test makes them API_KEY integrations).
	for _, name := range []string{"github", "stripe"} {
		s.mustCLI(t, "delete", "connect/integrations/"+name, "force=true")
	}
	s.mustCLI(t, "write", "connect/integrations/github", "auth_mode=OAUTH2", "client_id="+as.ClientID,
		"client_secret="+as.ClientSecret, "auth_url="+as.AuthURL(), "token_url="+as.TokenURL())
	s.mustCLI(t, "write", "connect/integrations/stripe", "auth_mode=API_KEY")
	for _, c := range []string{"cust-alice", "cust-bob"} {
		s.mustCLI(t, "write", "connect/connections/github/"+c, "access_token=at-"+c, "refresh_token="+as.IssueRefreshToken())
		s.mustCLI(t, "write", "connect/connections/stripe/"+c, "api_key=sk-"+c)
	}

	s.mustCLI(t, "write", "connect/config", "public_url=https://vault.example.test/v1/connect")
	sessionID := strings.TrimSpace(s.mustCLI(t, "write", "-field=session_id", "connect/sessions", "connection_id=cust-sess", "integrations=stripe"))

	alice := loginAs(t, s, "alice", map[string]string{"customer": "cust-alice"}, "connect-customer")
	bob := loginAs(t, s, "bob", map[string]string{"customer": "cust-bob"}, "connect-customer")
	app := loginAs(t, s, "app", nil, "connect-application")
	operator := loginAs(t, s, "operator", nil, "connect-operator")
	onboarding := loginAs(t, s, "onboarding", nil, "connect-onboarding")

	type check struct {
		token, method, path string
		body                []byte
		want                int
		contains            string
	}
	checks := []check{
		// Each customer reads its own connections in both integrations…
		{alice, "GET", "connect/connections/github/cust-alice", nil, 200, "at-cust-alice"},
		{alice, "GET", "connect/connections/stripe/cust-alice", nil, 200, "sk-cust-alice"},
		{bob, "GET", "connect/connections/stripe/cust-bob", nil, 200, "sk-cust-bob"},
		{alice, "POST", "connect/connections/stripe/cust-alice/metadata", []byte(`{"plan":"pro"}`), 200, "pro"},
		// …and nothing of the other's, no raw tokens, no config, no integrations.
		{alice, "GET", "connect/connections/github/cust-bob", nil, 403, ""},
		{alice, "GET", "connect/connections/stripe/cust-bob", nil, 403, ""},
		{bob, "GET", "connect/connections/github/cust-alice", nil, 403, ""},
		{alice, "GET", "connect/connections/github/cust-alice/raw", nil, 403, ""},
		{alice, "GET", "connect/connections/github/cust-alice/config", nil, 403, ""},
		{alice, "POST", "connect/connections/github/cust-alice/config", []byte(`{"subdomain":"evil"}`), 403, ""},
		{alice, "GET", "connect/integrations/github", nil, 403, ""},
		{alice, "LIST", "connect/connections/github", nil, 403, ""},
		{alice, "POST", "connect/providers/github", []byte(`{"token_url":"https://evil.test/t"}`), 403, ""},
		{alice, "POST", "connect/import/github", []byte(`{"connections":[{"connection_id":"cust-alice","access_token":"x"}]}`), 403, ""},
		// The application reads every github connection but no refresh token.
		{app, "GET", "connect/connections/github/cust-bob", nil, 200, "at-cust-bob"},
		{app, "LIST", "connect/connections/github", nil, 200, "cust-alice"},
		{app, "GET", "connect/connections/github/cust-bob/raw", nil, 403, ""},
		{app, "GET", "connect/connections/stripe/cust-bob", nil, 403, ""},
		// The operator manages integrations and reads no credential.
		{operator, "POST", "connect/integrations/newapi", []byte(`{"auth_mode":"API_KEY"}`), 200, "newapi"},
		{operator, "GET", "connect/integrations/github", nil, 200, "client_secret_set"},
		{operator, "LIST", "connect/connections/github", nil, 200, "cust-bob"},
		{operator, "GET", "connect/connections/github/cust-bob", nil, 403, ""},
		{operator, "GET", "connect/connections/github/cust-bob/raw", nil, 403, ""},
		{operator, "GET", "connect/connections/stripe/cust-bob", nil, 403, ""},
		// Every other operator path: config, status, providers, import,
		// webhooks (and their dead events), sessions (read and revoke).
		{operator, "GET", "connect/config", nil, 200, "refresh_margin"},
		{operator, "GET", "connect/status", nil, 200, ""},
		{operator, "LIST", "connect/integrations", nil, 200, "stripe"},
		{operator, "LIST", "connect/providers", nil, 200, "github"},
		{operator, "POST", "connect/providers/operator-api", []byte(`{"auth_mode":"API_KEY","api_base_url":"https://api.operator.test"}`), 200, "operator-api"},
		{operator, "DELETE", "connect/providers/operator-api", nil, 204, ""},
		{operator, "POST", "connect/import/stripe", []byte(`{"connections":[{"connection_id":"cust-imported","api_key":"sk-imported"}]}`), 200, ""},
		{operator, "POST", "connect/webhooks/ops", []byte(`{"url":"https://ops.example.test/hooks","enabled":false}`), 200, "secret"},
		{operator, "GET", "connect/webhooks/ops", nil, 200, "secret_set"},
		{operator, "LIST", "connect/webhooks", nil, 200, "ops"},
		{operator, "LIST", "connect/webhooks/ops/dead", nil, 404, ""}, // none dead: an empty LIST is a 404
		{operator, "DELETE", "connect/webhooks/ops", nil, 204, ""},
		{operator, "GET", "connect/sessions/" + sessionID, nil, 200, "cust-sess"},
		{operator, "DELETE", "connect/sessions/" + sessionID, nil, 204, ""},
		{operator, "POST", "connect/sessions", []byte(`{"connection_id":"cust-x","integrations":"stripe"}`), 403, ""},
		{operator, "DELETE", "connect/connections/stripe/cust-imported", nil, 204, ""},
		{operator, "GET", "connect/connections/stripe/cust-imported/raw", nil, 403, ""},
		// A customer authorizes and completes its own connections only.
		{alice, "POST", "connect/connections/github/cust-alice/authorize", []byte(`{}`), 200, "authorization_url"},
		{alice, "POST", "connect/connections/github/cust-bob/authorize", []byte(`{}`), 403, ""},
		{alice, "POST", "connect/connections/github/cust-alice/complete", []byte(`{"completion":"not-a-completion","browser_binding":"alice-session-binding"}`), 400, "unknown"},
		{alice, "POST", "connect/connections/github/cust-bob/complete", []byte(`{"completion":"not-a-completion","browser_binding":"alice-session-binding"}`), 403, ""},
		{bob, "POST", "connect/connections/stripe/cust-alice/complete", []byte(`{"completion":"x","browser_binding":"bob-session-binding-0"}`), 403, ""},
		// Onboarding starts consent and does nothing else.
		{onboarding, "POST", "connect/connections/github/cust-carol/authorize", []byte(`{}`), 200, "authorization_url"},
		{onboarding, "GET", "connect/connections/github/cust-alice", nil, 403, ""},
		{onboarding, "POST", "connect/connections/github/cust-carol", []byte(`{"access_token":"x"}`), 403, ""},
	}
	for _, c := range checks {
		status, body := s.rawAs(t, c.token, c.method, c.path, c.body)
		if status != c.want || !strings.Contains(body, c.contains) {
			t.Errorf("%s %s: %d, want %d (%s)", c.method, c.path, status, c.want, tail(body, 200))
		}
	}
}
