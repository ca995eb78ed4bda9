// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

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
	st, err := newStateEntry(cfg, in, id, existing, d, b.now())
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

// newStateEntry records what the callback will need from the request. Only
// what the request gives is kept: the callback merges it into the
// connection as it is then, so edits made in between are not undone.
func newStateEntry(cfg *configEntry, in *integrationEntry, id string, existing *connectionEntry, d *framework.FieldData, now time.Time) (*oauthStateEntry, error) {
	st := &oauthStateEntry{
		Integration:  in.Name,
		ConnectionID: id,
		// The code exchange must send what authorize sent, even if the
		// integration changes in between.
		RedirectURL:          in.RedirectURI(cfg.RedirectURL),
		Reauthorization:      existing != nil,
		IntegrationCreatedAt: in.CreatedAt,
		ExpiresAt:            now.Add(cfg.StateTTL),
	}
	if v, ok := d.GetOk("scopes"); ok {
		if err := checkRequestedScopes(v.([]string), in); err != nil {
			return nil, err
		}
		st.Scopes = v.([]string)
	}
	for field, dst := range map[string]*map[string]any{"connection_config": &st.ConnectionConfig, "metadata": &st.Metadata} {
		v, ok := d.GetOk(field)
		if !ok {
			continue
		}
		obj, err := jsonObject(field, v)
		if err == nil {
			err = checkDocumentSize(field, obj)
		}
		if err != nil {
			return nil, err
		}
		*dst = obj
	}
	st.ReplaceConnectionConfig = st.ConnectionConfig != nil
	st.ReplaceMetadata = st.Metadata != nil
	tags, given, err := tagsFromRequest(d)
	if err != nil {
		return nil, err
	}
	if given && existing != nil {
		// Tags decide who may see a connection; authorize's caller may be
		// a customer's own, who must not relabel an existing connection.
		return nil, fmt.Errorf("tags can only be given when authorize creates the connection; %q exists: change its tags with a write to the connection", id)
	}
	st.Tags, st.ReplaceTags = tags, given
	if cfg.applicationCompletes() {
		if err := requireApplicationCompletion(d, st); err != nil {
			return nil, err
		}
	}
	if v := strings.TrimSpace(d.Get("return_url").(string)); v != "" {
		if len(v) > maxReturnURLLen {
			return nil, fmt.Errorf("return_url is longer than %d characters", maxReturnURLLen)
		}
		if err := validateAbsoluteURL("return_url", v); err != nil {
			return nil, err
		}
		if !returnURLAllowed(v, cfg.AllowedReturnURLs) {
			return nil, fmt.Errorf("return_url %q is not under any of config's allowed_return_urls", printable(v))
		}
		st.ReturnURL = v
	}
	return st, nil
}

// Bounds of authorize's browser_binding.
const (
	minBrowserBindingLen = 16
	maxBrowserBindingLen = 512
)

// requireApplicationCompletion records in st that the application
// completes it, with the hash of its browser_binding: without a
// return_url the browser could not bring the completion back, and
// without a binding anyone holding the completion could complete it.
func requireApplicationCompletion(d *framework.FieldData, st *oauthStateEntry) error {
	if strings.TrimSpace(d.Get("return_url").(string)) == "" {
		return errors.New("return_url is required: config's oauth_completion is \"application\", so the browser goes back to the application with a connect_completion, which the application gives to complete")
	}
	binding, _ := d.Get("browser_binding").(string)
	if binding == "" {
		return errors.New("browser_binding is required: config's oauth_completion is \"application\"; give a value derived from your own session of this user (e.g. an HMAC of its session id) and give it again to complete")
	}
	if err := checkBrowserBinding(binding); err != nil {
		return err
	}
	st.BrowserBindingHash, st.ApplicationCompletes = hashState(binding), true
	return nil
}

// checkBrowserBinding checks a browser_binding's length and characters,
// never echoing it.
func checkBrowserBinding(binding string) error {
	if len(binding) < minBrowserBindingLen || len(binding) > maxBrowserBindingLen {
		return fmt.Errorf("browser_binding must be %d to %d characters long", minBrowserBindingLen, maxBrowserBindingLen)
	}
	for _, r := range binding {
		if r < 0x21 || r > 0x7e {
			return errors.New("browser_binding must be printable ASCII characters without spaces")
		}
	}
	return nil
}

// maxReturnURLLen bounds what a pending state carries of a return URL.
const maxReturnURLLen = 2048

// checkRequestedScopes refuses scopes beyond the integration's scopes and
// allowed_scopes: whoever may call authorize must not widen the access the
// operator configured.
func checkRequestedScopes(requested []string, in *integrationEntry) error {
	allowed := map[string]bool{}
	for _, s := range append(append([]string(nil), in.Scopes...), in.AllowedScopes...) {
		allowed[s] = true
	}
	for _, s := range requested {
		if !allowed[s] {
			return fmt.Errorf("scope %q is not one of the integration's scopes or allowed_scopes", printable(s))
		}
	}
	return nil
}

// returnURLAllowed reports whether u is under one of the allowed URLs,
// compared as parsed URLs: the same scheme and host, and a path equal to the
// allowed path or below it at a '/' boundary. Paths with dot segments or
// encoded slashes, dots or backslashes are refused outright, since browsers
// and servers resolve them differently from a string comparison.
func returnURLAllowed(u string, allowedURLs []string) bool {
	target, err := url.Parse(u)
	if err != nil || target.User != nil || !cleanURLPath(target) {
		return false
	}
	for _, a := range allowedURLs {
		allowed, err := url.Parse(a)
		if err != nil {
			continue
		}
		if !strings.EqualFold(target.Scheme, allowed.Scheme) || !strings.EqualFold(target.Host, allowed.Host) {
			continue
		}
		base := strings.TrimSuffix(allowed.Path, "/")
		if target.Path == base || target.Path == allowed.Path || strings.HasPrefix(target.Path, base+"/") {
			return true
		}
	}
	return false
}

// cleanURLPath reports whether u's path means what it says: no dot
// segments, no encoded '/', '.' or '\\', nothing path.Clean would change.
func cleanURLPath(u *url.URL) bool {
	raw := strings.ToLower(u.EscapedPath())
	for _, bad := range []string{"%2f", "%2e", "%5c", "\\"} {
		if strings.Contains(raw, bad) {
			return false
		}
	}
	if u.Path == "" {
		return true
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
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
