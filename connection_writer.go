// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// connectionWriter is the one door for writing a connection: the API write,
// every import item and the connect page's post each turn their own input
// into a connectionInput and hand it to write; an edit of one document
// (metadata, connection config) goes through edit. The writer checks the
// input against the integration, decides the event the write causes
// (event_causes.go), has the issuer get the first token of a
// connection whose tokens the engine obtains itself, and stores the
// connection through the store, which alone locks, loads and saves.
type connectionWriter struct {
	store  *connectionStore
	issuer *issuer
	// states are the pending authorizations, which go with their
	// connection.
	pendingAuths *pendingAuthorizationStore
	// writable reports whether this node may store (a performance standby
	// or secondary may not: Vault forwards the request).
	writable func() bool
	now      func() time.Time
}

// connectionInput is one connection write as plain values, whoever asked
// for it. A field counts only when Given names it; its value is then the
// field's (a string untrimmed, a map as given).
type connectionInput struct {
	// Given names each field the write gives, as
	// connections/<integration>/<connection_id> names it, a field given
	// empty or null included: which fields a write gives decides which
	// checks it passes and whether it replaces the connection's
	// credentials.
	Given map[string]bool

	Metadata         map[string]any
	ConnectionConfig map[string]any
	Tags             map[string]string

	// OAUTH2's imported tokens. ExpiresIn is nil when expires_in is not
	// given or given null (which Vault reads as not given).
	AccessToken, RefreshToken, TokenType, ExpiresAt string
	ExpiresIn                                       *int
	Scopes                                          []string
	// OAUTH2_CC's own client.
	ClientID, ClientSecret string
	// API_KEY's, BASIC's and CUSTOM's credentials.
	APIKey, Username, Password string
	Credentials                map[string]any
	// APP's installation.
	InstallationID string

	// CreateOnly refuses the write when the connection exists (decided
	// under its lock, so a concurrent create cannot slip in between): an
	// import without overwrite, a connect page's session that creates.
	CreateOnly bool
	// MergeConnectionConfig merges ConnectionConfig over the connection's
	// config as it is under the lock instead of replacing it (a connect
	// page's reconnect, whose form shows only the schema's keys).
	MergeConnectionConfig bool
	// RequestID is the id of the Vault request of an API write, kept by
	// the connection it creates (connectionEntry.CreateRequestID).
	RequestID string
}

// give marks field given.
func (in *connectionInput) give(field string) {
	if in.Given == nil {
		in.Given = map[string]bool{}
	}
	in.Given[field] = true
}

// giveString gives a string field by its name (access_token, api_key, …);
// a name that is no string field of a write is ignored.
func (in *connectionInput) giveString(field, value string) {
	if dst := in.stringField(field); dst != nil {
		*dst = value
		in.give(field)
	}
}

// stringField is where the value of the string field name is kept, nil
// when name is no string field of a write.
func (in *connectionInput) stringField(name string) *string {
	switch name {
	case "access_token":
		return &in.AccessToken
	case "refresh_token":
		return &in.RefreshToken
	case "token_type":
		return &in.TokenType
	case "expires_at":
		return &in.ExpiresAt
	case "client_id":
		return &in.ClientID
	case "client_secret":
		return &in.ClientSecret
	case "api_key":
		return &in.APIKey
	case "username":
		return &in.Username
	case "password":
		return &in.Password
	case appInstallationKey:
		return &in.InstallationID
	}
	return nil
}

// connectionInputStrings are the string fields of a write, as stringField
// names them.
var connectionInputStrings = []string{
	"access_token", "refresh_token", "token_type", "expires_at", "client_id", "client_secret",
	"api_key", "username", "password", appInstallationKey,
}

// givenFields are the fields the write gives, as catalog's checks of a
// write's fields take them.
func (in *connectionInput) givenFields() map[string]any {
	out := make(map[string]any, len(in.Given))
	for field := range in.Given {
		out[field] = nil
	}
	return out
}

// setTrimmed sets *dst to the string field the write gives, trimmed.
func (in *connectionInput) setTrimmed(field string, dst *string) {
	if in.Given[field] {
		*dst = strings.TrimSpace(*in.stringField(field))
	}
}

// credentialsGiven reports whether the write sets any credential field of
// the mode.
func (in *connectionInput) credentialsGiven(mode catalog.AuthMode) bool {
	for _, f := range mode.CredentialFieldNames() {
		if in.Given[f] {
			return true
		}
	}
	return false
}

// integrationForWrites returns an integration as stored and with its
// provider's settings filled in, both read before any provider call so that
// nothing can fail to be read once the provider has issued a token (read
// once for a whole import). A missing integration is the caller's fault.
func integrationForWrites(ctx context.Context, s logical.Storage, name string) (stored, in *integrationEntry, err error) {
	stored, err = getIntegration(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	if stored == nil {
		return nil, nil, badInput(fmt.Errorf("integration %q does not exist; create it first at integrations/%s", name, name))
	}
	in, err = effectiveIntegration(ctx, s, stored)
	return stored, in, err
}

// integrationIfExists returns an integration with its provider's settings
// filled in, nil when it does not exist: a write to one of its connections
// then answers that the connection does not exist.
func integrationIfExists(ctx context.Context, s logical.Storage, name string) (*integrationEntry, error) {
	stored, err := getIntegration(ctx, s, name)
	if err != nil || stored == nil {
		return nil, err
	}
	return effectiveIntegration(ctx, s, stored)
}

// write creates or updates connection id of in from input, under the
// connection's lock: the entry is built from the one stored (nil if none)
// and checked, the event it causes noted, and a connection whose tokens
// the engine obtains gets its first token (or a new one, see
// issueIfNeeded) before it is stored. stored is the integration as stored,
// in its effective settings (integrationForWrites). created says whether
// the connection is new. Any error leaves the connection as it was.
func (w *connectionWriter) write(ctx context.Context, s logical.Storage, stored, in *integrationEntry, id string, input connectionInput) (c *connectionEntry, created bool, err error) {
	c, err = w.store.Update(ctx, s, in.Name, id, func(existing *connectionEntry) (*connectionEntry, error) {
		created = existing == nil
		if !created && input.CreateOnly {
			return nil, badInput(fmt.Errorf("connection %q already exists; import only creates connections unless the request sets overwrite=true", id))
		}
		c, err := w.written(existing, stored, in, id, input)
		if err != nil {
			return nil, err
		}
		return c, w.issueIfNeeded(ctx, in, existing, c)
	})
	return c, created, err
}

// written is the connection a write makes of existing (nil when there is
// none), checked, with the event it causes noted; any error is the
// caller's fault.
func (w *connectionWriter) written(existing *connectionEntry, stored, in *integrationEntry, id string, input connectionInput) (*connectionEntry, error) {
	if existing != nil && input.MergeConnectionConfig {
		input.ConnectionConfig = mergedConnectionConfig(existing.ConnectionConfig, input.ConnectionConfig)
	}
	c, err := applyConnectionInput(existing, stored, id, input, w.now())
	if err == nil {
		err = checkConnectionSchemas(c, in, existing == nil, input)
	}
	if err != nil {
		return nil, badInput(err)
	}
	// What the write causes (created, or updated when it gives credential
	// fields), noted before any token is issued: a write that moves what
	// an OAUTH2_CC or APP token is for names client_id, client_secret or
	// installation_id, or else only edits the config, which records no
	// event.
	c.noteWritten(createdBefore(existing, input), input.credentialsGiven(c.AuthMode))
	return c, nil
}

// createdBefore is the connection a write's events are counted from:
// existing, or nil when existing was created by this very request (Vault's
// retry of a create whose plugin process died under it, after the save),
// so that the retry records connection.created, which the first attempt
// may never have recorded.
func createdBefore(existing *connectionEntry, input connectionInput) *connectionEntry {
	if existing != nil && input.RequestID != "" && existing.CreateRequestID == input.RequestID {
		return nil
	}
	return existing
}

// edit changes connection id of integration under its lock: change
// edits c in place, or returns why not (nothing is then stored). A
// connection that does not exist is errConnectionNotFound. With in (the
// effective integration, given for an edit of the config), an edit that
// moves what the connection's token was issued for gets a new token in the
// same request (issueIfNeeded), or fails and changes nothing.
func (w *connectionWriter) edit(ctx context.Context, s logical.Storage, integration, id string, in *integrationEntry, change func(c *connectionEntry) error) (*connectionEntry, error) {
	return w.store.Update(ctx, s, integration, id, func(c *connectionEntry) (*connectionEntry, error) {
		if c == nil {
			return nil, connectionNotFound(integration, id)
		}
		before := c.clone()
		if err := change(c); err != nil {
			return nil, err
		}
		c.UpdatedAt = w.now()
		if in != nil {
			if err := w.issueIfNeeded(ctx, in, before, c); err != nil {
				return nil, err
			}
		}
		return c, nil
	})
}

// delete deletes connection id of integration and its pending
// authorization; with revoke, its tokens are revoked at the provider
// first. It returns the warnings of a revocation that failed (the
// connection is deleted all the same).
func (w *connectionWriter) delete(ctx context.Context, s logical.Storage, integration, id string, revoke bool) ([]string, error) {
	var revoker func(*connectionEntry) []string
	if revoke {
		revoker = w.issuer.revoker(ctx, s, integration)
	}
	warnings, err := w.store.Delete(ctx, s, integration, id, revoker)
	if err != nil {
		return nil, err
	}
	if err := w.pendingAuths.DeleteOf(ctx, s, integration, id); err != nil {
		return nil, err
	}
	return warnings, nil
}

// needsIssuedToken reports whether a connection is only worth storing with
// a token the provider has issued: client-credentials and app connections,
// whose tokens the engine obtains itself.
func needsIssuedToken(c *connectionEntry) bool {
	return c.AuthMode.IssuesOwnTokens() && c.Credentials.AccessToken == ""
}

// issueIfNeeded gets c a token, in the request that writes it, when
// the engine obtains c's tokens itself and c has none, or holds one issued
// for something else than c now names (before is the connection as it was,
// nil on create): a token is never served for an installation or tenant it
// was not issued for, not even until its next refresh. An error leaves the
// caller nothing to store.
func (w *connectionWriter) issueIfNeeded(ctx context.Context, in *integrationEntry, before, c *connectionEntry) error {
	if grantMoved(in, before, c) {
		// The token goes; the client that is to ask for the next one
		// stays.
		c.Credentials = credentials{ClientID: c.Credentials.ClientID, ClientSecret: c.Credentials.ClientSecret}
		c.RawTokenResponse = nil
	}
	if !needsIssuedToken(c) {
		return nil
	}
	if !w.writable() {
		return logical.ErrReadOnly
	}
	return w.issuer.issueFirst(ctx, in, c)
}

// applyConnectionInput returns the connection that results from applying
// the input to existing (nil on create), with the checks each field must
// pass first. Any error is the caller's fault and nothing has been changed.
func applyConnectionInput(existing *connectionEntry, in *integrationEntry, id string, input connectionInput, now time.Time) (*connectionEntry, error) {
	if bad := catalog.ConnectionFieldsNotFor(in.AuthMode, input.givenFields()); len(bad) > 0 {
		return nil, fmt.Errorf("%s to integration %q, whose auth_mode is %s", catalog.NotApply(bad), in.Name, in.AuthMode)
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
			CreateRequestID:  input.RequestID,
		}
	}
	if err := applyCredentialInput(&c.Credentials, in.AuthMode, input, now); err != nil {
		return nil, err
	}
	if input.credentialsGiven(in.AuthMode) {
		// New credentials from the caller end any failure streak, and
		// replace any the provider issued that storage refused so far: a
		// failed save of this write is the caller's to see.
		c.RefreshStatus, c.RefreshFailures, c.LastRefreshError = "", 0, ""
		c.issued = false
	}
	for field, doc := range map[string]struct {
		given map[string]any
		dst   *map[string]any
	}{"metadata": {input.Metadata, &c.Metadata}, "connection_config": {input.ConnectionConfig, &c.ConnectionConfig}} {
		if input.Given[field] {
			obj, err := jsonObject(field, doc.given)
			if err == nil {
				err = checkDocumentSize(field, obj)
			}
			if err != nil {
				return nil, err
			}
			*doc.dst = obj
		}
	}
	if err := checkConfigForMode(in.AuthMode, "connection_config", c.ConnectionConfig); err != nil {
		return nil, err
	}
	if input.Given["tags"] {
		if err := validateTags(input.Tags); err != nil {
			return nil, err
		}
		c.Tags = maps.Clone(input.Tags)
		if len(c.Tags) == 0 {
			c.Tags = nil // given and empty clears them
		}
	}
	if err := applyInstallationID(&c, in.AuthMode, input); err != nil {
		return nil, err
	}
	c.UpdatedAt = now
	return &c, nil
}

// checkConnectionSchemas checks a connection write against the
// integration's schemas: its config when the write creates the connection
// or sets connection_config, its credentials when it creates it or sets
// them. A connection written before a schema changed is not refused an
// unrelated edit.
func checkConnectionSchemas(c *connectionEntry, in *integrationEntry, created bool, input connectionInput) error {
	if input.Given["connection_config"] || created {
		if err := in.checkConnectionConfig("connection_config", c.ConnectionConfig); err != nil {
			return err
		}
	}
	if input.credentialsGiven(c.AuthMode) || created {
		if err := in.CredentialsSchema.Check("credentials", credentialValues(c)); err != nil {
			return err
		}
	}
	return checkClientAvailable(c, in)
}

// checkClientAvailable refuses an OAUTH2_CC connection that has no client
// to ask for tokens with: neither its own nor its integration's (whose
// credentials_schema then requires each connection's).
func checkClientAvailable(c *connectionEntry, in *integrationEntry) error {
	if c.AuthMode != catalog.OAuth2CC || c.hasOwnClient() || in.ClientID != "" {
		return nil
	}
	return fmt.Errorf("client_id and client_secret are required: integration %q has no client of its own, each connection brings one", in.Name)
}

// credentialValues are a connection's credentials as credentials_schema
// names them.
func credentialValues(c *connectionEntry) map[string]any {
	cr := c.Credentials
	out := map[string]any{}
	switch c.AuthMode {
	case catalog.OAuth2CC:
		out["client_id"], out["client_secret"] = cr.ClientID, cr.ClientSecret
	case catalog.APIKey:
		out["api_key"] = cr.APIKey
	case catalog.Basic:
		out["username"], out["password"] = cr.Username, cr.Password
	case catalog.Custom:
		for k, v := range cr.Custom {
			out[k] = v
		}
	}
	return out
}

// checkConfigForMode refuses a connection config (shown as field) that a
// connection of mode may not hold: an APP connection's config may not name
// an installation_id. Customers may be granted config writes; the
// installation decides whose repositories the tokens open, so only the
// connection's own field sets it, and a config key that looks as if it did
// is refused rather than ignored.
func checkConfigForMode(mode catalog.AuthMode, field string, cfg map[string]any) error {
	if _, ok := cfg[appInstallationKey]; ok && mode == catalog.App {
		return fmt.Errorf("%s.%s is not allowed on an APP connection: the installation is set by the connection's own %s field, on connections/<integration>/<connection_id>",
			field, appInstallationKey, appInstallationKey)
	}
	return nil
}

// applyInstallationID sets an APP connection's installation from the
// write's installation_id, and nothing else: never from the connection's
// config, which customers may be allowed to edit (entries of earlier
// versions that kept it there are upgraded as they are loaded). A new APP
// connection must name one.
func applyInstallationID(c *connectionEntry, mode catalog.AuthMode, input connectionInput) error {
	if mode != catalog.App {
		return nil
	}
	input.setTrimmed(appInstallationKey, &c.InstallationID)
	if c.InstallationID == "" {
		return errors.New("installation_id is required for an APP connection")
	}
	if !provider.ValidInstallationID(c.InstallationID) {
		return errors.New("installation_id must be a number")
	}
	return nil
}

// applyCredentialInput sets the credential fields of one auth mode and
// checks that the required ones are present afterwards.
func applyCredentialInput(cr *credentials, mode catalog.AuthMode, input connectionInput, now time.Time) error {
	switch mode {
	case catalog.OAuth2:
		return applyOAuthImport(cr, input, now)
	case catalog.OAuth2CC:
		return applyConnectionClient(cr, input)
	case catalog.APIKey:
		input.setTrimmed("api_key", &cr.APIKey)
		if cr.APIKey == "" {
			return errors.New("api_key is required")
		}
	case catalog.Basic:
		input.setTrimmed("username", &cr.Username)
		if input.Given["password"] {
			cr.Password = input.Password // passwords may have meaningful spaces
		}
		if cr.Username == "" {
			return errors.New("username is required")
		}
	case catalog.Custom:
		if input.Given["credentials"] {
			m, err := stringMap("credentials", input.Credentials)
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

// applyConnectionClient sets an OAUTH2_CC connection's own client. The id
// and secret go together: a client id is never sent with the secret of
// another (the integration's, or the connection's previous client's), and
// both empty hand the connection back to the integration's client. A
// client-credentials client is a confidential one (RFC 6749 section 4.4),
// so a secret is required.
func applyConnectionClient(cr *credentials, input connectionInput) error {
	previousID := cr.ClientID
	input.setTrimmed("client_id", &cr.ClientID)
	secretGiven := input.Given["client_secret"]
	if secretGiven {
		cr.ClientSecret = input.ClientSecret // a secret may have meaningful spaces
	}
	switch {
	case cr.ClientID != previousID && cr.ClientID != "" && !secretGiven:
		return errors.New("client_secret is required with a new client_id: the previous client's secret is not sent with another client's id")
	case cr.ClientID != "" && cr.ClientSecret == "":
		return errors.New("client_secret is required with client_id: the connection's own client needs both")
	case cr.ClientID == "" && cr.ClientSecret != "":
		return errors.New("client_id is required with client_secret: the connection's own client needs both (set both empty to use the integration's)")
	}
	return nil
}

// applyOAuthImport takes tokens obtained elsewhere. A new access token
// replaces the expiry too: an expiry left over from the old token would be
// wrong for the new one.
func applyOAuthImport(cr *credentials, input connectionInput, now time.Time) error {
	hasAt, hasIn := input.Given["expires_at"], input.ExpiresIn != nil
	if hasAt && hasIn {
		return errors.New("give expires_at or expires_in, not both")
	}
	if input.Given["access_token"] {
		cr.ExpiresAt = time.Time{}
	}
	input.setTrimmed("access_token", &cr.AccessToken)
	input.setTrimmed("refresh_token", &cr.RefreshToken)
	input.setTrimmed("token_type", &cr.TokenType)
	if input.Given["scopes"] {
		cr.Scopes = input.Scopes
	}
	if hasAt {
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(input.ExpiresAt))
		if err != nil {
			return fmt.Errorf("expires_at must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", printable(input.ExpiresAt))
		}
		cr.ExpiresAt = t.UTC()
	}
	if hasIn {
		cr.ExpiresAt = now.Add(time.Duration(*input.ExpiresIn) * time.Second).UTC()
	}
	if cr.AccessToken == "" {
		return errors.New("access_token is required")
	}
	if cr.TokenType == "" {
		cr.TokenType = "Bearer"
	}
	return nil
}

// documentEdit computes a new document from the stored one and the request
// body.
type documentEdit func(current, body map[string]any) (map[string]any, error)

// replaceDocument is a write of a document: the body replaces it.
func replaceDocument(_, body map[string]any) (map[string]any, error) {
	return body, nil
}

// mergePatchDocument applies body as an RFC 7386 JSON merge patch: keys set
// to null are removed, objects are merged, everything else is replaced.
func mergePatchDocument(current, body map[string]any) (map[string]any, error) {
	doc, err := json.Marshal(nonNilObject(current))
	if err != nil {
		return nil, err
	}
	patch, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	merged, err := jsonpatch.MergePatch(doc, patch)
	if err != nil {
		return nil, fmt.Errorf("applying merge patch: %w", err)
	}
	return decodeObject("merged document", merged)
}

// documentOf is where c keeps the document shown as field: its
// connection_config, else its metadata.
func documentOf(c *connectionEntry, field string) *map[string]any {
	if field == "connection_config" {
		return &c.ConnectionConfig
	}
	return &c.Metadata
}

// editDocument changes one document of connection id of integration (its
// metadata, or its connection_config: field) to what edit makes of it and
// body, checked as every write of it is: its size, and a config against
// the integration's connection_config_schema and what the connection's
// mode allows. A config edit that moves what the connection's token was
// issued for gets a new token in the same request (edit). Errors of the
// input are userErrors.
func (w *connectionWriter) editDocument(ctx context.Context, s logical.Storage, integration, id, field string, edit documentEdit, body map[string]any) (*connectionEntry, error) {
	// A config edit is checked as every config write is; metadata is
	// the application's own.
	config := field == "connection_config"
	var in *integrationEntry // the effective integration, for config edits
	if config {
		var err error
		if in, err = integrationIfExists(ctx, s, integration); err != nil {
			return nil, err
		}
	}
	return w.edit(ctx, s, integration, id, in, func(c *connectionEntry) error {
		doc := documentOf(c, field)
		updated, err := edit(*doc, body)
		if err == nil {
			err = checkDocumentSize(field, updated)
		}
		if err == nil && in != nil {
			err = in.checkConnectionConfig(field, updated)
		}
		if err == nil && config {
			err = checkConfigForMode(c.AuthMode, field, updated)
		}
		if err != nil {
			return badInput(err)
		}
		*doc = updated
		return nil
	})
}
