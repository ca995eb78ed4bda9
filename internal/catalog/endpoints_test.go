// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"reflect"
	"strings"
	"testing"
)

// An integration's non-empty settings win over its provider's; parameter
// maps merge key by key, and neither side is changed.
func TestOverriddenBy(t *testing.T) {
	off := false
	base := EndpointSettings{
		AuthURL: "https://p.example/auth", TokenURL: "https://p.example/token", Scopes: []string{"read"},
		TokenParams: map[string]string{"audience": "api", "resource": "r"}, PKCE: &off,
	}
	over := EndpointSettings{TokenURL: "https://own.example/token", TokenParams: map[string]string{"audience": "own"}}
	got := base.OverriddenBy(over)
	if got.AuthURL != base.AuthURL || got.TokenURL != over.TokenURL || !reflect.DeepEqual(got.Scopes, []string{"read"}) || got.UsesPKCE() {
		t.Fatalf("merged = %+v", got)
	}
	if want := map[string]string{"audience": "own", "resource": "r"}; !reflect.DeepEqual(got.TokenParams, want) {
		t.Fatalf("token_params = %v, want %v", got.TokenParams, want)
	}
	if base.TokenParams["audience"] != "api" || len(over.TokenParams) != 1 {
		t.Fatal("the merge changed its inputs")
	}
	if mergeMaps(nil, map[string]string{}) != nil {
		t.Fatal("two empty maps merge to a non-nil one")
	}
	if !(EndpointSettings{}).UsesPKCE() {
		t.Fatal("pkce unset must mean on")
	}
}

// SettingSources names, per setting with a value, who set it.
func TestSettingSources(t *testing.T) {
	own := EndpointSettings{TokenURL: "https://own.example/token"}
	base := EndpointSettings{AuthURL: "https://p.example/auth", TokenURL: "https://p.example/token"}
	got := SettingSources(own, base, "catalog")
	want := map[string]string{"auth_url": "catalog", "token_url": "integration"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SettingSources = %v, want %v", got, want)
	}
}

// Validate requires each mode's URLs and refuses what would send a code,
// a token or a secret elsewhere, naming the setting.
func TestEndpointSettingsValidate(t *testing.T) {
	pinned := ValueSchema{"tenant": {Pattern: "[a-z]+"}}
	for name, tc := range map[string]struct {
		es   EndpointSettings
		mode AuthMode
		want string
	}{
		"oauth2 complete":         {EndpointSettings{AuthURL: "https://p.example/a", TokenURL: "https://p.example/t"}, OAuth2, ""},
		"oauth2 without auth_url": {EndpointSettings{TokenURL: "https://p.example/t"}, OAuth2, "auth_url is required for auth_mode OAUTH2"},
		"cc without token_url":    {EndpointSettings{}, OAuth2CC, "token_url is required for auth_mode OAUTH2_CC"},
		"api key needs no url":    {EndpointSettings{}, APIKey, ""},
		"bad auth_style":          {EndpointSettings{TokenURL: "https://p.example/t", AuthStyle: "basic"}, OAuth2CC, "auth_style"},
		"bad request format":      {EndpointSettings{TokenURL: "https://p.example/t", TokenRequestFormat: "xml"}, OAuth2CC, "token_request_format"},
		"bad scope separator":     {EndpointSettings{TokenURL: "https://p.example/t", ScopeSeparator: "|"}, OAuth2CC, "scope_separator"},
		"callback copies state":   {EndpointSettings{AuthURL: "https://p.example/a", TokenURL: "https://p.example/t", CallbackConfig: []string{"state"}}, OAuth2, "callback_config"},
		"redirect value a url":    {EndpointSettings{AuthURL: "https://p.example/a", TokenURL: "https://p.example/t", RedirectURIValue: "https://x.example/cb"}, OAuth2, "not a URL"},
		"redirect value for cc":   {EndpointSettings{TokenURL: "https://p.example/t", RedirectURIValue: "name"}, OAuth2CC, "OAUTH2 only"},
		"unpinned token param":    {EndpointSettings{TokenURL: "https://p.example/t", TokenParams: map[string]string{"aud": "${connectionConfig.tenant}"}}, OAuth2CC, "connection_config_schema.tenant needs an enum or a pattern"},
		"pinned token param":      {EndpointSettings{TokenURL: "https://p.example/t", TokenParams: map[string]string{"aud": "${connectionConfig.tenant}"}, ConnectionConfigSchema: pinned}, OAuth2CC, ""},
		"host from config":        {EndpointSettings{TokenURL: "https://${connectionConfig.host}/t"}, OAuth2CC, "token_url"},
		"header for another mode": {EndpointSettings{RequestHeaders: map[string]string{"Authorization": "Bearer ${apiKey}"}}, Basic, "${apiKey} is not a credential of BASIC"},
	} {
		err := tc.es.Validate(tc.mode)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
}

// RedirectURI is redirect_uri_value when the provider registered a name,
// else the mount's callback.
func TestRedirectURI(t *testing.T) {
	if got := (EndpointSettings{}).RedirectURI("https://vault.example/cb"); got != "https://vault.example/cb" {
		t.Errorf("RedirectURI = %q", got)
	}
	if got := (EndpointSettings{RedirectURIValue: "Acme-RuName"}).RedirectURI("https://vault.example/cb"); got != "Acme-RuName" {
		t.Errorf("RedirectURI = %q", got)
	}
}

// RequiredConfigKeys are what every connection's config must give: the
// schema's required keys and the placeholders the URLs and token
// parameters cannot do without.
func TestRequiredConfigKeys(t *testing.T) {
	es := EndpointSettings{
		TokenURL:               "https://${connectionConfig.subdomain}.p.example/token",
		TokenParams:            map[string]string{"audience": "${connectionConfig.audience}"},
		ConnectionConfigSchema: ValueSchema{"region": {}, "port": {Optional: true}},
	}
	if got, want := es.RequiredConfigKeys(), []string{"audience", "region", "subdomain"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("RequiredConfigKeys = %v, want %v", got, want)
	}
}
