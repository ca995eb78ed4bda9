// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"strings"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The authorization flow, hosted by Vault itself: an application asks for an
// authorization URL for one customer (authorize), the customer consents at the
// provider, the provider redirects the browser to this mount's oauth/callback
// (path_oauth_callback.go), and the engine exchanges the code and stores the
// connection.
func pathConnectionAuthorize(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: connectionPattern + "/authorize",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "connection",
		},
		Fields: map[string]*framework.FieldSchema{
			"integration":   integrationNameField(),
			"connection_id": connectionIDField(),
			"scopes": {
				Type:        framework.TypeCommaStringSlice,
				Description: "Scopes to ask for instead of the integration's; each must be one of the integration's scopes or allowed_scopes.",
			},
			"connection_config": {
				Type:        framework.TypeMap,
				Description: "Connection configuration, e.g. {\"subdomain\": \"acme\"} for providers whose URLs need it; replaces the connection's when the callback stores it. Default: keep the connection's config as it is then.",
			},
			"metadata": {
				Type:        framework.TypeMap,
				Description: "Metadata to store with the connection. Default: keep the existing connection's.",
			},
			"tags": tagsField("Tags of the connection the callback creates. Refused for an existing connection (a re-authorization keeps its tags; change them with a write to the connection), and ignored if the connection was created between authorize and the callback."),
			"return_url": {
				Type:        framework.TypeString,
				Description: "Where the browser goes after the callback; must have the scheme and host of one of config's allowed_return_urls and a path at or under its path. Required when config's oauth_completion is 'application' (the default): the browser arrives with connect_completion added to its query. Otherwise optional; without it the callback shows a page.",
			},
			"browser_binding": {
				Type: framework.TypeString,
				Description: "A value derived from the application's own session of the user who starts the authorization (e.g. an HMAC of its session id), 16 to 512 printable characters, stored only as its SHA-256. " +
					"Required when config's oauth_completion is 'application' (the default): complete must be given it again, so that only the application session that started the authorization can complete it.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: forwardedOperation(b.pathAuthorize, "authorize", okResponse("The authorization URL.", authorizeResponseFields())),
		},
		HelpSynopsis:    "Start the OAuth authorization of a connection: returns the URL to send the customer to.",
		HelpDescription: pathAuthorizeHelp,
	}}
}

func (b *backend) pathAuthorize(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration, id, err := connectionNamesWithBody(req, d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg.RedirectURL == "" {
		return logical.ErrorResponse("redirect_url is not configured: write the external address of this mount's oauth/callback to config first"), nil
	}
	stored, err := getIntegration(ctx, req.Storage, integration)
	if err != nil {
		return nil, err
	}
	if stored == nil {
		return logical.ErrorResponse("integration %q does not exist", integration), nil
	}
	if stored.AuthMode != catalog.OAuth2 {
		return logical.ErrorResponse("authorize is for OAUTH2 integrations; %q uses %s", integration, stored.AuthMode), nil
	}
	in, err := effectiveIntegration(ctx, req.Storage, stored)
	if err != nil {
		return nil, err
	}
	existing, err := b.store.Get(ctx, req.Storage, integration, id)
	if err != nil {
		return nil, err
	}
	r, err := authorizationRequestFrom(id, d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	st, err := newPendingAuthorization(cfg, in, existing, r, b.now())
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	authURL, err := b.authorizer.authorize(ctx, req.Storage, in, existing, st)
	if err != nil {
		return respondError(err)
	}
	return &logical.Response{Data: map[string]any{
		"authorization_url": authURL,
		"state_expires_at":  formatTime(st.ExpiresAt),
	}}, nil
}

// authorizationRequestFrom turns authorize's fields into the request a
// pending authorization is made from, checking each field's form; the
// checks against the integration and config are newPendingAuthorization's.
func authorizationRequestFrom(id string, d *framework.FieldData) (authorizationRequest, error) {
	r := authorizationRequest{connectionID: id}
	if v, ok := d.GetOk("scopes"); ok {
		r.scopes, r.scopesGiven = v.([]string), true
	}
	for field, dst := range map[string]*map[string]any{"connection_config": &r.connectionConfig, "metadata": &r.metadata} {
		v, ok := d.GetOk(field)
		if !ok {
			continue
		}
		obj, err := jsonObject(field, v)
		if err != nil {
			return r, err
		}
		*dst = obj
	}
	r.configGiven, r.metadataGiven = r.connectionConfig != nil, r.metadata != nil
	tags, given, err := tagsFromRequest(d)
	if err != nil {
		return r, err
	}
	r.tags, r.tagsGiven = tags, given
	r.browserBinding, _ = d.Get("browser_binding").(string)
	r.returnURL = strings.TrimSpace(d.Get("return_url").(string))
	return r, nil
}

const pathAuthorizeHelp = `
Returns authorization_url, the provider's consent page for this connection,
and state_expires_at. Send the customer's browser there; after consent the
provider redirects to config's redirect_url (this mount's oauth/callback),
which exchanges the code and stores the connection's tokens.

PKCE (S256) is used unless the integration sets pkce=false. The state is 32
random bytes, stored only as its SHA-256, and is spent by its first use.

    vault write connect/connections/github/org:123/authorize \
        return_url=https://app.example.com/settings/integrations

A re-authorization of an existing connection replaces its credentials and
keeps its metadata and connection_config as they are when the callback
stores it, unless authorize was given new ones, and always keeps its tags:
tags are refused here for an existing connection (change them with a write
to the connection) and ignored for one created before the callback. A connection has
one pending authorization: a new authorize replaces the previous one, and
deleting the connection or its integration deletes it. Requested scopes must be among the
integration's scopes and allowed_scopes.
`

// authorizeResponseFields are what authorize returns.
func authorizeResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"authorization_url": str("The provider's consent page for this connection; send the customer's browser there."),
		"state_expires_at":  str("When the authorization expires (RFC 3339)."),
	}
}
