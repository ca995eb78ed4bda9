// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// callbackPath is unauthenticated (PathsSpecial.Unauthenticated): the
// provider redirects the customer's browser here, and the browser has no
// Vault token. What authorises the request is the single-use state.
const callbackPath = "oauth/callback"

func pathOAuthCallback(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: callbackPath,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "oauth-callback",
		},
		Fields: map[string]*framework.FieldSchema{
			"code":              {Type: framework.TypeString, Query: true, Description: "The authorization code (RFC 6749 4.1.2)."},
			"state":             {Type: framework.TypeString, Query: true, Description: "The state from the authorization URL."},
			"error":             {Type: framework.TypeString, Query: true, Description: "The provider's error code, when the customer did not consent or the request was refused."},
			"error_description": {Type: framework.TypeString, Query: true, Description: "The provider's description of the error."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: forwardedOperation(b.pathOAuthCallback, "complete", okResponse("An HTML page, or a redirect to the return_url.", nil)),
		},
		HelpSynopsis:    "The OAuth redirect URI: providers send the customer's browser here after consent.",
		HelpDescription: pathCallbackHelp,
	}}
}

// callbackFailure is a failed callback: an HTML page with a status, and a
// message safe to show (it never holds a secret).
type callbackFailure struct {
	status int
	msg    string
}

func (b *backend) pathOAuthCallback(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// The browser may go away once the provider has spent the code; finish.
	ctx = context.WithoutCancel(ctx)
	st, fail := b.completeAuthorization(ctx, req.Storage, d, req.Data)
	if fail != nil {
		return htmlPage(fail.status, "Connection failed", fail.msg), nil
	}
	if st.SessionHash != "" {
		return b.finishPageAuthorization(ctx, req.Storage, st), nil
	}
	if st.ReturnURL != "" {
		return &logical.Response{Redirect: withQuery(st.ReturnURL, url.Values{
			"integration": {st.Integration}, "connection_id": {st.ConnectionID}, "status": {"connected"},
		})}, nil
	}
	return htmlPage(http.StatusOK, "Connected",
		fmt.Sprintf("Connection %q of %q is stored in Vault. You can close this window.", st.ConnectionID, st.Integration)), nil
}

// completeAuthorization spends the state, exchanges the code and stores the
// connection. On failure nothing is written but the spent state.
func (b *backend) completeAuthorization(ctx context.Context, s logical.Storage, d *framework.FieldData, query map[string]any) (*oauthStateEntry, *callbackFailure) {
	state := d.Get("state").(string)
	if state == "" {
		return nil, &callbackFailure{http.StatusBadRequest, "The request has no state. Start the authorization again."}
	}
	st, err := b.takeState(ctx, s, hashState(state))
	if err != nil {
		b.Logger().Error("reading authorization state", "error", err)
		return nil, &callbackFailure{http.StatusInternalServerError, "Vault could not read the authorization state."}
	}
	if st == nil {
		return nil, &callbackFailure{http.StatusBadRequest, "This authorization is unknown or was already used. Start the authorization again."}
	}
	if !b.now().Before(st.ExpiresAt) {
		return nil, &callbackFailure{http.StatusBadRequest, "This authorization has expired. Start the authorization again."}
	}
	if fail := b.checkAuthorizingSession(ctx, s, st); fail != nil {
		return nil, fail
	}
	if code := d.Get("error").(string); code != "" {
		desc := d.Get("error_description").(string)
		return nil, &callbackFailure{http.StatusBadRequest, fmt.Sprintf("The provider refused the authorization: %s %s", safetext.Printable(code, 100), safetext.Printable(desc, 300))}
	}
	code := d.Get("code").(string)
	if code == "" {
		return nil, &callbackFailure{http.StatusBadRequest, "The provider sent no authorization code."}
	}
	if !b.WriteSafeReplicationState() {
		return nil, &callbackFailure{http.StatusServiceUnavailable, "This Vault node cannot store connections. Start the authorization again."}
	}

	// Everything the exchange and the save need is read before the code is
	// spent at the provider.
	in, ep, connCfg, fail := b.callbackIntegration(ctx, s, st)
	if fail != nil {
		return nil, fail
	}
	fromCallback := callbackValues(in.CallbackConfig, query)
	if err := checkCallbackConfig(in, connCfg, fromCallback); err != nil {
		return nil, &callbackFailure{http.StatusBadRequest, fmt.Sprintf(
			"The provider's redirect carries connection config this integration does not accept: %s. Nothing was stored. Start the authorization again.", err)}
	}
	app, err := tokenRequestApp(in, nil, connCfg)
	if err != nil {
		return nil, &callbackFailure{http.StatusBadRequest, err.Error()}
	}
	res, err := b.tokens.client.ExchangeCode(ctx, app, ep, st.RedirectURL, code, st.Verifier)
	if err != nil {
		b.Logger().Warn("authorization code exchange failed", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err.Error())
		return nil, &callbackFailure{http.StatusFailedDependency, "The provider did not issue tokens: " + err.Error()}
	}
	if err := b.storeAuthorizedConnection(ctx, s, in, st, res, fromCallback); err != nil {
		b.Logger().Error("storing authorized connection", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err)
		if errors.Is(err, errIntegrationGone) || errors.Is(err, errConnectionNotFound) {
			return nil, &callbackFailure{http.StatusConflict, "The connection or its integration was deleted during the authorization."}
		}
		var bad *userError
		if errors.As(err, &bad) {
			return nil, &callbackFailure{http.StatusBadRequest, "The provider's redirect carried a connection config value Vault may not store: " + bad.Error()}
		}
		return nil, &callbackFailure{http.StatusInternalServerError, "Vault could not store the connection."}
	}
	return st, nil
}

// callbackIntegration resolves the integration a callback authorizes for,
// and the token endpoint for the connection's config: the one that the
// state carries, else the connection's as it is now.
func (b *backend) callbackIntegration(ctx context.Context, s logical.Storage, st *oauthStateEntry) (*integrationEntry, provider.Endpoints, map[string]any, *callbackFailure) {
	stored, err := getIntegration(ctx, s, st.Integration)
	if err != nil {
		b.Logger().Error("reading integration", "integration", st.Integration, "error", err)
		return nil, provider.Endpoints{}, nil, &callbackFailure{http.StatusInternalServerError, "Vault could not read the integration."}
	}
	if stored == nil || !stored.CreatedAt.Equal(st.IntegrationCreatedAt) {
		return nil, provider.Endpoints{}, nil, &callbackFailure{http.StatusBadRequest, fmt.Sprintf("Integration %q was deleted since the authorization started.", st.Integration)}
	}
	in, err := effectiveIntegration(ctx, s, stored)
	if err != nil {
		b.Logger().Error("resolving integration", "integration", st.Integration, "error", err)
		return nil, provider.Endpoints{}, nil, &callbackFailure{http.StatusInternalServerError, "Vault could not resolve the integration's provider."}
	}
	connCfg := st.ConnectionConfig
	if !st.ReplaceConnectionConfig {
		c, err := b.store.Get(ctx, s, st.Integration, st.ConnectionID)
		if err != nil {
			return nil, provider.Endpoints{}, nil, &callbackFailure{http.StatusInternalServerError, "Vault could not read the connection."}
		}
		if c != nil {
			connCfg = c.ConnectionConfig
		}
	}
	ep, err := endpoints(in, connCfg)
	if err != nil {
		return nil, provider.Endpoints{}, nil, &callbackFailure{http.StatusBadRequest, err.Error()}
	}
	return in, ep, connCfg, nil
}

// storeAuthorizedConnection writes the tokens of a completed authorization
// into the connection as it is now. A re-authorization replaces the
// credentials and keeps the metadata and config unless authorize was given
// new ones; a connection deleted since authorize is not re-created.
func (b *backend) storeAuthorizedConnection(ctx context.Context, s logical.Storage, in *integrationEntry, st *oauthStateEntry, res *provider.Token, fromCallback map[string]any) error {
	_, err := b.store.Update(ctx, s, st.Integration, st.ConnectionID, func(c *connectionEntry) (*connectionEntry, error) {
		now := b.now()
		if c == nil {
			if st.Reauthorization {
				return nil, connectionNotFound(st.Integration, st.ConnectionID)
			}
			c = &connectionEntry{
				Integration:      st.Integration,
				ConnectionID:     st.ConnectionID,
				AuthMode:         authModeOAuth2,
				Metadata:         map[string]any{},
				ConnectionConfig: map[string]any{},
				CreatedAt:        now,
			}
		}
		c.Credentials = credentials{}
		if st.ReplaceConnectionConfig {
			c.ConnectionConfig = nonNilObject(st.ConnectionConfig)
		}
		if st.ReplaceMetadata {
			c.Metadata = nonNilObject(st.Metadata)
		}
		for k, v := range fromCallback {
			if c.ConnectionConfig == nil {
				c.ConnectionConfig = map[string]any{}
			}
			c.ConnectionConfig[k] = v
		}
		if len(fromCallback) > 0 {
			// Values from the redirect's query are the browser's, not the
			// provider's: they may not point the integration elsewhere.
			if err := in.checkConfigHosts(c.ConnectionConfig); err != nil {
				return nil, badInput(err)
			}
		}
		b.tokens.apply(c, in, res, now)
		return c, nil
	})
	return err
}

// checkCallbackConfig checks the values callback_config copies from the
// provider's redirect against the integration's connection_config_schema,
// as any write of a connection's config is checked: the redirect comes
// through the customer's browser, so its query is the customer's input,
// and it must not replace a value authorize checked with one the schema
// refuses. It runs before the code is exchanged, so a refusal spends
// nothing at the provider. Errors name the key, never the value. The values
// may not point the integration's URLs outside its allowed hosts either,
// merged into base, the config the callback resolves its endpoints with
// (checked again under the connection's lock when they are stored).
func checkCallbackConfig(in *integrationEntry, base, fromCallback map[string]any) error {
	for _, key := range in.CallbackConfig {
		v, ok := fromCallback[key]
		f, inSchema := in.ConnectionConfigSchema[key]
		if !ok || !inSchema {
			continue
		}
		if err := f.check(v); err != nil {
			return fmt.Errorf("connection_config.%s %s", key, err)
		}
	}
	if len(fromCallback) == 0 {
		return nil
	}
	merged := maps.Clone(base)
	if merged == nil {
		merged = map[string]any{}
	}
	maps.Copy(merged, fromCallback)
	if err := in.checkConfigHosts(merged); err != nil {
		return err
	}
	return in.checkParamConfig(merged)
}

// maxCallbackValueLen bounds a value copied from the callback's query.
const maxCallbackValueLen = 256

// callbackValues picks the query parameters that callback_config names,
// as single strings of printable characters.
func callbackValues(names []string, query map[string]any) map[string]any {
	out := map[string]any{}
	for _, name := range names {
		var v string
		switch raw := query[name].(type) {
		case string:
			v = raw
		case []string:
			if len(raw) > 0 {
				v = raw[0]
			}
		}
		if v != "" && len(v) <= maxCallbackValueLen && safetext.Printable(v, maxCallbackValueLen) == v {
			out[name] = v
		}
	}
	return out
}

func withQuery(base string, q url.Values) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	merged := u.Query()
	for k, v := range q {
		merged[k] = v
	}
	u.RawQuery = merged.Encode()
	return u.String()
}

// pageTemplate escapes everything it is given: provider error descriptions
// arrive in the query string, from anyone.
var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
</body>
</html>
`))

// htmlPage is a raw HTML response, as Vault's PKI serves its CRLs.
func htmlPage(status int, title, message string) *logical.Response {
	var buf bytes.Buffer
	contentType := "text/html; charset=utf-8"
	if err := pageTemplate.Execute(&buf, struct{ Title, Message string }{title, message}); err != nil {
		// Cannot happen with a fixed template and string inputs; never
		// fall back to echoing the input.
		buf.Reset()
		buf.WriteString(title)
		contentType = "text/plain; charset=utf-8"
	}
	return &logical.Response{Data: map[string]any{
		logical.HTTPContentType:        contentType,
		logical.HTTPRawBody:            buf.Bytes(),
		logical.HTTPStatusCode:         status,
		logical.HTTPCacheControlHeader: "no-store",
	}}
}

const pathCallbackHelp = `
The redirect URI of every OAUTH2 integration of this mount: set config's
redirect_url to its external address (for example
https://vault.example.com/v1/connect/oauth/callback) and register that
address with each provider.

It needs no Vault token: the state in the query string, created by
connections/<integration>/<connection_id>/authorize, is what authorises it.
A state is spent by its first use, succeeded or not, and expires after
config's state_ttl. On success the browser sees a short page, or is
redirected to authorize's return_url; on failure it sees an error page, and
the connection is left as it was.
`
