// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"errors"
	"strings"
	"testing"
)

func TestExpandURL(t *testing.T) {
	tmpl := "https://${connectionConfig.subdomain}.zendesk.test/oauth/${connectionConfig.path_part}/tokens"
	got, err := ExpandURL("token_url", tmpl, map[string]any{"subdomain": "acme-eu", "path_part": "v2"})
	if err != nil || got != "https://acme-eu.zendesk.test/oauth/v2/tokens" {
		t.Fatalf("ExpandURL = %q, %v", got, err)
	}
	if got, _ := ExpandURL("token_url", "https://plain.test/t", nil); got != "https://plain.test/t" {
		t.Fatalf("plain URL changed: %q", got)
	}
	bad := []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"path_part": "v2"}, "connection_config.subdomain is required"},
		{map[string]any{"subdomain": "", "path_part": "v2"}, "connection_config.subdomain is required"},
		// Values that would move the request to another host.
		{map[string]any{"subdomain": "evil.test/x?", "path_part": "v2"}, "must be letters"},
		{map[string]any{"subdomain": "evil.test#", "path_part": "v2"}, "must be letters"},
		{map[string]any{"subdomain": "user@evil.test", "path_part": "v2"}, "must be letters"},
		{map[string]any{"subdomain": "acme", "path_part": "../../x"}, "must be letters"},
	}
	for _, tc := range bad {
		_, err := ExpandURL("token_url", tmpl, tc.cfg)
		var bc *ConfigError
		if !errors.As(err, &bc) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ExpandURL(%v) error = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestValidateURLTemplate(t *testing.T) {
	if err := ValidateURLTemplate("auth_url", "https://${connectionConfig.subdomain}.okta.test/oauth2/v1/authorize"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"https://${connectionConfig.a b}.test/", "https://${env}.test/", "${connectionConfig.host}/path"} {
		if err := ValidateURLTemplate("auth_url", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestResolveEndpointsAndHostOf(t *testing.T) {
	ep, err := ResolveEndpoints(Endpoints{Token: "https://${connectionConfig.sub}.example.test/t", Auth: "https://login.example.test/a"}, map[string]any{"sub": "acme"})
	if err != nil || ep.Token != "https://acme.example.test/t" || ep.Auth != "https://login.example.test/a" || ep.Revocation != "" {
		t.Fatalf("ResolveEndpoints = %+v, %v", ep, err)
	}
	if got := HostOf("https://${connectionConfig.sub}.Example.test/t"); got != "https://{sub}.example.test" {
		t.Fatalf("HostOf = %q", got)
	}
	if HostOf("") != "" {
		t.Fatal("HostOf of nothing")
	}
}

func TestGrantedScopes(t *testing.T) {
	for in, want := range map[string]string{"": "", "a b": "a|b", "a,b": "a|b", " a  b ": "a|b"} {
		got := strings.Join(GrantedScopes(map[string]any{"scope": in}), "|")
		if got != want {
			t.Errorf("GrantedScopes(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestURLsWithUserInfoAreRefused(t *testing.T) {
	for _, u := range []string{"https://user@evil.test/t", "https://a:b@${connectionConfig.sub}.example.test/t"} {
		if ValidateURLTemplate("token_url", u) == nil {
			t.Errorf("%q accepted", u)
		}
	}
	if got := HostOf("https://u@h.example.test/x"); got != "https://h.example.test" {
		t.Fatalf("HostOf = %q", got)
	}
}

func TestURLAlternatives(t *testing.T) {
	tmpl := "https://${connectionConfig.hostname}/services/oauth2/token || https://login.salesforce.test/services/oauth2/token"
	if err := ValidateURLTemplate("token_url", tmpl); err != nil {
		t.Fatal(err)
	}
	got, err := ExpandURL("token_url", tmpl, map[string]any{"hostname": "acme.my.salesforce.test"})
	if err != nil || got != "https://acme.my.salesforce.test/services/oauth2/token" {
		t.Fatalf("with hostname: %q, %v", got, err)
	}
	got, err = ExpandURL("token_url", tmpl, map[string]any{"hostname": ""})
	if err != nil || got != "https://login.salesforce.test/services/oauth2/token" {
		t.Fatalf("fallback: %q, %v", got, err)
	}
	// A value that is there but not allowed is refused, not skipped.
	if _, err := ExpandURL("token_url", tmpl, map[string]any{"hostname": "evil.test/x"}); err == nil {
		t.Fatal("bad hostname fell back silently")
	}
	both := "https://${connectionConfig.region}.api.test || https://${connectionConfig.sub}.api.test"
	if _, err := ExpandURL("api_base_url", both, nil); err == nil || !strings.Contains(err.Error(), "connection_config.region is required") {
		t.Fatalf("no alternative fits: %v", err)
	}
	if got := RequiredPlaceholders(both); len(got) != 1 || got[0] != "sub" {
		t.Fatalf("RequiredPlaceholders = %v", got)
	}
	if RequiredPlaceholders(tmpl) != nil {
		t.Fatal("a fallback without placeholders requires none")
	}
	if got := HostOf(tmpl); got != "https://{hostname} || https://login.salesforce.test" {
		t.Fatalf("HostOf = %q", got)
	}
	for _, bad := range []string{"https://a.test || ", "https://a.test || ftp://b.test", "|| https://a.test"} {
		if ValidateURLTemplate("token_url", bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestClientURLMayBeAWholeURL(t *testing.T) {
	tmpl := "${connectionConfig.instance_url}/services/data"
	if ValidateURLTemplate("api_base_url", tmpl) == nil {
		t.Fatal("a whole-URL placeholder is accepted where secrets are sent")
	}
	if err := ValidateClientURLTemplate("api_base_url", tmpl); err != nil {
		t.Fatal(err)
	}
	got, err := ExpandClientURL("api_base_url", tmpl, map[string]any{"instance_url": "https://acme.my.salesforce.test/"})
	if err != nil || got != "https://acme.my.salesforce.test/services/data" {
		t.Fatalf("ExpandClientURL = %q, %v", got, err)
	}
	if _, err := ExpandURL("api_base_url", tmpl, map[string]any{"instance_url": "https://acme.my.salesforce.test"}); err == nil {
		t.Fatal("ExpandURL took a whole URL")
	}
	for _, bad := range []string{"http://plain.test", "https://u:p@evil.test", "https://evil.test/?q=1", "javascript:alert(1)"} {
		if _, err := ExpandClientURL("api_base_url", tmpl, map[string]any{"instance_url": bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Only a placeholder that starts the URL may hold one.
	if _, err := ExpandClientURL("api_base_url", "https://api.test/${connectionConfig.p}", map[string]any{"p": "https://evil.test"}); err == nil {
		t.Fatal("a whole URL inside a path accepted")
	}
}
