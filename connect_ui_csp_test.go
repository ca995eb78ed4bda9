// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"slices"
	"testing"
)

// TestAuthorizationSourcesKeepThePort: a CSP source without a port allows
// only the scheme's default port, so the form that starts consent at an
// authorization URL on another port must name that port, or the browser
// blocks the redirect to it. A placeholder never sets the port (the egress
// rule), so the template's literal port is the one.
func TestAuthorizationSourcesKeepThePort(t *testing.T) {
	for _, tc := range []struct {
		authURL string
		allowed []string
		want    []string
	}{
		{"https://auth.example.com/authorize", nil, []string{"https://auth.example.com"}},
		{"http://127.0.0.1:8443/authorize", nil, []string{"http://127.0.0.1:8443"}},
		{"http://127.0.0.1:8443/t/${connectionConfig.subdomain}/authorize", nil, []string{"http://127.0.0.1:8443"}},
		{"https://${connectionConfig.subdomain}.zendesk.com/oauth/authorizations/new", nil, []string{"https://*.zendesk.com"}},
		{"https://${connectionConfig.subdomain}.example.com:8443/authorize", nil, []string{"https://*.example.com:8443"}},
		{"https://${connectionConfig.domain}/authorize", []string{"*.okta.com"}, []string{"https://*.okta.com"}},
	} {
		in := &integrationEntry{AuthMode: authModeOAuth2}
		in.AuthURL, in.AllowedHosts = tc.authURL, tc.allowed
		got := authorizationSources(in)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.authURL, got, tc.want)
		}
	}
}
