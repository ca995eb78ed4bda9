package connect

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
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
				Description: "Scopes to ask for instead of the integration's.",
			},
			"connection_config": {
				Type:        framework.TypeMap,
				Description: "Connection configuration, e.g. {\"subdomain\": \"acme\"} for providers whose URLs need it. Default: the existing connection's.",
			},
			"metadata": {
				Type:        framework.TypeMap,
				Description: "Metadata to store with the connection. Default: keep the existing connection's.",
			},
			"return_url": {
				Type:        framework.TypeString,
				Description: "Where the browser goes after the callback; must start with one of config's allowed_return_urls. Without it the callback shows a page.",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: forwardedOperation(b.pathAuthorize, "authorize"),
		},
		HelpSynopsis:    "Start the OAuth authorization of a connection: returns the URL to send the customer to.",
		HelpDescription: pathAuthorizeHelp,
	}}
}

func (b *backend) pathAuthorize(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	integration, id, err := connectionNames(d)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := checkPayloadSize(req.Data); err != nil {
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
	if stored.AuthMode != authModeOAuth2 {
		return logical.ErrorResponse("authorize is for OAUTH2 integrations; %q uses %s", integration, stored.AuthMode), nil
	}
	in, err := effectiveIntegration(ctx, req.Storage, stored)
	if err != nil {
		return nil, err
	}
	existing, err := b.connection(ctx, req.Storage, integration, id)
	if err != nil {
		return nil, err
	}
	st, err := newStateEntry(cfg, integration, id, existing, d, b.now())
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	ep, err := resolveEndpoints(in, st.ConnectionConfig)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}

	state, stateHash, err := newState()
	if err != nil {
		return nil, err
	}
	scopes := st.Scopes
	if scopes == nil {
		scopes = in.Scopes
	}
	var opts []oauth2.AuthCodeOption
	for k, v := range in.AuthParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	if !in.DisablePKCE {
		st.Verifier = oauth2.GenerateVerifier()
		opts = append(opts, oauth2.S256ChallengeOption(st.Verifier))
	}
	authURL := oauthConfig(in, ep, cfg.RedirectURL, scopes).AuthCodeURL(state, opts...)

	if err := putState(ctx, req.Storage, stateHash, st); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]any{
		"authorization_url": authURL,
		"state_expires_at":  formatTime(st.ExpiresAt),
	}}, nil
}

// newStateEntry records what the callback will need, from the request and
// the connection as it is now.
func newStateEntry(cfg *configEntry, integration, id string, existing *connectionEntry, d *framework.FieldData, now time.Time) (*oauthStateEntry, error) {
	st := &oauthStateEntry{
		Integration:      integration,
		ConnectionID:     id,
		RedirectURL:      cfg.RedirectURL,
		ConnectionConfig: map[string]any{},
		ExpiresAt:        now.Add(cfg.StateTTL),
	}
	if existing != nil && existing.ConnectionConfig != nil {
		st.ConnectionConfig = existing.ConnectionConfig
	}
	if v, ok := d.GetOk("scopes"); ok {
		st.Scopes = v.([]string)
	}
	if v, ok := d.GetOk("connection_config"); ok {
		obj, err := jsonObject("connection_config", v)
		if err != nil {
			return nil, err
		}
		st.ConnectionConfig = obj
	}
	if v, ok := d.GetOk("metadata"); ok {
		obj, err := jsonObject("metadata", v)
		if err != nil {
			return nil, err
		}
		st.Metadata, st.ReplaceMetadata = obj, true
	}
	if v := strings.TrimSpace(d.Get("return_url").(string)); v != "" {
		if err := validateAbsoluteURL("return_url", v); err != nil {
			return nil, err
		}
		if !returnURLAllowed(v, cfg.AllowedReturnURLs) {
			return nil, fmt.Errorf("return_url %q does not start with any of config's allowed_return_urls", printable(v))
		}
		st.ReturnURL = v
	}
	return st, nil
}

// newState returns a state of 32 random bytes and the hash it is stored
// under. Only the hash is kept, so a storage dump holds no usable state.
func newState() (string, string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", "", fmt.Errorf("generating state: %w", err)
	}
	state := base64.RawURLEncoding.EncodeToString(buf)
	return state, hashState(state), nil
}

func hashState(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// returnURLAllowed reports whether u starts with one of the allowed
// prefixes, compared as URLs: same scheme and host, and a path under the
// prefix's. A plain string prefix would let https://app.example.com admit
// https://app.example.com.evil.test.
func returnURLAllowed(u string, prefixes []string) bool {
	target, err := url.Parse(u)
	if err != nil {
		return false
	}
	for _, p := range prefixes {
		allowed, err := url.Parse(p)
		if err != nil {
			continue
		}
		if strings.EqualFold(target.Scheme, allowed.Scheme) && strings.EqualFold(target.Host, allowed.Host) &&
			strings.HasPrefix(target.EscapedPath(), allowed.EscapedPath()) {
			return true
		}
	}
	return false
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
keeps its metadata unless metadata is given.
`
