// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// applyConnectionFields returns the connection that results from applying
// the request to existing (nil on create): how the fields of a connection
// write (create, update, an import item) become an entry, with the checks
// each must pass first (this file). Any error is the caller's fault and
// nothing has been changed.
func applyConnectionFields(existing *connectionEntry, in *integrationEntry, id string, d *framework.FieldData, now time.Time) (*connectionEntry, error) {
	if bad := catalog.ConnectionFieldsNotFor(in.AuthMode, d.Raw); len(bad) > 0 {
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
		}
	}
	if err := applyCredentialFields(&c.Credentials, in.AuthMode, d, now); err != nil {
		return nil, err
	}
	if credentialsGiven(in.AuthMode, d) {
		// New credentials from the caller end any failure streak, and
		// replace any the provider issued that storage refused so far: a
		// failed save of this write is the caller's to see.
		c.RefreshStatus, c.RefreshFailures, c.LastRefreshError = "", 0, ""
		c.issued = false
	}
	for field, dst := range map[string]*map[string]any{"metadata": &c.Metadata, "connection_config": &c.ConnectionConfig} {
		if v, ok := d.GetOk(field); ok {
			obj, err := jsonObject(field, v)
			if err == nil {
				err = checkDocumentSize(field, obj)
			}
			if err != nil {
				return nil, err
			}
			*dst = obj
		}
	}
	if err := checkConfigForMode(in.AuthMode, "connection_config", c.ConnectionConfig); err != nil {
		return nil, err
	}
	tags, given, err := tagsFromRequest(d)
	if err != nil {
		return nil, err
	}
	if given {
		c.Tags = tags
	}
	if err := applyInstallationID(&c, in.AuthMode, d); err != nil {
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
func checkConnectionSchemas(c *connectionEntry, in *integrationEntry, created bool, d *framework.FieldData) error {
	if _, ok := d.Raw["connection_config"]; ok || created {
		if err := in.checkConnectionConfig("connection_config", c.ConnectionConfig); err != nil {
			return err
		}
	}
	if credentialsGiven(c.AuthMode, d) || created {
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
// request's installation_id, and nothing else: never from the connection's
// config, which customers may be allowed to edit (entries of earlier
// versions that kept it there are upgraded as they are loaded). A new APP
// connection must name one.
func applyInstallationID(c *connectionEntry, mode catalog.AuthMode, d *framework.FieldData) error {
	if mode != catalog.App {
		return nil
	}
	setString(d, appInstallationKey, &c.InstallationID)
	if c.InstallationID == "" {
		return errors.New("installation_id is required for an APP connection")
	}
	if !provider.ValidInstallationID(c.InstallationID) {
		return errors.New("installation_id must be a number")
	}
	return nil
}

// credentialsGiven reports whether the request sets any credential field of
// the mode.
func credentialsGiven(mode catalog.AuthMode, d *framework.FieldData) bool {
	for _, f := range mode.CredentialFieldNames() {
		if _, ok := d.Raw[f]; ok {
			return true
		}
	}
	return false
}

// applyCredentialFields sets the credential fields of one auth mode and
// checks that the required ones are present afterwards.
func applyCredentialFields(cr *credentials, mode catalog.AuthMode, d *framework.FieldData, now time.Time) error {
	switch mode {
	case catalog.OAuth2:
		return applyOAuthImport(cr, d, now)
	case catalog.OAuth2CC:
		return applyConnectionClient(cr, d)
	case catalog.APIKey:
		setString(d, "api_key", &cr.APIKey)
		if cr.APIKey == "" {
			return errors.New("api_key is required")
		}
	case catalog.Basic:
		setString(d, "username", &cr.Username)
		if v, ok := d.GetOk("password"); ok {
			cr.Password = v.(string) // passwords may have meaningful spaces
		}
		if cr.Username == "" {
			return errors.New("username is required")
		}
	case catalog.Custom:
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

// applyConnectionClient sets an OAUTH2_CC connection's own client. The id
// and secret go together: a client id is never sent with the secret of
// another (the integration's, or the connection's previous client's), and
// both empty hand the connection back to the integration's client. A
// client-credentials client is a confidential one (RFC 6749 section 4.4),
// so a secret is required.
func applyConnectionClient(cr *credentials, d *framework.FieldData) error {
	previousID := cr.ClientID
	setString(d, "client_id", &cr.ClientID)
	_, secretGiven := d.GetOk("client_secret")
	if secretGiven {
		cr.ClientSecret = d.Get("client_secret").(string) // a secret may have meaningful spaces
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
