// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathSessions(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "sessions/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "session",
			},
			Fields: sessionFields(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: forwardedOperation(b.pathSessionCreate, "create", okResponse("The session's page and id.", sessionCreateResponseFields())),
			},
			HelpSynopsis:    "Create a connect session: a short-lived link to a page where a customer connects one connection itself.",
			HelpDescription: pathSessionsHelp,
		},
		{
			Pattern: "sessions/" + segment("session_id"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "session",
			},
			Fields: map[string]*framework.FieldSchema{
				"session_id": {Type: framework.TypeString, Required: true, Description: "The session_id that sessions answered."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   localOperation(b.pathSessionRead, "read", okResponse("The session, without its secret.", sessionReadResponseFields())),
				logical.DeleteOperation: forwardedOperation(b.pathSessionDelete, "revoke", noContentResponse()),
			},
			HelpSynopsis:    "Read or revoke a connect session.",
			HelpDescription: pathSessionHelp,
		},
	}
}

func sessionFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"connection_id": {
			Type:        framework.TypeString,
			Required:    true,
			Description: "The connection the page connects: the customer's id, as in connections/<integration>/<connection_id>.",
		},
		"integrations": {
			Type:        framework.TypeCommaStringSlice,
			Description: "The integrations the page offers. Default: every integration of the mount the page can connect (not APP).",
		},
		"tags": tagsField("Copied to the connection the page makes (a reconnect keeps the connection's), and so carried by its events."),
		"metadata": {
			Type:        framework.TypeMap,
			Description: "Metadata copied to the connection the page makes (a JSON object).",
		},
		"return_url": {
			Type:        framework.TypeString,
			Description: "Where the success page links back to; must be under one of config's allowed_return_urls.",
		},
		"ttl": {
			Type:        framework.TypeDurationSecond,
			Default:     int(defaultSessionTTL.Seconds()),
			Description: "How long the link works: any positive duration up to 24h. Default 30m.",
		},
		"display_name": {
			Type:        framework.TypeString,
			Description: "Whom the page connects for, e.g. the customer's organisation (\"Acme Corp\"), at most 200 printable characters: every page of the session says \"Connecting GitHub for Acme Corp\", so that a person sent someone else's link can see it is not theirs.",
		},
		"reconnect": {
			Type:        framework.TypeBool,
			Description: "Re-connect an existing connection: the page replaces its credentials, keeps its metadata and tags, and sets the connection_config keys the customer fills in over its connection_config (the others are kept).",
		},
	}
}

func sessionCreateResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"connect_url": str("The page to send the customer's browser to; it holds the session's secret."),
		"expires_at":  str("When the link stops working (RFC 3339)."),
		"session_id":  str("The session's public id, to read or revoke it; not its secret."),
	}
}

func sessionReadResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"session_id":            str("The session's public id."),
		"connection_id":         str("The connection the page connects."),
		"integrations":          typed(framework.TypeStringSlice, "The integrations offered; empty offers all."),
		"tags":                  typed(framework.TypeKVPairs, "Tags copied to the connection."),
		"metadata":              typed(framework.TypeMap, "Metadata copied to the connection."),
		"return_url":            str("Where the success page links back to."),
		"reconnect":             typed(framework.TypeBool, "Whether the page re-connects an existing connection."),
		"display_name":          str("Whom the page connects for."),
		"created_at":            str("When the session was created (RFC 3339)."),
		"expires_at":            str("When the link stops working (RFC 3339)."),
		"status":                str("active, connected or expired."),
		"connected_integration": str("The integration the session connected, once it has."),
		"connected_at":          str("When it connected (RFC 3339)."),
	}
}

// pathSessionCreate creates a connect session: the request's fields as a
// sessionInput, created by the sessionWriter, answered with the page's
// link.
func (b *backend) pathSessionCreate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := checkPayloadSize(req.Data); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	base, err := connectBaseURL(cfg)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	e, secret, err := b.sessionWriter.create(ctx, req.Storage, cfg, sessionInputOf(d))
	var limit *sessionLimitError
	if errors.As(err, &limit) {
		return nil, logical.CodedError(http.StatusTooManyRequests, err.Error())
	}
	if err != nil {
		return respondError(err)
	}
	return &logical.Response{Data: map[string]any{
		"connect_url": base + "/" + connectUIPath + "?" + url.Values{sessionParam: {secret}}.Encode(),
		"expires_at":  formatTime(e.ExpiresAt),
		"session_id":  e.ID,
	}}, nil
}

// sessionInputOf is the fields of a session request as a sessionInput
// (tags already converted: checkFieldShapes refused any that do not).
func sessionInputOf(d *framework.FieldData) sessionInput {
	in := sessionInput{
		ConnectionID: d.Get("connection_id").(string),
		TTL:          time.Duration(d.Get("ttl").(int)) * time.Second,
		Reconnect:    d.Get("reconnect").(bool),
		DisplayName:  d.Get("display_name").(string),
		Integrations: d.Get("integrations").([]string),
		ReturnURL:    d.Get("return_url").(string),
	}
	if _, ok := d.Raw["tags"]; ok {
		in.Tags, _ = d.Get("tags").(map[string]string)
	}
	if v, ok := d.GetOk("metadata"); ok {
		in.Metadata, in.MetadataGiven = v.(map[string]any), true
	}
	return in
}

// checkReturnURL checks a session's return_url as authorize checks its
// own (the sessionWriter's checkReturnURL).
func checkReturnURL(v string, allowed []string) error {
	if len(v) > maxReturnURLLen {
		return fmt.Errorf("return_url is longer than %d characters", maxReturnURLLen)
	}
	if err := validateAbsoluteURL("return_url", v); err != nil {
		return err
	}
	if !returnURLAllowed(v, allowed) {
		return fmt.Errorf("return_url %q is not under any of config's allowed_return_urls", printable(v))
	}
	return nil
}

// connectBaseURL is the mount's external address: config's public_url,
// else redirect_url without its oauth/callback.
func connectBaseURL(cfg *configEntry) (string, error) {
	if cfg.PublicURL != "" {
		return cfg.PublicURL, nil
	}
	if base, ok := strings.CutSuffix(cfg.RedirectURL, "/"+callbackPath); ok && cfg.RedirectURL != "" {
		return base, nil
	}
	return "", errors.New("public_url is not configured (nor a redirect_url ending in /oauth/callback): write this mount's external address to config's public_url first")
}

func (b *backend) pathSessionRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id := d.Get("session_id").(string)
	if !validSessionID(id) {
		return logical.ErrorResponse("session_id must be the 32 hexadecimal characters sessions answered"), nil
	}
	e, err := b.sessions.ByID(ctx, req.Storage, id)
	if err != nil || e == nil {
		return nil, err
	}
	status := "active"
	switch {
	case e.ConnectedIntegration != "":
		status = "connected"
	case !b.now().Before(e.ExpiresAt):
		status = "expired"
	}
	return &logical.Response{Data: map[string]any{
		"session_id":            e.ID,
		"connection_id":         e.ConnectionID,
		"integrations":          nonNilStrings(e.Integrations),
		"tags":                  nonNilMap(e.Tags),
		"metadata":              nonNilObject(e.Metadata),
		"return_url":            e.ReturnURL,
		"reconnect":             e.Reconnect,
		"display_name":          e.DisplayName,
		"created_at":            formatTime(e.CreatedAt),
		"expires_at":            formatTime(e.ExpiresAt),
		"status":                status,
		"connected_integration": e.ConnectedIntegration,
		"connected_at":          formatTime(e.ConnectedAt),
	}}, nil
}

func (b *backend) pathSessionDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	id := d.Get("session_id").(string)
	if !validSessionID(id) {
		return logical.ErrorResponse("session_id must be the 32 hexadecimal characters sessions answered"), nil
	}
	if _, err := b.sessions.Revoke(ctx, req.Storage, id); err != nil {
		return nil, err
	}
	return nil, nil
}

const pathSessionsHelp = `
Creates a connect session for one connection id and answers connect_url,
a page served by Vault itself where the customer picks one of the allowed
integrations and connects it: an API key, Basic or custom credentials
typed into a form, or OAuth consent at the provider. The application never
sees the credentials; they go from the browser straight to Vault.

    vault write connect/sessions connection_id=org:123 \
        integrations=stripe,github tags=end_user_id=42 \
        return_url=https://app.example.com/integrations ttl=30m

connect_url holds the session's secret (32 random bytes, stored only as
its SHA-256): whoever has the link may connect that connection id to the
allowed integrations, once, until expires_at. session_id is not the secret;
revoke the session with "vault delete connect/sessions/<session_id>".

reconnect=true replaces an existing connection's credentials and keeps its
metadata and tags. Its connection_config is merged, not replaced: the keys
the customer fills in are set over it (for OAUTH2, over the config as it is
when the callback stores the connection), and the others, blank optional
ones and keys outside connection_config_schema, are kept; the merged config
is checked against the schema. Sessions need config's public_url (or a redirect_url
ending in /oauth/callback) and are capped by config's max_sessions (429).

A policy grants sessions like authorize: "update" on connect/sessions lets
its holder create a page for any connection id and integration, as
"update" on connect/connections/+/+/authorize does; narrow it with
allowed_parameters (e.g. integrations = ["stripe"]).
`

const pathSessionHelp = `
Read shows a session without its secret: its connection, integrations,
tags, metadata, return_url, expiry and status (active, connected,
expired). Delete revokes it: its link stops working at once.
`
