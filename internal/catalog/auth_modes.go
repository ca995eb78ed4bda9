// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// AuthMode says how an integration authenticates and so which credentials
// its connections hold.
type AuthMode string

const (
	OAuth2   AuthMode = "OAUTH2"    // authorization code; tokens imported or obtained by consent
	OAuth2CC AuthMode = "OAUTH2_CC" // client credentials; the plugin fetches the token itself
	APIKey   AuthMode = "API_KEY"
	Basic    AuthMode = "BASIC"
	Custom   AuthMode = "CUSTOM" // free-form object of strings
	App      AuthMode = "APP"    // GitHub-App style: a signed JWT exchanged for installation tokens
)

// AuthModes are all the auth modes, in the order messages list them.
var AuthModes = []AuthMode{OAuth2, OAuth2CC, APIKey, Basic, Custom, App}

// ParseAuthMode reads an auth mode as an operator writes it: any case,
// surrounding spaces ignored.
func ParseAuthMode(s string) (AuthMode, error) {
	m := AuthMode(strings.ToUpper(strings.TrimSpace(s)))
	if slices.Contains(AuthModes, m) {
		return m, nil
	}
	return "", fmt.Errorf("auth_mode %q is not one of %s", s, JoinModes(AuthModes))
}

// JoinModes lists modes for a message: "OAUTH2, API_KEY".
func JoinModes(modes []AuthMode) string {
	parts := make([]string, len(modes))
	for i, m := range modes {
		parts[i] = string(m)
	}
	return strings.Join(parts, ", ")
}

// IsOAuth reports whether the integration is an OAuth client.
func (m AuthMode) IsOAuth() bool {
	return m == OAuth2 || m == OAuth2CC
}

// HasTokens reports whether connections of this mode hold an access token
// that the engine obtains and renews.
func (m AuthMode) HasTokens() bool {
	return m.IsOAuth() || m == App
}

// IssuesOwnTokens reports whether the engine obtains this mode's tokens by
// itself, with nothing from the customer but the connection's settings:
// client credentials and app installations.
func (m AuthMode) IssuesOwnTokens() bool {
	return m == OAuth2CC || m == App
}

// integrationModeFields lists the integration fields that only make sense for
// some auth modes. A write that sets one of them for another mode is refused,
// so a typo'd mode never silently drops a client secret.
var integrationModeFields = map[string][]AuthMode{
	"client_id":             {OAuth2, OAuth2CC},
	"client_secret":         {OAuth2, OAuth2CC},
	"scopes":                {OAuth2, OAuth2CC},
	"auth_url":              {OAuth2},
	"auth_params":           {OAuth2},
	"pkce":                  {OAuth2},
	"token_url":             {OAuth2, OAuth2CC},
	"token_params":          {OAuth2, OAuth2CC},
	"auth_style":            {OAuth2, OAuth2CC},
	"revocation_url":        {OAuth2, OAuth2CC},
	"token_response_config": {OAuth2, OAuth2CC},
	"scope_separator":       {OAuth2, OAuth2CC},
	"token_request_format":  {OAuth2, OAuth2CC},
	"callback_config":       {OAuth2},
	"redirect_uri_value":    {OAuth2},
	"issuer":                {OAuth2},
	"refresh_url":           {OAuth2},
	"refresh_params":        {OAuth2},
	"app_id":                {App},
	"private_key":           {App},
	"credentials_schema":    {OAuth2CC, APIKey, Basic, Custom},
}

// IntegrationFieldsNotFor returns, sorted, the keys of an integration
// write that belong to some auth mode other than mode.
func IntegrationFieldsNotFor(mode AuthMode, raw map[string]any) []string {
	return fieldsNotFor(mode, raw, integrationModeFields)
}

// ConnectionFieldsNotFor returns, sorted, the keys of a connection write
// that are credential fields of some auth mode other than mode.
func ConnectionFieldsNotFor(mode AuthMode, raw map[string]any) []string {
	return fieldsNotFor(mode, raw, connectionFieldOwners)
}

// fieldsNotFor returns, sorted, the keys of raw that belong to some auth mode
// other than mode according to owners.
func fieldsNotFor(mode AuthMode, raw map[string]any, owners map[string][]AuthMode) []string {
	var bad []string
	for key := range raw {
		modes, modeSpecific := owners[key]
		if modeSpecific && !slices.Contains(modes, mode) {
			bad = append(bad, key)
		}
	}
	sort.Strings(bad)
	return bad
}

// connectionFieldOwners maps each credential field a connection write sets
// to the modes that accept it; it is fixed, so built once.
var connectionFieldOwners = func() map[string][]AuthMode {
	owners := map[string][]AuthMode{}
	for _, f := range credentialFields {
		owners[f.Name] = f.WriteModes
	}
	return owners
}()

// NotApply phrases a list of misplaced fields for an error message.
func NotApply(fields []string) string {
	if len(fields) == 1 {
		return fields[0] + " does not apply"
	}
	return strings.Join(fields, ", ") + " do not apply"
}
