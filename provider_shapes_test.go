// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// Provider definitions in the shapes real catalogs publish, each written
// through the API and taken through its flow against the loopback OAuth
// server, asserting what the provider received.

// shapeEnv is a backend whose mount has a redirect_url registered with a
// fresh loopback OAuth server.
func shapeEnv(t *testing.T) (*testEnv, *oauthtest.Server) {
	t.Helper()
	srv := oauthtest.New()
	t.Cleanup(srv.Close)
	e := newTestEnv(t)
	srv.RegisterRedirectURI(testRedirectURL)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL})
	return e, srv
}

// A provider that states response_type=code in auth_params, as about a
// quarter of a large open catalog does, is accepted; the parameter is sent
// once, with the flow's value; any other value is still refused by name.
func TestAuthParamsMayRestateResponseTypeCode(t *testing.T) {
	e, srv := shapeEnv(t)
	e.mustDo(logical.CreateOperation, "providers/restating", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": srv.AuthURL(), "token_url": srv.TokenURL(),
		"auth_params": map[string]any{"response_type": "code", "prompt": "consent"},
	})
	e.mustDo(logical.CreateOperation, "integrations/r", map[string]any{
		"provider": "restating", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
	})
	q := consent(t, e, "connections/r/acme/authorize", nil)
	sent := srv.LastAuthorize()
	if got := sent["response_type"]; len(got) != 1 || got[0] != "code" || sent.Get("prompt") != "consent" {
		t.Fatalf("authorization request = %v", sent)
	}
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	if srv.LastForm().Get("grant_type") != "authorization_code" {
		t.Fatalf("exchange form = %v", srv.LastForm())
	}
	raw := e.mustDo(logical.ReadOperation, "connections/r/acme/raw", nil)
	if !srv.AccessTokenValid(raw["access_token"].(string)) {
		t.Fatal("stored access token was not issued by the server")
	}

	before := e.snapshot()
	e.assertRejected([]rejection{
		{"integration, another value", "integrations/r", map[string]any{"auth_params": map[string]any{"response_type": "token"}}, "response_type"},
		{"provider, another value", "providers/restating", map[string]any{"auth_params": map[string]any{"response_type": "code id_token"}}, "response_type"},
		{"provider, other case", "providers/other", map[string]any{"auth_mode": "OAUTH2", "auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "auth_params": map[string]any{"response_type": "CODE"}}, "response_type"},
	}, "no-secret-here")
	e.assertUnchanged(before)
	if msg := e.mustFail(logical.UpdateOperation, "integrations/r", map[string]any{"auth_params": map[string]any{"response_type": "token"}}, http.StatusBadRequest); !strings.Contains(msg, "code") {
		t.Fatalf("error %q does not say which value the flow sends", msg)
	}
}

// Token parameters filled from each connection's config (Auth0's
// audience): sent in the client-credentials request, the code exchange
// and every refresh of that connection; a config change that changes them
// gets a new token; their keys count as required; a value that is not
// printable text, or a placeholder of another kind, is a 400 naming it.
// audienceSchema pins the audience a customer may choose.
var audienceSchema = map[string]any{"audience": map[string]any{"type": "string", "pattern": `https://\S+`}}

func TestTemplatedTokenParams(t *testing.T) {
	e, srv := shapeEnv(t)
	params := map[string]any{"audience": "${connectionConfig.audience}", "resource": "urn:fixed"}
	e.mustDo(logical.CreateOperation, "providers/audienced-cc", map[string]any{
		"auth_mode": "OAUTH2_CC", "token_url": srv.TokenURL(), "token_params": params,
		"connection_config_schema": audienceSchema,
	})
	if keys := e.mustDo(logical.ReadOperation, "providers/audienced-cc", nil)["required_config_keys"].([]string); strings.Join(keys, ",") != "audience" {
		t.Fatalf("required_config_keys = %v", keys)
	}
	e.mustDo(logical.CreateOperation, "integrations/cc", map[string]any{
		"provider": "audienced-cc", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
	})
	msg := e.mustFail(logical.CreateOperation, "connections/cc/none", nil, http.StatusBadRequest)
	if !strings.Contains(msg, "connection_config.audience is required") {
		t.Fatalf("error = %q", msg)
	}

	e.mustDo(logical.CreateOperation, "connections/cc/acme", map[string]any{"connection_config": map[string]any{"audience": "https://api.acme.test/"}})
	if f := srv.LastForm(); f.Get("grant_type") != "client_credentials" || f.Get("audience") != "https://api.acme.test/" || f.Get("resource") != "urn:fixed" {
		t.Fatalf("client credentials form = %v", f)
	}
	first := e.mustDo(logical.ReadOperation, "connections/cc/acme", nil)["access_token"]
	// Another audience: the token held was issued for the old one.
	e.mustDo(logical.PatchOperation, "connections/cc/acme/config", map[string]any{"audience": "https://api2.acme.test/"})
	if srv.LastForm().Get("audience") != "https://api2.acme.test/" {
		t.Fatalf("after a config change: form = %v", srv.LastForm())
	}
	if e.mustDo(logical.ReadOperation, "connections/cc/acme", nil)["access_token"] == first {
		t.Fatal("a token issued for the old audience is still served")
	}

	// Authorization code: the exchange and each refresh carry it too.
	e.mustDo(logical.CreateOperation, "providers/audienced", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "token_params": params,
		"connection_config_schema": map[string]any{"audience": map[string]any{"type": "string", "secret": true, "pattern": `https://\S+`}},
	})
	e.mustDo(logical.CreateOperation, "integrations/ac", map[string]any{
		"provider": "audienced", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
	})
	q := consent(t, e, "connections/ac/acme/authorize", map[string]any{"connection_config": map[string]any{"audience": "https://api.acme.test/"}})
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	if f := srv.LastForm(); f.Get("grant_type") != "authorization_code" || f.Get("audience") != "https://api.acme.test/" {
		t.Fatalf("exchange form = %v", f)
	}
	e.mustDo(logical.UpdateOperation, "connections/ac/acme/refresh", nil)
	if f := srv.LastForm(); f.Get("grant_type") != "refresh_token" || f.Get("audience") != "https://api.acme.test/" || f.Get("resource") != "urn:fixed" {
		t.Fatalf("refresh form = %v", f)
	}

	// Authorize refuses a connection the code exchange could not serve,
	// before the customer consents.
	e.mustDo(logical.CreateOperation, "integrations/ac-bare", map[string]any{
		"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "token_params": params,
		"connection_config_schema": audienceSchema,
	})
	// A token parameter the customer chooses must be pinned by the schema.
	if msg := e.mustFail(logical.CreateOperation, "integrations/ac-unpinned", map[string]any{
		"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "token_params": params,
	}, http.StatusBadRequest); !strings.Contains(msg, "connection_config_schema.audience") {
		t.Fatalf("an unpinned token parameter: %q", msg)
	}
	if msg := e.mustFail(logical.UpdateOperation, "connections/ac-bare/acme/authorize", nil, http.StatusBadRequest); !strings.Contains(msg, "connection_config.audience is required") {
		t.Fatalf("authorize without the key: %q", msg)
	}

	before := e.snapshot()
	e.assertRejected([]rejection{
		{"CR LF in the value", "connections/cc/acme/config", map[string]any{"audience": "https://a.test/\r\nX-Injected: secret-marker"}, "connection_config.audience"},
		{"over the bound", "connections/cc/acme/config", map[string]any{"audience": strings.Repeat("a", 1025) + "secret-marker"}, "connection_config.audience"},
		{"a credential placeholder", "providers/audienced", map[string]any{"token_params": map[string]any{"audience": "${credentials.secret}"}}, "token_params.audience"},
		{"an unknown placeholder", "integrations/ac", map[string]any{"token_params": map[string]any{"audience": "${step1.audience}"}}, "token_params.audience"},
		{"an unclosed placeholder", "integrations/ac", map[string]any{"token_params": map[string]any{"audience": "${connectionConfig.audience"}}, "token_params.audience"},
	}, "secret-marker")
	e.assertUnchanged(before)
	e.assertNoSecretLogged(srv.ClientSecret)
}

// eBay wants its RuName, not a URL, as redirect_uri: redirect_uri_value is
// sent in its place in the authorization request and the code exchange,
// while the browser still comes back to the mount's callback, through the
// provider's own record of the name. The value must be a name, not a URL.
func TestRedirectURIValueThatIsNotAURL(t *testing.T) {
	e, srv := shapeEnv(t)
	const ruName = "Acme_Corp-AcmeApp-PRD-1a2b3c4d5-6e7f8a9b"
	srv.RegisterRedirectName(ruName, testRedirectURL)
	e.mustDo(logical.CreateOperation, "providers/runame", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": srv.AuthURL(), "token_url": srv.TokenURL(),
		"redirect_uri_value": ruName,
	})
	e.mustDo(logical.CreateOperation, "integrations/eb", map[string]any{
		"provider": "runame", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
	})
	in := e.mustDo(logical.ReadOperation, "integrations/eb", nil)
	if in["redirect_uri_value"] != ruName || in["sources"].(map[string]string)["redirect_uri_value"] != "provider" {
		t.Fatalf("integration = %v", in)
	}
	q := consent(t, e, "connections/eb/acme/authorize", nil) // checks the browser came back to the callback
	if got := srv.LastAuthorize()["redirect_uri"]; len(got) != 1 || got[0] != ruName {
		t.Fatalf("authorization request redirect_uri = %v", got)
	}
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	if f := srv.LastForm(); f.Get("grant_type") != "authorization_code" || f.Get("redirect_uri") != ruName {
		t.Fatalf("exchange form = %v", f)
	}
	raw := e.mustDo(logical.ReadOperation, "connections/eb/acme/raw", nil)
	if !srv.AccessTokenValid(raw["access_token"].(string)) {
		t.Fatal("stored access token was not issued by the server")
	}

	before := e.snapshot()
	e.assertRejected([]rejection{
		{"a URL", "integrations/eb", map[string]any{"redirect_uri_value": "https://elsewhere.test/callback"}, "redirect_uri_value"},
		{"white space", "integrations/eb", map[string]any{"redirect_uri_value": "Acme Corp"}, "redirect_uri_value"},
		{"a control character", "providers/runame", map[string]any{"redirect_uri_value": "Acme\r\nX: y"}, "redirect_uri_value"},
		{"too long", "providers/runame", map[string]any{"redirect_uri_value": strings.Repeat("a", 300)}, "redirect_uri_value"},
		{"not for client credentials", "integrations/cc2", map[string]any{"auth_mode": "OAUTH2_CC", "client_id": "c", "client_secret": "s", "token_url": srv.TokenURL(), "redirect_uri_value": ruName}, "redirect_uri_value"},
	}, "no-secret-here")
	e.assertUnchanged(before)
}

// A URL template may not put the OAuth parameters the flow sets into its
// query: a value there (the customer's, through a placeholder) would come
// before the flow's own, and many servers take the first.
func TestReservedParamsInURLQueriesAreRefused(t *testing.T) {
	e, srv := shapeEnv(t)
	for field, tmpl := range map[string]string{
		"auth_url":       srv.AuthURL() + "?scope=${connectionConfig.s}",
		"token_url":      srv.TokenURL() + "?grant_type=password",
		"refresh_url":    srv.TokenURL() + "?refresh_token=${connectionConfig.r}",
		"revocation_url": srv.RevocationURL() + "?client_secret=x",
	} {
		body := map[string]any{"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
			"auth_url": srv.AuthURL(), "token_url": srv.TokenURL()}
		body[field] = tmpl
		msg := e.mustFail(logical.CreateOperation, "integrations/tq", body, http.StatusBadRequest)
		if !strings.Contains(msg, field) {
			t.Errorf("%s: error %q does not name the field", field, msg)
		}
	}
	e.mustDo(logical.CreateOperation, "integrations/tq", map[string]any{"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"auth_url": srv.AuthURL() + "?prompt=consent", "token_url": srv.TokenURL()})
}

// Values the callback copies meet the token-parameter check like any other
// config write: refused at the callback, not a failed refresh later.
func TestCallbackValuesMeetTheParamCheck(t *testing.T) {
	e, srv := shapeEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/qb", map[string]any{
		"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "callback_config": "realmId",
		"refresh_params":           map[string]any{"realm": "${connectionConfig.realmId}"},
		"connection_config_schema": map[string]any{"realmId": map[string]any{"pattern": ".+"}}})
	srv.SetCallbackExtras(url.Values{"realmId": {"123\u2028456"}})
	q := consent(t, e, "connections/qb/acme/authorize", map[string]any{"connection_config": map[string]any{"realmId": "1"}})
	if status, page, _ := callback(e, q); status != http.StatusBadRequest || !strings.Contains(page, "realmId") {
		t.Fatalf("callback carrying a realmId the parameter check refuses: %d %s", status, page)
	}
}

// The placeholder shapes a real catalog uses, through a whole flow against
// the loopback provider: a placeholder with other text in a path segment
// (the tenant "acme-eu") and one in the authorization URL's query, whose
// value is escaped so that it can add no parameter.
func TestPlaceholderShapesThroughTheFlow(t *testing.T) {
	e, srv := shapeEnv(t)
	base := srv.URL + "/t/${connectionConfig.tenant}-eu"
	e.mustDo(logical.CreateOperation, "providers/shaped", map[string]any{
		"auth_mode": "OAUTH2", "auth_url": base + "/authorize?login_hint=${connectionConfig.hint}", "token_url": base + "/token",
		"revocation_url": base + "/revoke",
		"connection_config_schema": map[string]any{
			"tenant": map[string]any{"pattern": "[a-z]+"},
			"hint":   map[string]any{"optional": true},
		},
	})
	e.mustDo(logical.CreateOperation, "integrations/shaped", map[string]any{"provider": "shaped", "client_id": srv.ClientID, "client_secret": srv.ClientSecret})
	q := consent(t, e, "connections/shaped/acme/authorize", map[string]any{"connection_config": map[string]any{"tenant": "acme", "hint": "a b&prompt=none"}})
	authorize := srv.LastAuthorize()
	if srv.LastTenant() != "acme-eu" || authorize.Get("login_hint") != "a b&prompt=none" || authorize.Has("prompt") {
		t.Fatalf("authorize reached tenant %q with %v", srv.LastTenant(), authorize)
	}
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	if srv.LastTenant() != "acme-eu" {
		t.Fatalf("the code exchange went to tenant %q", srv.LastTenant())
	}
	tok := e.mustDo(logical.UpdateOperation, "connections/shaped/acme/refresh", nil)["access_token"].(string)
	if !srv.AccessTokenValid(tok) || srv.LastTenant() != "acme-eu" || srv.LastForm().Get("grant_type") != "refresh_token" {
		t.Fatal("the refresh did not reach the tenant's token endpoint")
	}
}

// A schema pattern that compiles alone but not anchored (Go's nesting
// limit) is refused at the write, and never lets a value through.
func TestSchemaPatternCompiledAsChecksUseIt(t *testing.T) {
	e, srv := shapeEnv(t)
	deep := strings.Repeat("(", 999) + `https://api\.acme\.test/` + strings.Repeat(")", 999)
	msg := e.mustFail(logical.CreateOperation, "integrations/deep", map[string]any{
		"auth_mode": "OAUTH2_CC", "client_id": srv.ClientID, "client_secret": srv.ClientSecret, "token_url": srv.TokenURL(),
		"token_params":             map[string]any{"audience": "${connectionConfig.audience}"},
		"connection_config_schema": map[string]any{"audience": map[string]any{"pattern": deep}},
	}, http.StatusBadRequest)
	if !strings.Contains(msg, "connection_config_schema.audience.pattern") {
		t.Fatalf("error = %q", msg)
	}
	if err := (catalog.SchemaField{Pattern: deep}).Check("https://any.example/"); err == nil {
		t.Fatal("a pattern that does not compile let a value through")
	}
}

// A placeholder may not name a query parameter: its value could name one
// the flow sends itself (redirect_uri), ahead of the flow's own.
func TestPlaceholderMayNotNameAQueryParameter(t *testing.T) {
	e, srv := shapeEnv(t)
	for field, tmpl := range map[string]string{
		"auth_url":  srv.AuthURL() + "?${connectionConfig.k}=${connectionConfig.v}",
		"token_url": srv.TokenURL() + "?x${connectionConfig.k}=1",
	} {
		body := map[string]any{"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
			"auth_url": srv.AuthURL(), "token_url": srv.TokenURL(),
			"connection_config_schema": map[string]any{"k": map[string]any{"enum": []any{"a"}}, "v": map[string]any{"enum": []any{"b"}}}}
		body[field] = tmpl
		if msg := e.mustFail(logical.CreateOperation, "integrations/qn", body, http.StatusBadRequest); !strings.Contains(msg, field) {
			t.Errorf("%s: error %q does not name the field", field, msg)
		}
	}
}

// A placeholder in the query of a URL a token request goes to acts as a
// token parameter: its key must be pinned by the schema too.
func TestTokenURLQueryPlaceholdersArePinned(t *testing.T) {
	e, srv := shapeEnv(t)
	body := map[string]any{"auth_mode": "OAUTH2_CC", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"token_url": srv.TokenURL() + "?audience=${connectionConfig.aud}"}
	if msg := e.mustFail(logical.CreateOperation, "integrations/tq", body, http.StatusBadRequest); !strings.Contains(msg, "connection_config_schema.aud") {
		t.Fatalf("error = %q", msg)
	}
	body["connection_config_schema"] = map[string]any{"aud": map[string]any{"enum": []any{"https://api.acme.test/"}}}
	e.mustDo(logical.CreateOperation, "integrations/tq", body)
}
