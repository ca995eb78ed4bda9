package connect

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// connectionPattern matches connections/<integration>/<connection_id>.
var connectionPattern = "connections/" + segment("integration") + "/" + segment("connection_id")

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
					Description: "List only connection ids that sort after this one (for paging).",
				},
				"limit": {
					Type:        framework.TypeInt,
					Description: "Return at most this many connection ids; 0 means all.",
				},
			},
			Operations:      onlyOperation(logical.ListOperation, b.pathConnectionList, "list"),
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
			Operations:      entryOperations(b.pathConnectionRead, b.pathConnectionWrite, b.pathConnectionDelete),
			HelpSynopsis:    "Create, read, update or delete a connection: one customer's credentials for one integration.",
			HelpDescription: pathConnectionHelp,
		},
		{
			// Anything deeper than the known sub-paths is a connection id
			// with a '/' in it, or a typo; say so instead of a bare 404.
			Pattern: connectionPattern + "/.+",
			Fields: map[string]*framework.FieldSchema{
				"integration":   integrationNameField(),
				"connection_id": connectionIDField(),
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   &framework.PathOperation{Callback: badConnectionPath, Unpublished: true},
				logical.UpdateOperation: &framework.PathOperation{Callback: badConnectionPath, Unpublished: true},
				logical.DeleteOperation: &framework.PathOperation{Callback: badConnectionPath, Unpublished: true},
				logical.ListOperation:   &framework.PathOperation{Callback: badConnectionPath, Unpublished: true},
				logical.PatchOperation:  &framework.PathOperation{Callback: badConnectionPath, Unpublished: true},
			},
			HelpSynopsis:    "Not a connection path.",
			HelpDescription: "Connection ids cannot contain '/'. A connection's sub-paths are raw, refresh, metadata and config.",
		},
	}
}

func badConnectionPath(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return logical.ErrorResponse("no such path: connection ids cannot contain '/', and a connection's sub-paths are raw, refresh, metadata and config"), nil
}

func integrationNameField() *framework.FieldSchema {
	return &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Name of the integration.",
		Required:    true,
	}
}

func connectionIDField() *framework.FieldSchema {
	return &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Connection id, unique within its integration: letters, digits and . _ @ : + = - (up to 255), e.g. a UUID, an e-mail address or org:123.",
		Required:    true,
	}
}

func connectionFields() map[string]*framework.FieldSchema {
	sensitive := &framework.DisplayAttributes{Sensitive: true}
	return map[string]*framework.FieldSchema{
		"integration":   integrationNameField(),
		"connection_id": connectionIDField(),
		"access_token": {
			Type:         framework.TypeString,
			Description:  "OAUTH2: the access token to import. Required on create.",
			DisplayAttrs: sensitive,
		},
		"refresh_token": {
			Type:         framework.TypeString,
			Description:  "OAUTH2: the refresh token, which lets the engine renew the access token. Returned only by the raw sub-path.",
			DisplayAttrs: sensitive,
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
		"api_key": {
			Type:         framework.TypeString,
			Description:  "API_KEY: the API key. Required.",
			DisplayAttrs: sensitive,
		},
		"username": {
			Type:        framework.TypeString,
			Description: "BASIC: the user name. Required.",
		},
		"password": {
			Type:         framework.TypeString,
			Description:  "BASIC: the password.",
			DisplayAttrs: sensitive,
		},
		"credentials": {
			Type:        framework.TypeMap,
			Description: "CUSTOM: an object of string values, e.g. {\"client_key\": \"...\", \"region\": \"eu\"}. Required on create.",
		},
		"metadata": {
			Type:        framework.TypeMap,
			Description: "Any JSON object the application wants to keep with the connection. Replaces the stored metadata; patch it through the metadata sub-path.",
		},
		"connection_config": {
			Type:        framework.TypeMap,
			Description: "Per-connection configuration as a JSON object, e.g. {\"subdomain\": \"acme\"} for providers whose URLs depend on the customer.",
		},
		"revoke": {
			Type:        framework.TypeBool,
			Default:     true,
			Description: "On delete: revoke the connection's tokens at the provider's revocation_url first (RFC 7009). A failure is a warning; the deletion happens anyway.",
		},
	}
}

// connectionNames reads and validates the integration and connection id of a
// request path.
func connectionNames(d *framework.FieldData) (string, string, error) {
	integration := d.Get("integration").(string)
	if err := validateIntegrationName(integration); err != nil {
		return "", "", err
	}
	id := d.Get("connection_id").(string)
	if err := validateConnectionID(id); err != nil {
		return "", "", err
	}
	return integration, id, nil
}

func (b *backend) connectionExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	integration, id, err := connectionNames(d)
	if err != nil {
		// Let the handler answer with the 400.
		return false, nil
	}
	c, err := getConnection(ctx, req.Storage, integration, id)
	return c != nil, err
}

func (b *backend) pathConnectionList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration := d.Get("integration").(string)
	if err := validateIntegrationName(integration); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	limit := d.Get("limit").(int)
	if limit < 0 {
		return logical.ErrorResponse("limit must not be negative"), nil
	}
	ids, err := listConnections(ctx, req.Storage, integration)
	if err != nil {
		return nil, err
	}
	ids = page(ids, d.Get("after").(string), limit)

	keyInfo := make(map[string]any, len(ids))
	for _, id := range ids {
		c, err := b.connection(ctx, req.Storage, integration, id)
		if err != nil {
			return nil, err
		}
		if c == nil { // deleted since the list
			continue
		}
		info := map[string]any{
			"auth_mode":  string(c.AuthMode),
			"created_at": formatTime(c.CreatedAt),
			"expires_at": formatTime(c.Credentials.ExpiresAt),
		}
		if c.AuthMode.hasTokens() {
			addRefreshState(info, c)
		}
		keyInfo[id] = info
	}
	return logical.ListResponseWithInfo(ids, keyInfo), nil
}

// page returns the sorted keys strictly after `after`, at most limit of them
// (limit 0: all).
func page(sorted []string, after string, limit int) []string {
	start := 0
	if after != "" {
		start = sort.Search(len(sorted), func(i int) bool { return sorted[i] > after })
	}
	out := sorted[start:]
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
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
	c, warnings, err := b.readConnection(ctx, req.Storage, integration, id)
	if err != nil || c == nil {
		return nil, err
	}
	resp := &logical.Response{Data: connectionResponse(c, withLongLived)}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// connectionResponse renders a connection. Secrets are top-level strings so
// that `vault read -field=` works and the audit log HMACs them.
func connectionResponse(c *connectionEntry, withLongLived bool) map[string]any {
	data := map[string]any{
		"integration":       c.Integration,
		"connection_id":     c.ConnectionID,
		"auth_mode":         string(c.AuthMode),
		"created_at":        formatTime(c.CreatedAt),
		"updated_at":        formatTime(c.UpdatedAt),
		"metadata":          nonNilObject(c.Metadata),
		"connection_config": nonNilObject(c.ConnectionConfig),
	}
	cr := c.Credentials
	switch c.AuthMode {
	case authModeOAuth2, authModeOAuth2CC, authModeApp:
		data["access_token"] = cr.AccessToken
		data["token_type"] = cr.TokenType
		data["expires_at"] = formatTime(cr.ExpiresAt)
		data["scopes"] = nonNilStrings(cr.Scopes)
		addRefreshState(data, c)
		if withLongLived {
			data["refresh_token"] = cr.RefreshToken
			data["raw_token_response"] = nonNilObject(c.RawTokenResponse)
		}
	case authModeAPIKey:
		data["api_key"] = cr.APIKey
	case authModeBasic:
		data["username"] = cr.Username
		data["password"] = cr.Password
	case authModeCustom:
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

func nonNilObject(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func (b *backend) pathConnectionWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration, id, err := connectionNames(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := checkPayloadSize(req.Data); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	in, err := getIntegration(ctx, req.Storage, integration)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return logical.ErrorResponse("integration %q does not exist; create it first at integrations/%s", integration, integration), nil
	}

	lock := b.connLock(integration, id)
	lock.Lock()
	defer lock.Unlock()

	existing, err := b.loadConnection(ctx, req.Storage, integration, id)
	if err != nil {
		return nil, err
	}
	c, err := applyConnectionFields(existing, in, id, d, b.now())
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if c.AuthMode.hasTokens() && c.AuthMode != authModeOAuth2 && c.Credentials.AccessToken == "" {
		// Client-credentials and app connections are only worth storing
		// with a token the provider has actually issued.
		res, eff, err := b.obtainToken(context.WithoutCancel(ctx), req.Storage, in, c)
		var badCfg *badConfigError
		if errors.As(err, &badCfg) {
			return logical.ErrorResponse(err.Error()), nil
		}
		if err != nil {
			return nil, logical.CodedError(statusFailedDependency, fmt.Sprintf("could not obtain a token for connection %q, nothing was stored: %s", id, err))
		}
		applyToken(c, eff, res, b.now())
	}
	if err := b.saveConnection(ctx, req.Storage, c); err != nil {
		return nil, err
	}
	return &logical.Response{Data: connectionResponse(c, false)}, nil
}

// applyConnectionFields returns the connection that results from applying
// the request to existing (nil on create). Any error is the caller's fault
// and nothing has been changed.
func applyConnectionFields(existing *connectionEntry, in *integrationEntry, id string, d *framework.FieldData, now time.Time) (*connectionEntry, error) {
	if bad := fieldsNotFor(in.AuthMode, d.Raw, connectionFieldOwners); len(bad) > 0 {
		return nil, fmt.Errorf("%s to integration %q, whose auth_mode is %s", notApply(bad), in.Name, in.AuthMode)
	}
	var c connectionEntry
	if existing != nil {
		c = *existing
	} else {
		c = connectionEntry{
			Integration:      in.Name,
			ConnectionID:     id,
			AuthMode:         in.AuthMode,
			Metadata:         map[string]any{},
			ConnectionConfig: map[string]any{},
			CreatedAt:        now,
		}
	}
	if err := applyCredentialFields(&c.Credentials, in.AuthMode, d, now); err != nil {
		return nil, err
	}
	if credentialsGiven(in.AuthMode, d) {
		// New credentials from the caller end any failure streak.
		c.RefreshStatus, c.RefreshFailures, c.LastRefreshError = "", 0, ""
	}
	for field, dst := range map[string]*map[string]any{"metadata": &c.Metadata, "connection_config": &c.ConnectionConfig} {
		if v, ok := d.GetOk(field); ok {
			obj, err := jsonObject(field, v)
			if err != nil {
				return nil, err
			}
			*dst = obj
		}
	}
	c.UpdatedAt = now
	return &c, nil
}

// credentialsGiven reports whether the request sets any credential field of
// the mode.
func credentialsGiven(mode authMode, d *framework.FieldData) bool {
	for _, f := range connectionModeFields[mode] {
		if _, ok := d.Raw[f]; ok {
			return true
		}
	}
	return false
}

// applyCredentialFields sets the credential fields of one auth mode and
// checks that the required ones are present afterwards.
func applyCredentialFields(cr *credentials, mode authMode, d *framework.FieldData, now time.Time) error {
	switch mode {
	case authModeOAuth2:
		return applyOAuthImport(cr, d, now)
	case authModeAPIKey:
		setString(d, "api_key", &cr.APIKey)
		if cr.APIKey == "" {
			return errors.New("api_key is required")
		}
	case authModeBasic:
		setString(d, "username", &cr.Username)
		if v, ok := d.GetOk("password"); ok {
			cr.Password = v.(string) // passwords may have meaningful spaces
		}
		if cr.Username == "" {
			return errors.New("username is required")
		}
	case authModeCustom:
		if v, ok := d.GetOk("credentials"); ok {
			m, err := stringMap("credentials", v.(map[string]any))
			if err != nil {
				return err
			}
			cr.Custom = m
		}
		if len(cr.Custom) == 0 {
			return errors.New("credentials is required: an object of string values")
		}
	}
	return nil
}

// applyOAuthImport takes tokens obtained elsewhere. A new access token
// replaces the expiry too: an expiry left over from the old token would be
// wrong for the new one.
func applyOAuthImport(cr *credentials, d *framework.FieldData, now time.Time) error {
	_, hasAt := d.GetOk("expires_at")
	_, hasIn := d.GetOk("expires_in")
	if hasAt && hasIn {
		return errors.New("give expires_at or expires_in, not both")
	}
	if _, ok := d.GetOk("access_token"); ok {
		cr.ExpiresAt = time.Time{}
	}
	setString(d, "access_token", &cr.AccessToken)
	setString(d, "refresh_token", &cr.RefreshToken)
	setString(d, "token_type", &cr.TokenType)
	if v, ok := d.GetOk("scopes"); ok {
		cr.Scopes = v.([]string)
	}
	if v, ok := d.GetOk("expires_at"); ok {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(v.(string)))
		if err != nil {
			return fmt.Errorf("expires_at must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", printable(v.(string)))
		}
		cr.ExpiresAt = t.UTC()
	}
	if v, ok := d.GetOk("expires_in"); ok {
		cr.ExpiresAt = now.Add(time.Duration(v.(int)) * time.Second).UTC()
	}
	if cr.AccessToken == "" {
		return errors.New("access_token is required")
	}
	if cr.TokenType == "" {
		cr.TokenType = "Bearer"
	}
	return nil
}

func (b *backend) pathConnectionDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration, id, err := connectionNames(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	lock := b.connLock(integration, id)
	lock.Lock()
	defer lock.Unlock()

	var warnings []string
	if d.Get("revoke").(bool) {
		c, err := b.loadConnection(ctx, req.Storage, integration, id)
		if err != nil {
			return nil, err
		}
		in, err := getIntegration(ctx, req.Storage, integration)
		if err != nil {
			return nil, err
		}
		if c != nil && in != nil && c.AuthMode.isOAuth() {
			warnings = b.revokeTokens(context.WithoutCancel(ctx), req.Storage, in, c)
		}
	}
	if err := b.dropConnection(ctx, req.Storage, integration, id); err != nil {
		return nil, err
	}
	if len(warnings) == 0 {
		return nil, nil
	}
	return &logical.Response{Warnings: warnings}, nil
}

// removeConnection deletes a connection under its lock, so a refresh in
// flight cannot write it back.
func (b *backend) removeConnection(ctx context.Context, s logical.Storage, integration, id string) error {
	lock := b.connLock(integration, id)
	lock.Lock()
	defer lock.Unlock()
	return b.dropConnection(ctx, s, integration, id)
}

const pathConnectionListHelp = `
Lists the connection ids of one integration, sorted. key_info gives each
connection's auth_mode, created_at and expires_at; no secret is listed.

Page with "after" (the last id of the previous page) and "limit":

    vault list -format=json connect/connections/github after=customer-0100 limit=100
`

const pathConnectionHelp = `
A connection is one customer's credentials for one integration. Its id is
unique within the integration and may be reused across integrations, so one
customer id can name its connections everywhere.

Write takes the credentials of the integration's auth_mode:

  OAUTH2     access_token (required), refresh_token, expires_at (RFC 3339)
             or expires_in (seconds), token_type, scopes
  OAUTH2_CC  nothing: the engine fetches a token with the client-credentials
             grant and renews it when it expires
  API_KEY    api_key
  BASIC      username, password
  CUSTOM     credentials (an object of strings)

Every mode also takes metadata and connection_config (JSON objects). Updates
are partial: omitted fields keep their values.

Read returns the credentials as top-level fields, so

    vault read -field=access_token connect/connections/github/customer-42

works. An OAuth token that expires within the configured refresh_margin is
refreshed before it is returned. The refresh token and the provider's raw
token response are returned only by the raw sub-path, so a policy can grant
the short-lived credential without them.
`
