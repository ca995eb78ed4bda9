// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// openIDProvider is Vault's own identity OIDC provider, set up on the test
// server with one confidential client whose redirect URI is the connect
// mount's callback, and one userpass user (with its entity) assigned to it.
type openIDProvider struct {
	name         string
	clientID     string
	clientSecret string
	userToken    string // the end user's Vault token, as the UI's session holds it
	entityID     string
	entityName   string // the user scope's template puts it in the ID token
	discovery    map[string]any
}

// newOpenIDProvider configures identity/oidc on s for the callback URL and
// logs the end user in with userpass.
func newOpenIDProvider(t *testing.T, s *vaultServer, name string) *openIDProvider {
	t.Helper()
	p := &openIDProvider{name: name}
	const password = "e2e-oidc-user-password-9f3a"
	noteSecrets(password)
	if out, err := s.cli(nil, "auth", "enable", "-path=userpass-"+name, "userpass"); err != nil && !strings.Contains(out, "path is already in use") {
		t.Fatalf("enable userpass: %v %s", err, out)
	}
	s.mustCLI(t, "write", "auth/userpass-"+name+"/users/alice", "password="+password, "token_policies=default")
	login := jsonOut(t, s, "write", "auth/userpass-"+name+"/login/alice", "password="+password)["auth"].(map[string]any)
	p.userToken, p.entityID = login["client_token"].(string), login["entity_id"].(string)
	if p.entityID == "" {
		t.Fatal("the userpass login has no entity")
	}
	p.entityName = data(t, s, "identity/entity/id/"+p.entityID)["name"].(string)

	s.mustCLI(t, "write", "identity/oidc/key/"+name, "allowed_client_ids=*", "algorithm=RS256")
	s.mustCLI(t, "write", "identity/oidc/assignment/"+name, "entity_ids="+p.entityID)
	s.mustCLI(t, "write", "identity/oidc/scope/"+name+"-user", "description=the user's name",
		`template={"username": {{identity.entity.name}}}`)
	s.mustCLI(t, "write", "identity/oidc/client/"+name, "redirect_uris="+callbackURL(s),
		"assignments="+name, "key="+name, "client_type=confidential", "id_token_ttl=30m", "access_token_ttl=1h")
	client := data(t, s, "identity/oidc/client/"+name)
	p.clientID, p.clientSecret = client["client_id"].(string), client["client_secret"].(string)
	noteSecrets(p.clientSecret)
	s.mustCLI(t, "write", "identity/oidc/provider/"+name, "allowed_client_ids="+p.clientID, "scopes_supported="+name+"-user")

	status, body := s.rawAs(t, "", http.MethodGet, "identity/oidc/provider/"+name+"/.well-known/openid-configuration", nil)
	if status != http.StatusOK || json.Unmarshal([]byte(body), &p.discovery) != nil {
		t.Fatalf("discovery: %d %s", status, body)
	}
	return p
}

func (p *openIDProvider) endpoint(key string) string { return p.discovery[key].(string) }

// approve does what a browser holding the end user's Vault session does
// with the authorization URL: the discovery document's authorization
// endpoint is Vault's UI page, which sends the request's parameters to the
// API's authorize endpoint with the user's token, receives the code as JSON
// and sends the browser to the redirect_uri with code and state (Vault's
// ui/app/routes/vault/cluster/oidc-provider.js: auth.ajax GET of
// /v1/identity/oidc/provider/<name>/authorize, then location.replace). It
// returns that redirect.
func (p *openIDProvider) approve(t *testing.T, s *vaultServer, authorizationURL string) string {
	t.Helper()
	u, err := url.Parse(authorizationURL)
	if err != nil || !strings.HasPrefix(authorizationURL, p.endpoint("authorization_endpoint")+"?") {
		t.Fatalf("authorization URL %q is not the provider's endpoint %s", authorizationURL, p.endpoint("authorization_endpoint"))
	}
	q := u.Query()
	if q.Get("client_id") != p.clientID || q.Get("redirect_uri") != callbackURL(s) || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" {
		t.Fatalf("authorize request: %v", q)
	}
	status, body := s.rawAs(t, p.userToken, http.MethodGet, "identity/oidc/provider/"+p.name+"/authorize?"+u.RawQuery, nil)
	var answer struct{ Code, State string }
	if status != http.StatusOK || json.Unmarshal([]byte(body), &answer) != nil || answer.Code == "" || answer.State != q.Get("state") {
		t.Fatalf("provider authorize: %d %s", status, body)
	}
	return q.Get("redirect_uri") + "?" + url.Values{"code": {answer.Code}, "state": {answer.State}}.Encode()
}

// checkIDToken decodes the ID token's claims (Vault signed it; the plugin
// only stores the token response) and checks they name this provider,
// client and user.
func (p *openIDProvider) checkIDToken(t *testing.T, idToken string) {
	t.Helper()
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token is not a JWS: %q", idToken)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		t.Fatalf("id_token payload: %v", err)
	}
	if claims["iss"] != p.discovery["issuer"] || claims["aud"] != p.clientID || claims["sub"] != p.entityID || claims["username"] != p.entityName {
		t.Fatalf("id_token claims: %v", claims)
	}
}

// TestAuthorizationThroughAnOpenIDProvider: the OAuth flow through a real
// OpenID Connect provider, Vault's identity OIDC provider on the same
// server, in both oauth_completion modes: authorize, the logged-in user's
// approval at the provider, the code at the mount's callback, then the
// application's completion or the callback's storing; the connection has the
// provider's access token and its raw token response the ID token.
func TestAuthorizationThroughAnOpenIDProvider(t *testing.T) {
	s := vaultFor(t)
	p := newOpenIDProvider(t, s, "e2e-oidc")
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "app got it")
	}))
	t.Cleanup(app.Close)
	was := data(t, s, "connect/config")["oauth_completion"].(string)
	t.Cleanup(func() { s.mustCLI(t, "write", "connect/config", "oauth_completion="+was) })
	s.mustCLI(t, "write", "connect/config", "redirect_url="+callbackURL(s), "allowed_return_urls="+app.URL+"/done")

	s.mustCLI(t, "write", "connect/integrations/vault-oidc", "auth_mode=OAUTH2",
		"client_id="+p.clientID, "client_secret="+p.clientSecret,
		"auth_url="+p.endpoint("authorization_endpoint"), "token_url="+p.endpoint("token_endpoint"),
		"scopes=openid,e2e-oidc-user", "allowed_hosts=127.0.0.1")
	t.Cleanup(func() {
		for _, id := range []string{"acme", "bob"} {
			s.cli(nil, "delete", "connect/connections/vault-oidc/"+id)
		}
		s.cli(nil, "delete", "connect/integrations/vault-oidc")
	})

	// connected checks what the connection holds after either completion.
	connected := func(id, access string) {
		t.Helper()
		noteSecrets(access)
		raw := data(t, s, "connect/connections/vault-oidc/"+id+"/raw")
		if raw["access_token"] != access || access == "" {
			t.Fatalf("%s: access token %v, completion gave %q", id, raw["access_token"], access)
		}
		resp, _ := raw["raw_token_response"].(map[string]any)
		idToken, _ := resp["id_token"].(string)
		p.checkIDToken(t, idToken)
		// The access token is Vault's: its userinfo endpoint answers for the user.
		status, body := s.rawAs(t, "", http.MethodGet, "identity/oidc/provider/"+p.name+"/userinfo", nil)
		if status == http.StatusOK {
			t.Fatalf("userinfo without a token: %d %s", status, body)
		}
		req := mustRequest(t, http.MethodGet, p.endpoint("userinfo_endpoint"))
		req.Header.Set("Authorization", "Bearer "+access)
		r, info := pageDo(t, req)
		if r.StatusCode != http.StatusOK || !strings.Contains(info, p.entityID) {
			t.Fatalf("%s: userinfo with the stored token: %d %s", id, r.StatusCode, info)
		}
	}

	t.Run("application", func(t *testing.T) {
		s.mustCLI(t, "write", "connect/config", "oauth_completion=application")
		const binding = "e2e-oidc-session-hmac-424242"
		noteSecrets(binding)
		authURL := s.mustCLI(t, "write", "-field=authorization_url", "connect/connections/vault-oidc/acme/authorize",
			"return_url="+app.URL+"/done", "browser_binding="+binding)
		resp, body := pageDo(t, mustRequest(t, http.MethodGet, p.approve(t, s, authURL)))
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Host != strings.TrimPrefix(app.URL, "http://") {
			t.Fatalf("callback: %d Location %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		if out := s.failCLI(t, "read", "connect/connections/vault-oidc/acme"); !strings.Contains(out, "No value found") {
			t.Fatalf("the callback stored the connection: %s", out)
		}
		access := s.mustCLI(t, "write", "-field=access_token", "connect/connections/vault-oidc/acme/complete",
			"completion="+loc.Query().Get("connect_completion"), "browser_binding="+binding)
		connected("acme", access)
	})

	t.Run("callback", func(t *testing.T) {
		s.mustCLI(t, "write", "connect/config", "oauth_completion=callback")
		authURL := s.mustCLI(t, "write", "-force", "-field=authorization_url", "connect/connections/vault-oidc/bob/authorize")
		resp, body := pageDo(t, mustRequest(t, http.MethodGet, p.approve(t, s, authURL)))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Connected") {
			t.Fatalf("callback page: %d %s", resp.StatusCode, body)
		}
		connected("bob", s.mustCLI(t, "read", "-field=access_token", "connect/connections/vault-oidc/bob"))
	})
}
