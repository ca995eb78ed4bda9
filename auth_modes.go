// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"sort"
	"strings"
)

// authMode says how an integration authenticates and so which credentials
// its connections hold.
type authMode string

const (
	authModeOAuth2   authMode = "OAUTH2"    // authorization code; tokens imported or obtained by consent
	authModeOAuth2CC authMode = "OAUTH2_CC" // client credentials; the plugin fetches the token itself
	authModeAPIKey   authMode = "API_KEY"
	authModeBasic    authMode = "BASIC"
	authModeCustom   authMode = "CUSTOM" // free-form object of strings
	authModeApp      authMode = "APP"    // GitHub-App style: a signed JWT exchanged for installation tokens
)

var allAuthModes = []authMode{authModeOAuth2, authModeOAuth2CC, authModeAPIKey, authModeBasic, authModeCustom, authModeApp}

func parseAuthMode(s string) (authMode, error) {
	m := authMode(strings.ToUpper(strings.TrimSpace(s)))
	for _, known := range allAuthModes {
		if m == known {
			return m, nil
		}
	}
	return "", fmt.Errorf("auth_mode %q is not one of %s", s, joinModes(allAuthModes))
}

func joinModes(modes []authMode) string {
	parts := make([]string, len(modes))
	for i, m := range modes {
		parts[i] = string(m)
	}
	return strings.Join(parts, ", ")
}

// isOAuth reports whether the integration is an OAuth client.
func (m authMode) isOAuth() bool {
	return m == authModeOAuth2 || m == authModeOAuth2CC
}

// hasTokens reports whether connections of this mode hold an access token
// that the engine obtains and renews.
func (m authMode) hasTokens() bool {
	return m.isOAuth() || m == authModeApp
}

// issuesOwnTokens reports whether the engine obtains this mode's tokens by
// itself, with nothing from the customer but the connection's settings:
// client credentials and app installations.
func (m authMode) issuesOwnTokens() bool {
	return m == authModeOAuth2CC || m == authModeApp
}

// integrationModeFields lists the integration fields that only make sense for
// some auth modes. A write that sets one of them for another mode is refused,
// so a typo'd mode never silently drops a client secret.
var integrationModeFields = map[string][]authMode{
	"client_id":             {authModeOAuth2, authModeOAuth2CC},
	"client_secret":         {authModeOAuth2, authModeOAuth2CC},
	"scopes":                {authModeOAuth2, authModeOAuth2CC},
	"auth_url":              {authModeOAuth2},
	"auth_params":           {authModeOAuth2},
	"pkce":                  {authModeOAuth2},
	"token_url":             {authModeOAuth2, authModeOAuth2CC},
	"token_params":          {authModeOAuth2, authModeOAuth2CC},
	"auth_style":            {authModeOAuth2, authModeOAuth2CC},
	"revocation_url":        {authModeOAuth2, authModeOAuth2CC},
	"token_response_config": {authModeOAuth2, authModeOAuth2CC},
	"scope_separator":       {authModeOAuth2, authModeOAuth2CC},
	"token_request_format":  {authModeOAuth2, authModeOAuth2CC},
	"callback_config":       {authModeOAuth2},
	"redirect_uri_value":    {authModeOAuth2},
	"refresh_url":           {authModeOAuth2},
	"refresh_params":        {authModeOAuth2},
	"app_id":                {authModeApp},
	"private_key":           {authModeApp},
	"credentials_schema":    {authModeOAuth2CC, authModeAPIKey, authModeBasic, authModeCustom},
}

// connectionModeFields lists, per auth mode, the credential fields a
// connection write accepts.
var connectionModeFields = map[authMode][]string{
	authModeOAuth2:   {"access_token", "refresh_token", "expires_at", "expires_in", "token_type", "scopes"},
	authModeOAuth2CC: {"client_id", "client_secret"},
	authModeAPIKey:   {"api_key"},
	authModeBasic:    {"username", "password"},
	authModeCustom:   {"credentials"},
	authModeApp:      {"installation_id"},
}

// fieldsNotFor returns, sorted, the keys of raw that belong to some auth mode
// other than mode according to owners.
func fieldsNotFor(mode authMode, raw map[string]any, owners map[string][]authMode) []string {
	var bad []string
	for key := range raw {
		modes, modeSpecific := owners[key]
		if modeSpecific && !containsMode(modes, mode) {
			bad = append(bad, key)
		}
	}
	sort.Strings(bad)
	return bad
}

func containsMode(modes []authMode, m authMode) bool {
	for _, x := range modes {
		if x == m {
			return true
		}
	}
	return false
}

// connectionFieldOwners inverts connectionModeFields for fieldsNotFor; it
// is fixed, so built once.
var connectionFieldOwners = invertModeFields()

func invertModeFields() map[string][]authMode {
	owners := map[string][]authMode{}
	for _, mode := range allAuthModes {
		for _, f := range connectionModeFields[mode] {
			owners[f] = append(owners[f], mode)
		}
	}
	return owners
}

// notApply phrases a list of misplaced fields for an error message.
func notApply(fields []string) string {
	if len(fields) == 1 {
		return fields[0] + " does not apply"
	}
	return strings.Join(fields, ", ") + " do not apply"
}
