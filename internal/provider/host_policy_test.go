// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

func TestHostPolicyMatchesWholeLabels(t *testing.T) {
	p := NewHostPolicy([]string{
		"https://${connectionConfig.subdomain}.zendesk.com/oauth/tokens",
		"https://${connectionConfig.env}-api.paddle.com || https://api.paddle.com",
		"https://login.microsoftonline.com/${connectionConfig.tenant}/token",
		"https://${connectionConfig.domain}/oauth2/token",
	}, []string{"*.okta.com", "gitlab.acme.internal"})
	for host, want := range map[string]bool{
		"acme.zendesk.com":            true,
		"a.b.zendesk.com":             true,
		"ACME.Zendesk.com.":           true,
		"zendesk.com":                 false,
		"evilzendesk.com":             false,
		"zendesk.com.attacker.test":   false,
		"sandbox-api.paddle.com":      true,
		"api.paddle.com":              true,
		"login.microsoftonline.com":   true,
		"x.login.microsoftonline.com": false,
		"acme.okta.com":               true,
		"okta.com":                    false,
		"acme.okta.com.evil.test":     false,
		"gitlab.acme.internal":        true,
		"x.gitlab.acme.internal":      false,
		"":                            false,
	} {
		if got := p.Allows(host); got != want {
			t.Errorf("Allows(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestTemplateEgressValidation(t *testing.T) {
	for tmpl, ok := range map[string]bool{
		"https://api.github.com/app":                          true,
		"https://${connectionConfig.subdomain}.zendesk.com/x": true,
		"https://api.${connectionConfig.region}.intercom.io":  true,
		"https://${connectionConfig.domain}/oauth2/token":     false,
		"${connectionConfig.instance_url}/services/data":      false,
		"https://api.${connectionConfig.site}":                false,
		"https://${connectionConfig.shop}.myshopify.com":      false, // a private public suffix
		"https://${connectionConfig.user}.github.io":          false,
		"https://${connectionConfig.x}.co.uk/t":               false,
		"https://${connectionConfig.a}zendesk.com/t":          false,
		"https://login.example.com:${connectionConfig.port}/": false,
	} {
		err := ValidateTemplateEgress("token_url", tmpl, nil)
		if (err == nil) != ok {
			t.Errorf("ValidateTemplateEgress(%q) = %v, want ok=%v", tmpl, err, ok)
		}
	}
	if err := ValidateTemplateEgress("token_url", "https://${connectionConfig.domain}/t", []string{"*.okta.com"}); err != nil {
		t.Errorf("declared hosts: %v", err)
	}
}

// The client sends nothing through Endpoints that ResolveEndpoints did not
// make, and nothing to a host outside their policy, whatever URL a caller
// puts in them.
func TestClientSendsOnlyWithinThePolicy(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	c := testClient(time.Second)
	app := appOf(srv)
	rt := srv.IssueRefreshToken()
	handBuilt := Endpoints{Token: srv.TokenURL(), Revocation: srv.RevocationURL(), APIBase: srv.URL}
	elsewhere := endpointsOf(srv)
	elsewhere.Token = strings.Replace(srv.TokenURL(), "127.0.0.1", "localhost", 1)
	elsewhere.Revocation = strings.Replace(srv.RevocationURL(), "127.0.0.1", "localhost", 1)
	elsewhere.APIBase = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for name, ep := range map[string]Endpoints{"hand-built": handBuilt, "edited": elsewhere} {
		calls := map[string]func() error{
			"refresh": func() error { _, err := c.Refresh(context.Background(), app, ep, rt); return err },
			"client credentials": func() error {
				_, err := c.ClientCredentials(context.Background(), app, ep, nil)
				return err
			},
			"code exchange": func() error {
				_, err := c.ExchangeCode(context.Background(), app, ep, "https://r.test/cb", "code", "")
				return err
			},
			"revocation": func() error { return c.Revoke(context.Background(), app, ep, rt, "refresh_token") },
			"installation": func() error {
				_, err := c.InstallationToken(context.Background(), App{AppID: "1", PrivateKey: testAppKey(t)}, ep, "1")
				return err
			},
		}
		for grant, call := range calls {
			var ee *EgressError
			if err := call(); !errors.As(err, &ee) {
				t.Errorf("%s %s: error %v, want an EgressError", name, grant, err)
			}
		}
	}
	if n := srv.Requests(); n != 0 {
		t.Fatalf("the provider received %d requests", n)
	}
	// The transport refuses a request made without a policy, whoever makes it.
	req, _ := http.NewRequest(http.MethodPost, srv.TokenURL(), nil)
	if _, err := (egressGuard{}).RoundTrip(req); err == nil {
		t.Fatal("the transport sent a request without a policy")
	}
}

func TestResolveEndpointsRefusesConfigHosts(t *testing.T) {
	templates := Endpoints{Token: "https://${connectionConfig.domain}/oauth2/token", AllowedHosts: []string{"*.okta.com"}}
	if _, err := ResolveEndpoints(templates, map[string]any{"domain": "acme.okta.com"}); err != nil {
		t.Fatal(err)
	}
	_, err := ResolveEndpoints(templates, map[string]any{"domain": "attacker.example"})
	var ee *EgressError
	if !errors.As(err, &ee) || !strings.Contains(err.Error(), "connection_config.domain") {
		t.Fatalf("ResolveEndpoints towards attacker.example: %v", err)
	}
	if !PatternCovered("*.eu.okta.com", []string{"*.okta.com"}) || PatternCovered("*.okta.com", []string{"*.eu.okta.com"}) || PatternCovered("*.evil.test", []string{"*.okta.com"}) {
		t.Fatal("PatternCovered")
	}
}

// Hosts that are not DNS names of whole labels never match a *.domain
// pattern: an IPv6 literal with a zone id ending in the domain dials the
// IP.
func TestHostPolicyRefusesLookAlikeHosts(t *testing.T) {
	p := NewHostPolicy(nil, []string{"*.my.salesforce.com", "login.salesforce.com"})
	for _, h := range []string{"::ffff:1.2.3.4%x.my.salesforce.com", "a_b.my.salesforce.com", "login.salesforce.com%x", "a%2e.my.salesforce.com"} {
		if p.Allows(h) {
			t.Errorf("Allows(%q)", h)
		}
	}
	if isPlainHTTPSURL("https://[::ffff:1.2.3.4%25x.acme-saas.com]") {
		t.Error("a bracketed host with a zone is a plain https URL")
	}
	if NewHostPolicy([]string{"https://${connectionConfig.x}.0.0.1/t"}, nil).Allows("10.0.0.1") {
		t.Error("a template under 0.0.1 allows the IP 10.0.0.1")
	}
}

// A pattern or template suffix under a wildcard public-suffix rule
// (*.kobe.jp: every <x>.kobe.jp is a public suffix) covers other owners.
func TestPublicSuffixWildcardRules(t *testing.T) {
	if err := ValidateHostPatterns("allowed_hosts", []string{"*.kobe.jp"}); err == nil {
		t.Error("*.kobe.jp accepted")
	}
	if err := ValidateHostPatterns("allowed_hosts", []string{"*.city.kobe.jp"}); err != nil {
		t.Errorf("*.city.kobe.jp (an exception to the rule) refused: %v", err)
	}
	if pat, ok := impliedPattern("${connectionConfig.x}.kobe.jp"); ok {
		t.Errorf("a placeholder under kobe.jp implies %s", pat)
	}
	if _, ok := impliedPattern("${connectionConfig.x}.0.0.1"); ok {
		t.Error("a placeholder under a numeric suffix implies a pattern")
	}
}

// An EgressError names the field and keys, never the config's value.
func TestEgressErrorQuotesNoValue(t *testing.T) {
	err := CheckConfigHosts(Endpoints{Token: "https://${connectionConfig.d}/t", AllowedHosts: []string{"*.okta.com"}}, map[string]any{"d": "secret-looking.example"})
	if err == nil || strings.Contains(err.Error(), "secret-looking") || !strings.Contains(err.Error(), "connection_config.d") {
		t.Fatalf("error = %v", err)
	}
}

// A client-only api_base_url does not take part in the plugin's own
// requests: a whole URL there (Salesforce's instance_url) does not stop a
// refresh.
func TestClientAPIBaseDoesNotBlockResolve(t *testing.T) {
	templates := Endpoints{Token: "https://login.salesforce.com/token", APIBase: "${connectionConfig.instance_url}", ClientAPIBase: true,
		AllowedHosts: []string{"*.my.salesforce.com"}}
	ep, err := ResolveEndpoints(templates, map[string]any{"instance_url": "https://acme.my.salesforce.com"})
	if err != nil || ep.APIBase != "" {
		t.Fatalf("ResolveEndpoints = %+v, %v", ep, err)
	}
}
