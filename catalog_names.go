// SPDX-License-Identifier: MPL-2.0

package connect

import "github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"

// The root package's names for what internal/catalog defines: the catalog
// is the one source, these only keep the names the handlers, flows and
// store have always used.

// authMode is catalog.AuthMode.
type authMode = catalog.AuthMode

// The auth modes, as catalog defines them.
const (
	authModeOAuth2   = catalog.OAuth2
	authModeOAuth2CC = catalog.OAuth2CC
	authModeAPIKey   = catalog.APIKey
	authModeBasic    = catalog.Basic
	authModeCustom   = catalog.Custom
	authModeApp      = catalog.App
)

// endpointSettings is catalog.EndpointSettings, embedded in integration
// and provider entries under this name.
type endpointSettings = catalog.EndpointSettings

// providerEntry is catalog.Provider: the built-in entries and operators'
// own, stored under providers/.
type providerEntry = catalog.Provider
