// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

func pathConnections(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "connections/" + segment("integration") + "/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "connections",
			},
			Fields: map[string]*framework.FieldSchema{
				"integration": integrationNameField(),
				"after": {
					Type:        framework.TypeString,
					Query:       true,
					Description: "List only connection ids that sort after this one (for paging).",
				},
				"limit": {
					Type:        framework.TypeInt,
					Query:       true,
					Default:     defaultListLimit,
					Description: fmt.Sprintf("Return at most this many connection ids (default %d, at most %d); continue with after.", defaultListLimit, maxListLimit),
				},
				"key_info": {
					Type:        framework.TypeBool,
					Query:       true,
					Default:     true,
					Description: "Include key_info, a summary of each connection, which reads every listed entry; false lists ids only, for large pages.",
				},
				"tag": {
					Type:        framework.TypeString,
					Query:       true,
					Description: "List only connections with this tag, as key:value (e.g. organization_id:acme). Reads each connection after 'after' until the page is full.",
				},
			},
			Operations:      onlyOperation(logical.ListOperation, b.pathConnectionList, "list", listResponseFields("connection ids")),
			HelpSynopsis:    "List an integration's connections.",
			HelpDescription: pathConnectionListHelp,
		},
		{
			Pattern: connectionPattern,
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "connection",
			},
			Fields:          connectionFields(),
			ExistenceCheck:  b.connectionExists,
			Operations:      entryOperations(b.pathConnectionRead, b.pathConnectionWrite, b.pathConnectionDelete, connectionResponseFields(false)),
			HelpSynopsis:    "Create, read, update or delete a connection: one customer's credentials for one integration.",
			HelpDescription: pathConnectionHelp,
		},
	}
}

// pathConnectionCatchAll explains a path under a connection that none of
// its sub-paths match; it must come after them.
func pathConnectionCatchAll() []*framework.Path {
	return []*framework.Path{
		{
			// Anything deeper than the known sub-paths is a connection id
			// with a '/' in it, or a typo; say so instead of a bare 404.
			Pattern: connectionPattern + "/.+",
			Fields:  connectionPathFields(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   &framework.PathOperation{Callback: badConnectionPath, Unpublished: true},
				logical.UpdateOperation: &framework.PathOperation{Callback: badConnectionPath, Unpublished: true},
				logical.DeleteOperation: &framework.PathOperation{Callback: badConnectionPath, Unpublished: true},
				logical.ListOperation:   &framework.PathOperation{Callback: badConnectionPath, Unpublished: true},
				logical.PatchOperation:  &framework.PathOperation{Callback: badConnectionPath, Unpublished: true},
			},
			HelpSynopsis:    "Not a connection path.",
			HelpDescription: "Connection ids cannot contain '/'. A connection's sub-paths are raw, refresh, metadata, config, authorize, complete and proxy/<provider path>.",
		},
	}
}

func badConnectionPath(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return logical.ErrorResponse("no such path: connection ids cannot contain '/', and a connection's sub-paths are raw, refresh, metadata, config, authorize, complete and proxy/<provider path>"), nil
}

func connectionFields() map[string]*framework.FieldSchema {
	fields := map[string]*framework.FieldSchema{
		"integration":   integrationNameField(),
		"connection_id": connectionIDField(),
		"metadata": {
			Type:        framework.TypeMap,
			Description: "Any JSON object the application wants to keep with the connection. Replaces the stored metadata; patch it through the metadata sub-path.",
		},
		"connection_config": {
			Type:        framework.TypeMap,
			Description: "Per-connection configuration as a JSON object, e.g. {\"subdomain\": \"acme\"} for providers whose URLs depend on the customer.",
		},
		"tags": tagsField("An update replaces them when it gives tags (an empty object clears them) and keeps them otherwise."),
		"revoke": {
			Type:        framework.TypeBool,
			Default:     true,
			Description: "On delete: revoke the connection's tokens at the provider's revocation_url first (RFC 7009). A failure is a warning; the deletion happens anyway.",
		},
	}
	for _, f := range catalog.CredentialFields() {
		if len(f.WriteModes) == 0 {
			continue
		}
		schema := credentialWriteFields[f.Name]
		if f.Secret {
			schema.DisplayAttrs = &framework.DisplayAttributes{Sensitive: true}
		}
		fields[f.Name] = &schema
	}
	return fields
}

// credentialWriteFields are the types and help of the credential fields
// connection writes take; which fields there are, for which auth modes, and
// which are secret is catalog.CredentialFields.
var credentialWriteFields = map[string]framework.FieldSchema{
	"access_token": {
		Type:        framework.TypeString,
		Description: "OAUTH2: the access token to import. Required on create.",
	},
	"refresh_token": {
		Type:        framework.TypeString,
		Description: "OAUTH2: the refresh token, which lets the engine renew the access token. Returned only by the raw sub-path.",
	},
	"expires_at": {
		Type:        framework.TypeString,
		Description: "OAUTH2: when the access token expires (RFC 3339). Omit both expires_at and expires_in for a token that does not expire.",
	},
	"expires_in": {
		Type:        framework.TypeDurationSecond,
		Description: "OAUTH2: seconds until the access token expires, as a token response says it.",
	},
	"token_type": {
		Type:        framework.TypeString,
		Description: "OAUTH2: the token type, usually 'Bearer'.",
	},
	"scopes": {
		Type:        framework.TypeCommaStringSlice,
		Description: "OAUTH2: the scopes the token was granted.",
	},
	"client_id": {
		Type:        framework.TypeString,
		Description: "OAUTH2_CC: the connection's own OAuth client id, for providers whose customers each create an API client; with client_secret. Omitted (or empty), the integration's client applies. Required when the integration's credentials_schema says so.",
	},
	"client_secret": {
		Type:        framework.TypeString,
		Description: "OAUTH2_CC: the secret of the connection's own client_id. Write-only: reads show client_secret_set.",
	},
	"api_key": {
		Type:        framework.TypeString,
		Description: "API_KEY: the API key. Required.",
	},
	"username": {
		Type:        framework.TypeString,
		Description: "BASIC: the user name. Required.",
	},
	"password": {
		Type:        framework.TypeString,
		Description: "BASIC: the password.",
	},
	"credentials": {
		Type:        framework.TypeMap,
		Description: "CUSTOM: an object of string values, e.g. {\"client_key\": \"...\", \"region\": \"eu\"}. Required on create.",
	},
	"installation_id": {
		Type:        framework.TypeString,
		Description: "APP: the installation of the app whose tokens this connection holds (a number). Set only here, never through the connection's config sub-path, so that a customer who may edit its config cannot pick another customer's installation.",
	},
}

func (b *backend) connectionExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	integration, id, err := connectionNames(d)
	if err != nil {
		// Let the handler answer with the 400.
		return false, nil
	}
	return existence(b.store.Exists(ctx, req.Storage, integration, id))
}

// List page sizes: a list without limit returns a page, not every entry.
const (
	defaultListLimit = 1000
	maxListLimit     = 10000
)

func (b *backend) pathConnectionList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration := d.Get("integration").(string)
	if err := validateIntegrationName(integration); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	limit := d.Get("limit").(int)
	if limit < 1 || limit > maxListLimit {
		return logical.ErrorResponse("limit must be between 1 and %d", maxListLimit), nil
	}
	filter, err := parseTagFilter(d.Get("tag").(string))
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	withInfo := d.Get("key_info").(bool)
	page, entries, err := listConnectionPage(ctx, b.store, req.Storage, integration,
		connectionListQuery{After: d.Get("after").(string), Limit: limit, Filter: filter, WithEntries: withInfo})
	if err != nil {
		return nil, err
	}
	if !withInfo {
		return logical.ListResponse(page), nil
	}
	keyInfo := make(map[string]any, len(page))
	for i, c := range entries {
		info := map[string]any{
			"auth_mode":  string(c.AuthMode),
			"created_at": formatTime(c.CreatedAt),
			"expires_at": formatTime(c.Credentials.ExpiresAt),
			"tags":       nonNilMap(c.Tags),
		}
		if c.AuthMode.HasTokens() {
			addRefreshState(info, c)
		}
		keyInfo[page[i]] = info
	}
	return logical.ListResponseWithInfo(page, keyInfo), nil
}

func (b *backend) pathConnectionRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.respondWithConnection(ctx, req, d, false)
}

// respondWithConnection serves a read of a connection, refreshed first if
// due. withLongLived adds the refresh token and the raw token response.
func (b *backend) respondWithConnection(ctx context.Context, req *logical.Request, d *framework.FieldData, withLongLived bool) (*logical.Response, error) {
	integration, id, err := connectionNames(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	c, warnings, err := b.refresher.readRefreshed(ctx, req.Storage, integration, id)
	if err != nil {
		return httpError(err)
	}
	if c == nil {
		return nil, nil
	}
	return b.connectionAnswer(ctx, req.Storage, c, withLongLived, warnings)
}

// connectionAnswer is the response of every operation that answers with a
// connection (read, write, forced refresh): its fields, with base_url and
// headers rendered, and the warnings.
func (b *backend) connectionAnswer(ctx context.Context, s logical.Storage, c *connectionEntry, withLongLived bool, warnings []string) (*logical.Response, error) {
	resp := &logical.Response{Data: connectionResponse(c, withLongLived)}
	calls, last := b.proxier.proxyCallsOf(c)
	resp.Data["proxy_calls"], resp.Data["last_proxy_call_at"] = calls, formatTime(last)
	rendering, err := b.renderings.get(ctx, s, c.Integration)
	if err != nil {
		return nil, err
	}
	if rendering != nil {
		warnings = append(warnings, rendering.render(c, resp.Data)...)
	}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// connectionResponseSize is how many fields a read of a connection of mode
// returns at most: the eight every mode has, its own, rendering's base_url
// and headers.
func connectionResponseSize(mode catalog.AuthMode, withLongLived bool) int {
	n := 8 + 2 + 2 // common fields, rendering's two, the proxy's two
	switch mode {
	case catalog.OAuth2, catalog.OAuth2CC, catalog.App:
		n += 4 + 5 + 2
		if withLongLived {
			n += 3
		}
	case catalog.Basic:
		n += 2
	default:
		n++
	}
	return n
}

// connectionResponse renders a connection. Secrets are top-level strings so
// that `vault read -field=` works and the audit log HMACs them.
func connectionResponse(c *connectionEntry, withLongLived bool) map[string]any {
	// Sized for the fields c's mode gives, with rendering's two, so that
	// filling it never grows it.
	data := make(map[string]any, connectionResponseSize(c.AuthMode, withLongLived))
	data["integration"] = c.Integration
	data["connection_id"] = c.ConnectionID
	data["auth_mode"] = string(c.AuthMode)
	data["created_at"] = formatTime(c.CreatedAt)
	data["updated_at"] = formatTime(c.UpdatedAt)
	data["metadata"] = nonNilObject(c.Metadata)
	data["connection_config"] = nonNilObject(c.ConnectionConfig)
	data["tags"] = nonNilMap(c.Tags)
	// The stored figures; a read adds the calls since the last save.
	data["proxy_calls"] = c.ProxyCalls
	data["last_proxy_call_at"] = formatTime(c.LastProxyCallAt)
	cr := c.Credentials
	switch c.AuthMode {
	case catalog.OAuth2, catalog.OAuth2CC, catalog.App:
		data["access_token"] = cr.AccessToken
		data["token_type"] = cr.TokenType
		data["expires_at"] = formatTime(cr.ExpiresAt)
		data["scopes"] = nonNilStrings(cr.Scopes)
		addRefreshState(data, c)
		if c.AuthMode == catalog.App {
			data["installation_id"] = c.InstallationID
		}
		if c.AuthMode == catalog.OAuth2CC {
			// The secret is write-only, as the integration's is: a read
			// serves the token, never what mints more of them.
			data["client_id"] = cr.ClientID
			data["client_secret_set"] = cr.ClientSecret != ""
		}
		if withLongLived {
			data["refresh_token"] = cr.RefreshToken
			data["raw_token_response"] = nonNilObject(c.RawTokenResponse)
			data["raw_token_response_note"] = c.RawTokenResponseNote
		}
	case catalog.APIKey:
		data["api_key"] = cr.APIKey
	case catalog.Basic:
		data["username"] = cr.Username
		data["password"] = cr.Password
	case catalog.Custom:
		creds := make(map[string]any, len(cr.Custom))
		for k, v := range cr.Custom {
			creds[k] = v
		}
		data["credentials"] = creds
	}
	return data
}

// addRefreshState shows where the engine stands with a token connection.
func addRefreshState(data map[string]any, c *connectionEntry) {
	data["refresh_status"] = string(c.refreshState())
	data["refresh_failures"] = c.RefreshFailures
	data["last_refresh_error"] = c.LastRefreshError
	data["last_refreshed_at"] = formatTime(c.LastRefreshedAt)
	data["next_refresh_at"] = formatTime(c.NextRefreshAt)
}

// pathConnectionWrite creates or updates a connection: the request's
// fields as a connectionInput, written by the connectionWriter.
func (b *backend) pathConnectionWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration, id, err := connectionNamesWithBody(req, d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	stored, in, err := integrationForWrites(ctx, req.Storage, integration)
	if err != nil {
		return respondError(err)
	}
	input, err := connectionInputOf(d)
	if err != nil {
		return respondError(badInput(err))
	}
	input.RequestID = req.ID
	c, _, err := b.writer.write(ctx, req.Storage, stored, in, id, input)
	if err != nil {
		return respondError(err)
	}
	return b.connectionAnswer(ctx, req.Storage, c, false, nil)
}

// connectionInputOf is the fields of a connection write (or of an import
// item, parsed with the same schema) as a connectionInput. Vault has
// converted each field to its type before (FieldData.Validate), so only a
// value no field schema could convert is refused here.
func connectionInputOf(d *framework.FieldData) (connectionInput, error) {
	in := connectionInput{Given: map[string]bool{}}
	for _, field := range connectionInputStrings {
		if v, ok := d.GetOk(field); ok {
			in.giveString(field, v.(string))
		}
	}
	if _, ok := d.Raw["expires_in"]; ok {
		in.give("expires_in")
		if v, ok := d.GetOk("expires_in"); ok { // null reads as not given
			seconds := v.(int)
			in.ExpiresIn = &seconds
		}
	}
	if v, ok := d.GetOk("scopes"); ok {
		in.give("scopes")
		in.Scopes = v.([]string)
	}
	for field, dst := range map[string]*map[string]any{"metadata": &in.Metadata, "connection_config": &in.ConnectionConfig, "credentials": &in.Credentials} {
		if v, ok := d.GetOk(field); ok {
			in.give(field)
			*dst = v.(map[string]any)
		}
	}
	if _, ok := d.Raw["tags"]; ok {
		v, _, err := d.GetOkErr("tags")
		if err != nil {
			return connectionInput{}, fmt.Errorf("tags must be an object of string values or a list of key=value pairs")
		}
		in.give("tags")
		in.Tags, _ = v.(map[string]string)
	}
	return in, nil
}

func (b *backend) pathConnectionDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration, id, err := connectionNames(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	warnings, err := b.writer.delete(ctx, req.Storage, integration, id, d.Get("revoke").(bool))
	if err != nil {
		return nil, err
	}
	if len(warnings) == 0 {
		return nil, nil
	}
	return &logical.Response{Warnings: warnings}, nil
}

const pathConnectionListHelp = `
Lists the connection ids of one integration, sorted. key_info gives each
connection's auth_mode, created_at, expires_at and tags; no secret is listed.

"tag" lists only the connections that carry one tag, given as key:value:

    vault read connect/connections/github/ list=true tag=organization_id:acme

A list returns one page: at most "limit" ids (default 1000, at most
10000). Continue with "after" (the last id of the previous page). The vault
CLI's list takes no parameters; a read with list=true is a LIST:

    vault read -format=json connect/connections/github/ list=true after=customer-0100 limit=100
`

const pathConnectionHelp = `
A connection is one customer's credentials for one integration. Its id is
unique within the integration and may be reused across integrations, so one
customer id can name its connections everywhere.

Write takes the credentials of the integration's auth_mode:

  OAUTH2     access_token (required), refresh_token, expires_at (RFC 3339)
             or expires_in (seconds), token_type, scopes
  OAUTH2_CC  client_id and client_secret, when the customer created its own
             client at the provider (write-only: reads show client_id and
             client_secret_set); without them the integration's client
             applies. The engine fetches a token with the
             client-credentials grant and renews it when it expires
  API_KEY    api_key
  BASIC      username, password
  CUSTOM     credentials (an object of strings)
  APP        installation_id (required on create): the app installation
             whose tokens the engine mints and renews

Every mode also takes metadata and connection_config (JSON objects). Updates
are partial: omitted fields keep their values. An APP connection's
installation is its installation_id field; its connection_config may not
hold one. A write that changes what an OAUTH2_CC or APP token is issued for
(another installation, a config that resolves to another token URL, another
client_id or client_secret) gets a new token in the same request, or fails
and changes nothing.

Read returns the credentials as top-level fields, so

    vault read -field=access_token connect/connections/github/customer-42

works. An OAuth token that expires within the configured refresh_margin is
refreshed before it is returned. The refresh token and the provider's raw
token response are returned only by the raw sub-path, so a policy can grant
the short-lived credential without them.
`

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
		"tags":               typed(framework.TypeKVPairs, "The connection's tags (labels such as end_user_id or organization_id)."),
		"base_url":           str("The provider's API for this connection: the integration's api_base_url filled from connection_config. Absent when the integration has none."),
		"headers":            typed(framework.TypeMap, "The HTTP headers that authenticate a request to base_url: the integration's request_headers rendered with this connection's credential."),
		"refresh_status":     str("ok, failing, exhausted or reauthorization_required."),
		"refresh_failures":   typed(framework.TypeInt, "Failed refreshes in a row."),
		"last_refresh_error": str("The last refresh failure, without secrets."),
		"last_refreshed_at":  str("When the token was last refreshed (RFC 3339)."),
		"next_refresh_at":    str("When the background refreshes the token next (RFC 3339)."),
		"proxy_calls":        typed(framework.TypeInt64, "How many calls the proxy made with this connection's credential (counted in memory, stored with the connection's next save)."),
		"last_proxy_call_at": str("When the proxy last made a call with this connection's credential (RFC 3339); empty if never."),
	}
	for _, cf := range catalog.CredentialFields() {
		name := cf.Name
		if cf.WriteOnly {
			name += "_set"
		}
		if len(cf.ReadModes) == 0 || cf.RawOnly && !withLongLived {
			continue
		}
		schema := *credentialReadFields[name]
		f[name] = &schema
	}
	if withLongLived {
		f["raw_token_response"] = typed(framework.TypeMap, "The provider's last token response as it sent it, without members that would take it over 64 KiB.")
		f["raw_token_response_note"] = str("Which members of the last token response were dropped for their size; empty when it is whole.")
	}
	return f
}

// credentialReadFields are the types and help of the credential fields
// connection reads return; which fields there are, for which auth modes,
// and which only the raw sub-path returns is catalog.CredentialFields.
var credentialReadFields = map[string]*framework.FieldSchema{
	"access_token":      str("OAUTH2, OAUTH2_CC, APP: the access token."),
	"token_type":        str("OAUTH2, OAUTH2_CC, APP: the token type, usually Bearer."),
	"expires_at":        str("OAUTH2, OAUTH2_CC, APP: when the access token expires (RFC 3339), empty if it does not."),
	"scopes":            typed(framework.TypeStringSlice, "OAUTH2, OAUTH2_CC: the scopes granted."),
	"installation_id":   str("APP: the installation whose tokens the connection holds."),
	"client_id":         str("OAUTH2_CC: the connection's own OAuth client id; empty when the integration's client applies."),
	"client_secret_set": typed(framework.TypeBool, "OAUTH2_CC: whether the connection has a client secret of its own (it is never returned, not even by the raw sub-path)."),
	"api_key":           str("API_KEY: the API key."),
	"username":          str("BASIC: the user name."),
	"password":          str("BASIC: the password."),
	"credentials":       typed(framework.TypeMap, "CUSTOM: the credentials object."),
	"refresh_token":     str("OAUTH2: the refresh token."),
}
