// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

func pathIntegrations(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "integrations/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "integrations",
			},
			Operations:      onlyOperation(logical.ListOperation, b.pathIntegrationList, "list", listResponseFields("integration names")),
			HelpSynopsis:    "List the integrations.",
			HelpDescription: "Lists the names of all integrations, sorted.",
		},
		{
			Pattern: "integrations/" + segment("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "integration",
			},
			Fields:          integrationFields(),
			ExistenceCheck:  b.integrationExists,
			Operations:      entryOperations(b.pathIntegrationRead, b.pathIntegrationWrite, b.pathIntegrationDelete, integrationResponseFields()),
			HelpSynopsis:    "Create, read, update or delete an integration.",
			HelpDescription: pathIntegrationHelp,
		},
	}
}

func integrationFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"name": {
			Type:        framework.TypeString,
			Description: "Name of the integration, e.g. 'github' or 'salesforce-prod'.",
			Required:    true,
		},
		"auth_mode": {
			Type:          framework.TypeString,
			Description:   "How the API authenticates: OAUTH2, OAUTH2_CC (client credentials), API_KEY, BASIC, CUSTOM or APP (GitHub-App installation tokens). Required on create unless a provider implies it; cannot be changed.",
			AllowedValues: []any{"OAUTH2", "OAUTH2_CC", "API_KEY", "BASIC", "CUSTOM", "APP"},
		},
		"provider": {
			Type:        framework.TypeString,
			Description: "Name of a provider (see providers/) whose URLs, scopes and parameters fill the fields this integration leaves empty.",
		},
		"client_id": {
			Type:        framework.TypeString,
			Description: "OAuth client id. Required for OAUTH2, and for OAUTH2_CC unless credentials_schema requires each connection's own client_id and client_secret (then it is the default of none).",
		},
		"client_secret": {
			Type:        framework.TypeString,
			Description: "OAuth client secret. Write-only: reads show client_secret_set. Required for OAUTH2_CC with client_id.",
			DisplayAttrs: &framework.DisplayAttributes{
				Sensitive: true,
			},
		},
		"scopes": {
			Type:        framework.TypeCommaStringSlice,
			Description: "Default OAuth scopes, as a list or a comma-separated string.",
		},
		"display_name": {
			Type:        framework.TypeString,
			Description: "What the connect page calls the integration (\"GitHub\"), at most 200 printable characters. Default: the catalog provider's name, else the integration's name.",
		},
		"allowed_scopes": {
			Type:        framework.TypeCommaStringSlice,
			Description: "OAUTH2: scopes authorize may ask for besides the default scopes. A scope in neither list is refused.",
		},
		"auth_url": {
			Type:        framework.TypeString,
			Description: "Authorization endpoint (absolute URL). Required for OAUTH2.",
		},
		"token_url": {
			Type:        framework.TypeString,
			Description: "Token endpoint (absolute URL). Required for OAUTH2 and OAUTH2_CC.",
		},
		"auth_params": {
			Type:        framework.TypeKVPairs,
			Description: "Extra query parameters for the authorization request, e.g. access_type=offline. The parameters the flow sets itself (client_id, redirect_uri, response_type, state, scope, code_challenge, code_challenge_method) are refused, except response_type=code, the value the flow sends anyway.",
		},
		"token_params": {
			Type:        framework.TypeKVPairs,
			Description: "Extra form parameters sent with every token request, e.g. audience=https://api.example.com. A value may hold ${connectionConfig.<key>} placeholders, filled from each connection's config (printable text of at most 1024 characters) in its client-credentials requests, code exchange and refreshes; every connection needs those keys.",
		},
		"auth_style": {
			Type:          framework.TypeString,
			Description:   "How the client credentials reach the token endpoint: 'header' (HTTP Basic), 'params' (form body) or 'auto' (try header, then params). Default 'auto'.",
			AllowedValues: []any{"auto", "header", "params"},
		},
		"scope_separator": {
			Type:        framework.TypeString,
			Description: "How scopes are joined in authorization and token requests: a space (the default, RFC 6749), ',', ';' or '+'.",
		},
		"refresh_url": {
			Type:        framework.TypeString,
			Description: "OAUTH2: where refresh requests go, when not to token_url (e.g. Figma's /v1/oauth/refresh).",
		},
		"refresh_params": {
			Type:        framework.TypeKVPairs,
			Description: "OAUTH2: extra form parameters sent with refresh requests only, after token_params. Values may hold ${connectionConfig.<key>} placeholders, as token_params.",
		},
		"revocation_url": {
			Type:        framework.TypeString,
			Description: "RFC 7009 token revocation endpoint. When set, deleting a connection revokes its tokens first.",
		},
		"token_response_config": {
			Type:        framework.TypeKVPairs,
			Description: "Token response members copied into the connection's config, as config_key=member (dots reach into objects), e.g. instance_url=instance_url.",
		},
		"pkce": {
			Type:        framework.TypeBool,
			Default:     true,
			Description: "Use PKCE (S256) in the authorization flow. Default true (or the provider's); turn off only for a provider that rejects it.",
		},
		"token_request_format": {
			Type:          framework.TypeString,
			Description:   "How token, refresh and client-credentials requests encode their body: form (default, RFC 6749) or json.",
			AllowedValues: []any{"form", "json"},
		},
		"callback_config": {
			Type:        framework.TypeCommaStringSlice,
			Description: "OAUTH2: query parameters of the provider's redirect to oauth/callback copied into the connection's config, e.g. realmId for QuickBooks.",
		},
		"issuer": {
			Type:        framework.TypeString,
			Description: "OAUTH2: the authorization server's issuer identifier (RFC 8414), e.g. https://accounts.example.com. Where the provider's redirect carries iss (RFC 9207), the callback refuses it unless it equals this.",
		},
		"redirect_uri_value": {
			Type:        framework.TypeString,
			Description: "OAUTH2: sent as redirect_uri in the authorization request and the code exchange instead of config's redirect_url, for providers that take a registered name there (eBay's RuName). Register this mount's oauth/callback under that name with the provider: the browser still comes back to it.",
		},
		"app_id": {
			Type:        framework.TypeString,
			Description: "APP: the app's id, the issuer of the JWTs it signs.",
		},
		"private_key": {
			Type:        framework.TypeString,
			Description: "APP: the app's RSA private key (PEM). Write-only: reads show private_key_set.",
			DisplayAttrs: &framework.DisplayAttributes{
				Sensitive: true,
			},
		},
		"api_base_url": {
			Type:        framework.TypeString,
			Description: "The provider's API, returned as base_url by connection reads; for APP also where installation tokens come from (default https://api.github.com, from the github-app provider). May hold ${connectionConfig.<key>} placeholders and 'A || B' alternatives; outside APP a placeholder that starts it may hold a whole https URL, e.g. ${connectionConfig.instance_url}.",
		},
		"request_headers": {
			Type:        framework.TypeKVPairs,
			Description: "How a client puts the credential on a request: header name → template over ${accessToken}, ${apiKey}, ${username}, ${password}, ${connectionConfig.<key>}, ${credentials.<key>} and ${base64(<template>)}, e.g. Authorization='Basic ${base64(${apiKey}:)}'. Connection reads return them rendered as headers.",
		},
		"connection_config_schema": {
			Type:        framework.TypeMap,
			Description: "The connection_config keys connections need, as a JSON object key → {type (string, number or boolean), title, description, pattern, pattern_hint (what the pattern admits, in words: errors say it, never the pattern), enum, optional, default_value, prefix, suffix, example, secret}. Checked at authorize, on connection writes and on config writes and patches; a missing required key or a value that fails pattern or enum is a 400 naming the key.",
		},
		"allowed_hosts": {
			Type:        framework.TypeCommaStringSlice,
			Description: "Hosts a connection's config may point this integration's URLs at, beyond their literal hosts: host names or *.<domain> (one or more whole labels under that domain), e.g. *.okta.com,*.oktapreview.com. Required when a URL's host is wholly a ${connectionConfig.<key>} placeholder. Tokens, client secrets and app JWTs are never sent to any other host.",
		},
		"credentials_schema": {
			Type:        framework.TypeMap,
			Description: "OAUTH2_CC, API_KEY, BASIC, CUSTOM: the credential fields, in the shape of connection_config_schema: client_id and client_secret (a connection's own client); api_key; username and password; or the keys of credentials. A pattern_hint says in words what a pattern admits; errors say it, never the pattern. Checked on connection writes.",
		},
		"force": {
			Type:        framework.TypeBool,
			Description: "On delete: also delete the integration's connections. Without it, deleting an integration that has connections fails.",
		},
		"proxy_paths": {
			Type:        framework.TypeCommaStringSlice,
			Description: "The provider paths the proxy (connections/<integration>/<id>/proxy/<path>) may call, as globs under api_base_url: '/' first, '+' one whole segment, '*' at the end any rest, e.g. /v1/*,/repos/+/issues. Empty (the default): the integration has no proxy.",
		},
		"proxy_methods": {
			Type:        framework.TypeCommaStringSlice,
			Description: "The HTTP methods the proxy may send: GET, POST, PUT, PATCH, DELETE. Default GET.",
		},
		"proxy_headers": {
			Type:        framework.TypeCommaStringSlice,
			Description: "Caller headers the proxy passes on besides Accept, Content-Type, If-* and Idempotency-Key, e.g. X-GitHub-Api-Version. Authorization, Host, Cookie, Proxy-*, X-Forwarded-*, X-Vault-*, hop-by-hop headers and request_headers' names cannot be listed.",
		},
		"proxy_retries": {
			Type:        framework.TypeInt,
			Default:     defaultProxyRetries,
			Description: fmt.Sprintf("How often the proxy retries a GET or DELETE (or a write with an Idempotency-Key) the provider answered 429, 502, 503 or 504: 0 to %d, default %d.", maxProxyRetries, defaultProxyRetries),
		},
		"proxy_retry_after_max": {
			Type:        framework.TypeDurationSecond,
			Default:     int(defaultProxyRetryAfterMax.Seconds()),
			Description: fmt.Sprintf("The longest Retry-After the proxy waits before a retry; a longer one answers the provider's 429 at once. At most %s, default %s.", maxProxyRetryAfterMax, defaultProxyRetryAfterMax),
		},
		"proxy_max_response": {
			Type:        framework.TypeInt,
			Default:     defaultProxyMaxResponse,
			Description: fmt.Sprintf("The largest provider answer body the proxy returns, in bytes (1 to %d, default %d = 10 MiB); a larger one is a 502 and nothing of it is returned.", maxProxyMaxResponse, defaultProxyMaxResponse),
		},
		"proxy_timeout": {
			Type:        framework.TypeDurationSecond,
			Default:     int(defaultProxyTimeout.Seconds()),
			Description: fmt.Sprintf("How long one proxied call may take, retries and waits included (1s to %s, default %s); beyond it the answer is 504.", maxProxyTimeout, defaultProxyTimeout),
		},
	}
}

func (b *backend) integrationExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	in, err := getIntegration(ctx, req.Storage, d.Get("name").(string))
	return existence(in != nil, err)
}

func (b *backend) pathIntegrationList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := listIntegrations(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathIntegrationRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateIntegrationName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	in, err := getIntegration(ctx, req.Storage, name)
	if err != nil || in == nil {
		return nil, err
	}
	return integrationRead(ctx, req.Storage, in)
}

// integrationRead answers with an integration as integrationResponse shows
// it.
func integrationRead(ctx context.Context, s logical.Storage, in *integrationEntry) (*logical.Response, error) {
	var p *catalog.Provider
	if in.Provider != "" {
		var err error
		if p, err = getStoredProvider(ctx, s, in.Provider); err != nil {
			return nil, err
		}
	}
	return &logical.Response{Data: integrationResponse(in, p)}, nil
}

// integrationResponse shows an integration with its effective settings,
// and in "sources" where each endpoint setting comes from: the integration
// itself, an operator-defined provider (stored, possibly overriding a
// built-in), or the built-in catalog. stored is the operator's provider of
// that name, nil when there is none.
func integrationResponse(in *integrationEntry, stored *catalog.Provider) map[string]any {
	eff, sources := in, map[string]string{}
	if in.Provider != "" {
		p, source := stored, "provider"
		if p == nil {
			p, source = catalog.Lookup(in.Provider), "builtin"
		}
		if p != nil {
			eff = mergeProvider(in, p)
			sources = catalog.SettingSources(in.EndpointSettings, p.EndpointSettings, source)
		}
	}
	data := map[string]any{
		"name":         in.Name,
		"auth_mode":    string(in.AuthMode),
		"provider":     in.Provider,
		"display_name": in.displayName(),
		"created_at":   formatTime(in.CreatedAt),
		"updated_at":   formatTime(in.UpdatedAt),
		"sources":      sources,
	}
	if in.AuthMode.IsOAuth() {
		data["client_id"] = in.ClientID
		data["client_secret_set"] = in.ClientSecret != ""
		data["scopes"] = nonNilStrings(eff.Scopes)
		data["token_url"] = eff.TokenURL
		data["token_params"] = nonNilMap(eff.TokenParams)
		data["auth_style"] = eff.AuthStyle
		data["revocation_url"] = eff.RevocationURL
		data["token_response_config"] = nonNilMap(eff.TokenResponseConfig)
		data["scope_separator"] = eff.ScopeSeparator
	}
	if in.AuthMode == catalog.OAuth2 {
		data["auth_url"] = eff.AuthURL
		data["auth_params"] = nonNilMap(eff.AuthParams)
		data["refresh_url"] = eff.RefreshURL
		data["refresh_params"] = nonNilMap(eff.RefreshParams)
		data["allowed_scopes"] = nonNilStrings(in.AllowedScopes)
		data["pkce"] = !in.DisablePKCE && eff.UsesPKCE()
		data["token_request_format"] = eff.TokenRequestFormat
		data["callback_config"] = nonNilStrings(eff.CallbackConfig)
		data["redirect_uri_value"] = eff.RedirectURIValue
		data["issuer"] = eff.Issuer
	}
	if in.AuthMode == catalog.App {
		data["app_id"] = in.AppID
		data["private_key_set"] = in.PrivateKey != ""
	}
	data["api_base_url"] = eff.APIBaseURL
	data["allowed_hosts"] = nonNilStrings(eff.AllowedHosts)
	data["request_headers"] = nonNilMap(eff.RequestHeaders)
	data["connection_config_schema"] = eff.ConnectionConfigSchema.JSONObject()
	addProxySettings(data, in.Proxy)
	if in.AuthMode.HasCredentialsSchema() {
		data["credentials_schema"] = eff.CredentialsSchema.JSONObject()
	}
	return data
}

// pathIntegrationWrite creates or updates an integration: the request's
// fields as an integrationInput, written by the integrationWriter.
func (b *backend) pathIntegrationWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateIntegrationName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := checkPayloadSize(req.Data); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	in, err := b.integrationWriter.write(ctx, req.Storage, integrationInput{Name: name, Fields: fieldValuesOf(d)})
	if err != nil {
		return respondError(err)
	}
	return integrationRead(ctx, req.Storage, in)
}

func (b *backend) pathIntegrationDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateIntegrationName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	err := b.integrationWriter.delete(ctx, req.Storage, name, d.Get("force").(bool))
	var hasConns *errHasConnections
	if errors.As(err, &hasConns) {
		return logical.ErrorResponse("integration %q still has %d connection(s); delete them first or pass force=true to delete them too", name, hasConns.count), nil
	}
	if err != nil {
		return httpError(err) // a 503 while its WAL records wait at start
	}
	return nil, nil
}

// addProxySettings shows an integration's proxy settings, defaults filled
// in.
func addProxySettings(data map[string]any, p proxySettings) {
	data["proxy_paths"] = nonNilStrings(p.Paths)
	data["proxy_methods"] = nonNilStrings(p.methods())
	data["proxy_headers"] = nonNilStrings(p.Headers)
	data["proxy_retries"] = p.retries()
	data["proxy_retry_after_max"] = int(p.retryAfterMax().Seconds())
	data["proxy_max_response"] = p.maxResponse()
	data["proxy_timeout"] = int(p.timeout().Seconds())
}

const pathIntegrationHelp = `
An integration is one external API and the way to authenticate to it. Its
connections hold each customer's credentials.

  auth_mode      OAUTH2     authorization-code OAuth app; connections import
                            tokens (and later get them by consent)
                 OAUTH2_CC  client-credentials OAuth app; the engine fetches
                            each connection's token itself, with the
                            connection's own client_id and client_secret
                            when it has them (credentials_schema)
                 API_KEY    connections hold an api_key
                 BASIC      connections hold username and password
                 CUSTOM     connections hold a free-form object of strings

OAuth integrations take client_id, client_secret (write-only), scopes,
allowed_scopes, auth_url, token_url, auth_params, token_params and
auth_style. A read shows the effective settings, the provider's filled in,
and "sources" says where each came from: integration, provider (an
operator-defined provider) or builtin. Updates are
partial: omitted fields keep their values. auth_mode cannot be changed.

Deleting an integration that has connections fails unless force=true, which
deletes its connections as well.

Example:

    vault write connect/integrations/github auth_mode=OAUTH2 \
        client_id=Iv1.abc client_secret=... scopes=repo,read:user \
        auth_url=https://github.com/login/oauth/authorize \
        token_url=https://github.com/login/oauth/access_token
`

// integrationResponseFields are what an integration read returns.
func integrationResponseFields() map[string]*framework.FieldSchema {
	f := endpointResponseFields()
	f["name"] = str("Name of the integration.")
	f["provider"] = str("The provider whose settings fill the ones the integration leaves empty.")
	f["display_name"] = str("What the connect page calls the integration: its own display_name, else the catalog provider's name, else its name.")
	f["created_at"] = str("When the integration was created (RFC 3339).")
	f["updated_at"] = str("When the integration was last written (RFC 3339).")
	f["sources"] = typed(framework.TypeMap, "Per endpoint setting, where its value comes from: integration, provider (operator-defined) or builtin.")
	f["client_id"] = str("OAuth client id.")
	f["client_secret_set"] = typed(framework.TypeBool, "Whether a client secret is stored (it is never returned).")
	f["allowed_scopes"] = typed(framework.TypeStringSlice, "Scopes authorize may request besides the default scopes.")
	f["pkce"] = typed(framework.TypeBool, "Whether the authorization flow uses PKCE.")
	f["app_id"] = str("APP: the app's id.")
	f["private_key_set"] = typed(framework.TypeBool, "APP: whether a private key is stored (it is never returned).")
	f["proxy_paths"] = typed(framework.TypeStringSlice, "The provider paths the proxy may call (globs); empty: no proxy.")
	f["proxy_methods"] = typed(framework.TypeStringSlice, "The methods the proxy may send.")
	f["proxy_headers"] = typed(framework.TypeStringSlice, "Caller headers passed on besides the built-in ones.")
	f["proxy_retries"] = typed(framework.TypeInt, "Retries of an idempotent proxied call on 429, 502, 503, 504.")
	f["proxy_retry_after_max"] = typed(framework.TypeInt, "The longest Retry-After waited for, in seconds.")
	f["proxy_max_response"] = typed(framework.TypeInt, "The largest answer body returned, in bytes.")
	f["proxy_timeout"] = typed(framework.TypeInt, "How long a proxied call may take, in seconds.")
	return f
}
