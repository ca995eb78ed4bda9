// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"errors"
	"strings"
	"testing"
)

// TestPlaceholderShapes: the placeholder shapes a large open catalog of
// provider definitions uses. The sane ones are accepted and expand to the
// URL the provider documents, still under the egress rule; the others are
// refused with an error naming the shape.
func TestPlaceholderShapes(t *testing.T) {
	accepted := []struct {
		name, tmpl string
		cfg        map[string]any
		want       string
	}{
		{"placeholder and text in one path segment", "https://api.example.com/v1/${connectionConfig.x}-api/token",
			map[string]any{"x": "acme"}, "https://api.example.com/v1/acme-api/token"},
		{"several placeholders in one host label", "https://${connectionConfig.resource}-${connectionConfig.environment}.adyen.com/oauth/token",
			map[string]any{"resource": "checkout", "environment": "live"}, "https://checkout-live.adyen.com/oauth/token"},
		{"text before a placeholder in a host label", "https://open${connectionConfig.subdomain}.ariba.com/token",
			map[string]any{"subdomain": "api-eu"}, "https://openapi-eu.ariba.com/token"},
		{"placeholders in two host labels", "https://${connectionConfig.instance}-login.${connectionConfig.region}.nexthink.cloud/oauth2/default/v1/token",
			map[string]any{"instance": "acme", "region": "eu"}, "https://acme-login.eu.nexthink.cloud/oauth2/default/v1/token"},
		{"a placeholder in the query string", "https://apis.paycor.com/sts/v1/common/token?subscription-key=${connectionConfig.subscriptionKey}",
			map[string]any{"subscriptionKey": "0f1e2d3c"}, "https://apis.paycor.com/sts/v1/common/token?subscription-key=0f1e2d3c"},
		{"a query value that needs escaping", "https://login.example.com/token?account=${connectionConfig.account}&v=2",
			map[string]any{"account": "ops@acme.test&admin=1 #x"}, "https://login.example.com/token?account=ops%40acme.test%26admin%3D1+%23x&v=2"},
		{"a key with '-', as callback parameters are named", "https://${connectionConfig.api-domain}.example.com/oauth/v2/token",
			map[string]any{"api-domain": "eu"}, "https://eu.example.com/oauth/v2/token"},
		{"a key with '.'", "https://sentry.io/api/0/sentry-app-installations/${connectionConfig.installation.uuid}/authorizations/",
			map[string]any{"installation.uuid": "a1b2-c3d4"}, "https://sentry.io/api/0/sentry-app-installations/a1b2-c3d4/authorizations/"},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			if err := ValidateURLTemplate("token_url", tc.tmpl); err != nil {
				t.Fatalf("refused: %v", err)
			}
			if err := ValidateTemplateEgress("token_url", tc.tmpl, nil); err != nil {
				t.Fatalf("egress: %v", err)
			}
			ep, err := ResolveEndpoints(Endpoints{Token: tc.tmpl}, tc.cfg)
			if err != nil || ep.Token != tc.want {
				t.Fatalf("ResolveEndpoints = %q, %v; want %q", ep.Token, err, tc.want)
			}
		})
	}

	refused := []struct{ name, tmpl, want string }{
		{"a placeholder in the port", "https://${connectionConfig.subdomain}.unipile.com:${connectionConfig.port}/t", "port"},
		{"a placeholder in user information", "https://${connectionConfig.user}@api.example.com/t", "user information"},
		{"a placeholder in the scheme", "${connectionConfig.scheme}://api.example.com/t", "scheme"},
		{"a placeholder in the fragment", "https://api.example.com/t#${connectionConfig.f}", "fragment"},
		{"a whole URL where secrets are sent", "${connectionConfig.appPublicLink}/installations/new", "whole URL"},
		{"a credential", "https://api.leapsome.com/v1/token?secret=${credentials.secret}", "credential"},
		{"an API key", "https://api.telegram.org/bot${apiKey}", "credential"},
		{"an earlier step's answer", "${step1.instance_url}/services/a360/token", "step1.instance_url"},
		{"a bare name", "https://cognito-${apiSubdomain}.amazonaws.com", "apiSubdomain"},
		{"a key with other characters", "https://${connectionConfig.a b}.example.com/t", "connection config key"},
		{"an unclosed placeholder", "https://${connectionConfig.sub.example.com/t", "not closed"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateURLTemplate("token_url", tc.tmpl)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "token_url") {
				t.Fatalf("error = %v, want one naming token_url and %q", err, tc.want)
			}
		})
	}
	// Client URLs take a whole URL at the start, and no more than that.
	if err := ValidateClientURLTemplate("api_base_url", "${connectionConfig.instance_url}/services/data"); err != nil {
		t.Fatal(err)
	}
	if err := ValidateClientURLTemplate("api_base_url", "https://${connectionConfig.subdomain}.unipile.com:${connectionConfig.port}"); err == nil || !strings.Contains(err.Error(), "port") {
		t.Fatalf("port in a client URL: %v", err)
	}
}

// TestQueryPlaceholderValues: a value in the query string is escaped, so
// it cannot add parameters or end the query; a control character or a
// value beyond the bound is refused by key, without quoting the value.
func TestQueryPlaceholderValues(t *testing.T) {
	tmpl := "https://login.example.com/token?account=${connectionConfig.account}"
	for _, bad := range []string{"a\r\nb", "a\x00b", strings.Repeat("a", 1025)} {
		_, err := ExpandURL("token_url", tmpl, map[string]any{"account": bad})
		var ce *ConfigError
		if err == nil || !strings.Contains(err.Error(), "connection_config.account") || strings.Contains(err.Error(), "aaaa") {
			t.Errorf("ExpandURL(%q) error = %v", bad, err)
		} else if !errors.As(err, &ce) {
			t.Errorf("not a ConfigError: %T", err)
		}
	}
	// The host keeps its stricter rule.
	if _, err := ExpandURL("token_url", "https://${connectionConfig.sub}.example.com/t?a=${connectionConfig.sub}", map[string]any{"sub": "x y"}); err == nil {
		t.Fatal("a host value with a space accepted because the query takes it")
	}
}
