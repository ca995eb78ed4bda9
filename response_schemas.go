// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
)

// Response schemas: every operation declares what it answers, so that the
// OpenAPI document Vault serves describes each response field, and the
// tests check every real response against its schema (as HashiCorp's KV
// plugin does).
//
// okResponse is an operation's successful answer: 200 with fields.
func okResponse(description string, fields map[string]*framework.FieldSchema) map[int][]framework.Response {
	return map[int][]framework.Response{http.StatusOK: {{Description: description, Fields: fields}}}
}

// noContentResponse is the answer of a delete: 204, or 200 with warnings.
func noContentResponse() map[int][]framework.Response {
	return map[int][]framework.Response{
		http.StatusNoContent: {{Description: "Deleted."}},
		http.StatusOK:        {{Description: "Deleted, with warnings (for example a revocation that failed)."}},
	}
}

func str(description string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: description}
}

func typed(t framework.FieldType, description string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: t, Description: description}
}

// listResponseFields are the fields of a LIST answer.
func listResponseFields(what string) map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"keys":     typed(framework.TypeStringSlice, "The "+what+", sorted."),
		"key_info": typed(framework.TypeMap, "Per key, a summary without secrets."),
	}
}

func configResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"refresh_margin":             typed(framework.TypeDurationSecond, "Seconds before expiry that a token is refreshed."),
		"redirect_url":               str("External address of this mount's oauth/callback."),
		"state_ttl":                  typed(framework.TypeDurationSecond, "Seconds an authorization URL stays usable."),
		"allowed_return_urls":        typed(framework.TypeStringSlice, "URLs that authorize's return_url must be under."),
		"refresh_concurrency":        typed(framework.TypeInt, "Background refreshes in flight at once."),
		"idle_refresh_interval":      typed(framework.TypeDurationSecond, "Seconds after which an idle connection with an expiring refresh token is refreshed."),
		"max_refresh_failures":       typed(framework.TypeInt, "Failed refreshes in a row before a connection is exhausted."),
		"max_pending_authorizations": typed(framework.TypeInt, "Authorizations of one integration that may be pending at once."),
		"public_url":                 typed(framework.TypeString, "This mount's external address, where connect sessions' pages are."),
		"max_sessions":               typed(framework.TypeInt, "Connect sessions the mount may hold at once."),
	}
}

func statusResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"queue_size":             typed(framework.TypeInt, "Connections with a scheduled background refresh."),
		"queue_ready":            typed(framework.TypeBool, "Whether the queue has been built from storage since the plugin started."),
		"next_refresh_at":        str("The earliest scheduled refresh (RFC 3339), empty when none."),
		"refresh_status_counts":  typed(framework.TypeMap, "Token connections by refresh_status."),
		"refreshes_total":        typed(framework.TypeInt64, "Refreshes done since the plugin started."),
		"refresh_failures_total": typed(framework.TypeInt64, "Refreshes that failed since the plugin started."),
		"cached_connections":     typed(framework.TypeInt, "Connection entries held in memory."),
		"unsaved_connections":    typed(framework.TypeInt, "Connections whose newly issued tokens storage has refused so far."),
		"goroutines":             typed(framework.TypeInt, "Goroutines of the plugin process, for leak watching."),
	}
}

// endpointResponseFields are the settings providers and integrations share.
func endpointResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"auth_mode":                str("OAUTH2, OAUTH2_CC, API_KEY, BASIC, CUSTOM or APP."),
		"auth_url":                 str("Authorization endpoint."),
		"token_url":                str("Token endpoint."),
		"revocation_url":           str("RFC 7009 revocation endpoint."),
		"scopes":                   typed(framework.TypeStringSlice, "Default OAuth scopes."),
		"auth_params":              typed(framework.TypeMap, "Extra query parameters of the authorization request."),
		"token_params":             typed(framework.TypeMap, "Extra form parameters of every token request."),
		"auth_style":               str("How the client authenticates at the token endpoint: auto, header or params."),
		"token_response_config":    typed(framework.TypeMap, "Token response members copied into connection config."),
		"api_base_url":             str("The provider's API (base_url of connection reads); for APP also where installation tokens come from."),
		"request_headers":          typed(framework.TypeMap, "Header name → template: how a client puts the credential on a request."),
		"connection_config_schema": typed(framework.TypeMap, "The connection_config keys connections need, and how they are checked."),
		"credentials_schema":       typed(framework.TypeMap, "OAUTH2_CC, API_KEY, BASIC, CUSTOM: the credential fields, and how they are checked."),
		"scope_separator":          str("How scopes are joined in requests; empty means a space."),
		"refresh_url":              str("Where refresh requests go; empty means token_url."),
		"refresh_params":           typed(framework.TypeMap, "Extra form parameters of refresh requests only."),
		"pkce":                     typed(framework.TypeBool, "Whether the authorization flow uses PKCE."),
		"token_request_format":     str("How token requests encode their body: form (empty) or json."),
		"callback_config":          typed(framework.TypeStringSlice, "Callback query parameters copied into the connection's config."),
		"redirect_uri_value":       str("OAUTH2: what is sent as redirect_uri instead of config's redirect_url (a provider's registered name); empty means redirect_url."),
		"allowed_hosts":            typed(framework.TypeStringSlice, "Hosts, besides the URLs' literal ones, that a connection's config may point the URLs at."),
	}
}

func providerResponseFields() map[string]*framework.FieldSchema {
	f := endpointResponseFields()
	f["name"] = str("Name of the provider.")
	f["tokens_expire"] = typed(framework.TypeBool, "Whether the provider's access tokens expire.")
	f["docs"] = str("The provider's documentation of these endpoints.")
	f["checked"] = str("Built-in providers: the day (YYYY-MM-DD) the entry was last checked against its documentation.")
	f["redirect_url"] = str("The redirect URL to register with the provider's OAuth app: this mount's oauth/callback (config redirect_url); empty until configured.")
	f["required_config_keys"] = typed(framework.TypeStringSlice, "The connection_config keys every connection must have: required keys of connection_config_schema and placeholders of the URLs' fallbacks.")
	f["builtin"] = typed(framework.TypeBool, "Whether this is the built-in catalog's entry (not an operator's definition or override).")
	f["affected_integrations"] = typed(framework.TypeStringSlice, "On a forced write that moved an endpoint: the integrations that now send credentials to the new host.")
	return f
}

func integrationResponseFields() map[string]*framework.FieldSchema {
	f := endpointResponseFields()
	f["name"] = str("Name of the integration.")
	f["provider"] = str("The provider whose settings fill the ones the integration leaves empty.")
	f["created_at"] = str("When the integration was created (RFC 3339).")
	f["updated_at"] = str("When the integration was last written (RFC 3339).")
	f["sources"] = typed(framework.TypeMap, "Per endpoint setting, where its value comes from: integration, provider (operator-defined) or builtin.")
	f["client_id"] = str("OAuth client id.")
	f["client_secret_set"] = typed(framework.TypeBool, "Whether a client secret is stored (it is never returned).")
	f["allowed_scopes"] = typed(framework.TypeStringSlice, "Scopes authorize may request besides the default scopes.")
	f["pkce"] = typed(framework.TypeBool, "Whether the authorization flow uses PKCE.")
	f["app_id"] = str("APP: the app's id.")
	f["private_key_set"] = typed(framework.TypeBool, "APP: whether a private key is stored (it is never returned).")
	return f
}

// connectionResponseFields are what a connection read returns; withLongLived
// adds the raw sub-path's refresh token and token response.
func connectionResponseFields(withLongLived bool) map[string]*framework.FieldSchema {
	f := map[string]*framework.FieldSchema{
		"integration":        str("The integration."),
		"connection_id":      str("The connection id."),
		"auth_mode":          str("The integration's auth mode."),
		"created_at":         str("When the connection was created (RFC 3339)."),
		"updated_at":         str("When the connection was last written (RFC 3339)."),
		"metadata":           typed(framework.TypeMap, "The application's metadata object."),
		"connection_config":  typed(framework.TypeMap, "The per-connection configuration object."),
		"base_url":           str("The provider's API for this connection: the integration's api_base_url filled from connection_config. Absent when the integration has none."),
		"headers":            typed(framework.TypeMap, "The HTTP headers that authenticate a request to base_url: the integration's request_headers rendered with this connection's credential."),
		"access_token":       str("OAUTH2, OAUTH2_CC, APP: the access token."),
		"token_type":         str("OAUTH2, OAUTH2_CC, APP: the token type, usually Bearer."),
		"expires_at":         str("OAUTH2, OAUTH2_CC, APP: when the access token expires (RFC 3339), empty if it does not."),
		"scopes":             typed(framework.TypeStringSlice, "OAUTH2, OAUTH2_CC: the scopes granted."),
		"installation_id":    str("APP: the installation whose tokens the connection holds."),
		"client_id":          str("OAUTH2_CC: the connection's own OAuth client id; empty when the integration's client applies."),
		"client_secret_set":  typed(framework.TypeBool, "OAUTH2_CC: whether the connection has a client secret of its own (it is never returned, not even by the raw sub-path)."),
		"refresh_status":     str("ok, failing, exhausted or reauthorization_required."),
		"refresh_failures":   typed(framework.TypeInt, "Failed refreshes in a row."),
		"last_refresh_error": str("The last refresh failure, without secrets."),
		"last_refreshed_at":  str("When the token was last refreshed (RFC 3339)."),
		"next_refresh_at":    str("When the background refreshes the token next (RFC 3339)."),
		"api_key":            str("API_KEY: the API key."),
		"username":           str("BASIC: the user name."),
		"password":           str("BASIC: the password."),
		"credentials":        typed(framework.TypeMap, "CUSTOM: the credentials object."),
	}
	if withLongLived {
		f["refresh_token"] = str("OAUTH2: the refresh token.")
		f["raw_token_response"] = typed(framework.TypeMap, "The provider's last token response as it sent it, without members that would take it over 64 KiB.")
		f["raw_token_response_note"] = str("Which members of the last token response were dropped for their size; empty when it is whole.")
	}
	return f
}

func authorizeResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"authorization_url": str("The provider's consent page for this connection; send the customer's browser there."),
		"state_expires_at":  str("When the authorization expires (RFC 3339)."),
	}
}
