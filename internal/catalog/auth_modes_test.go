// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"reflect"
	"strings"
	"testing"
)

// An auth mode is read in any case and with spaces around it; anything
// else is refused with the list of modes.
func TestParseAuthMode(t *testing.T) {
	for in, want := range map[string]AuthMode{"oauth2": OAuth2, " OAUTH2_CC ": OAuth2CC, "api_key": APIKey, "App": App} {
		if got, err := ParseAuthMode(in); err != nil || got != want {
			t.Errorf("ParseAuthMode(%q) = %q, %v", in, got, err)
		}
	}
	_, err := ParseAuthMode("oauth")
	if err == nil || !strings.Contains(err.Error(), "OAUTH2, OAUTH2_CC, API_KEY, BASIC, CUSTOM, APP") {
		t.Fatalf("err = %v", err)
	}
}

// What each mode does with tokens decides who obtains and renews them.
func TestAuthModeTokenRoles(t *testing.T) {
	for _, tc := range []struct {
		m                        AuthMode
		oauth, tokens, issuesOwn bool
	}{
		{OAuth2, true, true, false}, {OAuth2CC, true, true, true}, {App, false, true, true},
		{APIKey, false, false, false}, {Basic, false, false, false}, {Custom, false, false, false},
	} {
		if tc.m.IsOAuth() != tc.oauth || tc.m.HasTokens() != tc.tokens || tc.m.IssuesOwnTokens() != tc.issuesOwn {
			t.Errorf("%s: IsOAuth %v HasTokens %v IssuesOwnTokens %v", tc.m, tc.m.IsOAuth(), tc.m.HasTokens(), tc.m.IssuesOwnTokens())
		}
	}
}

// A write's keys that belong to another mode are named, sorted; keys no
// mode owns (metadata) are not.
func TestFieldsNotFor(t *testing.T) {
	raw := map[string]any{"client_secret": "x", "auth_url": "u", "api_base_url": "b", "private_key": "k"}
	if got := IntegrationFieldsNotFor(OAuth2CC, raw); !reflect.DeepEqual(got, []string{"auth_url", "private_key"}) {
		t.Errorf("IntegrationFieldsNotFor = %v", got)
	}
	conn := map[string]any{"api_key": "k", "refresh_token": "r", "metadata": map[string]any{}, "password": "p"}
	if got := ConnectionFieldsNotFor(Basic, conn); !reflect.DeepEqual(got, []string{"api_key", "refresh_token"}) {
		t.Errorf("ConnectionFieldsNotFor = %v", got)
	}
	if got := NotApply([]string{"a"}); got != "a does not apply" {
		t.Errorf("NotApply = %q", got)
	}
	if got := NotApply([]string{"a", "b"}); got != "a, b do not apply" {
		t.Errorf("NotApply = %q", got)
	}
}
