// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"strings"
	"testing"
)

// A request header may use only the variables its mode's connections have.
func TestParseRequestHeader(t *testing.T) {
	for _, tc := range []struct {
		name, tmpl string
		mode       AuthMode
		want       string
	}{
		{"Authorization", "Bearer ${accessToken}", OAuth2, ""},
		{"Authorization", "Bearer ${accessToken}", APIKey, "${accessToken} is not a credential of API_KEY"},
		{"X-Key", "${credentials.key}", Custom, ""},
		{"X-Key", "${credentials.key}", Basic, "is for CUSTOM connections"},
		{"Bad Header", "x", APIKey, "is not an HTTP header name"},
	} {
		_, err := ParseRequestHeader(tc.name, tc.tmpl, tc.mode)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %s for %s: err = %v, want %q", tc.name, tc.tmpl, tc.mode, err, tc.want)
		}
	}
}

// credentials_schema may describe only its mode's credentials, under the
// schema's names.
func TestValidateUsageCredentialsSchema(t *testing.T) {
	for _, tc := range []struct {
		mode AuthMode
		s    ValueSchema
		want string
	}{
		{APIKey, ValueSchema{"api_key": {}}, ""},
		{APIKey, ValueSchema{"apiKey": {}}, "credentials_schema.apiKey: the credentials of API_KEY are api_key"},
		{Basic, ValueSchema{"username": {}, "password": {Secret: true}}, ""},
		{Custom, ValueSchema{"anything": {}}, ""},
		{OAuth2, ValueSchema{"client_id": {}}, "credentials_schema applies to"},
	} {
		err := EndpointSettings{CredentialsSchema: tc.s}.validateUsage(tc.mode)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %v: err = %v, want %q", tc.mode, tc.s, err, tc.want)
		}
	}
}
