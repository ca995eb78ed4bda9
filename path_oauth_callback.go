package connect

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
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
			"code":              {Type: framework.TypeString, Description: "The authorization code (RFC 6749 4.1.2)."},
			"state":             {Type: framework.TypeString, Description: "The state from the authorization URL."},
			"error":             {Type: framework.TypeString, Description: "The provider's error code, when the customer did not consent or the request was refused."},
			"error_description": {Type: framework.TypeString, Description: "The provider's description of the error."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: forwardedOperation(b.pathOAuthCallback, "complete"),
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
	st, fail := b.completeAuthorization(ctx, req.Storage, d)
	if fail != nil {
		return htmlPage(fail.status, "Connection failed", fail.msg), nil
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
func (b *backend) completeAuthorization(ctx context.Context, s logical.Storage, d *framework.FieldData) (*oauthStateEntry, *callbackFailure) {
	state := d.Get("state").(string)
	if state == "" {
		return nil, &callbackFailure{http.StatusBadRequest, "The request has no state. Start the authorization again."}
	}
	st, err := b.consumeState(ctx, s, state)
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
	if code := d.Get("error").(string); code != "" {
		desc := d.Get("error_description").(string)
		return nil, &callbackFailure{http.StatusBadRequest, fmt.Sprintf("The provider refused the authorization: %s %s", printableN(code, 100), printableN(desc, 300))}
	}
	code := d.Get("code").(string)
	if code == "" {
		return nil, &callbackFailure{http.StatusBadRequest, "The provider sent no authorization code."}
	}

	stored, err := getIntegration(ctx, s, st.Integration)
	if err == nil && stored == nil {
		err = fmt.Errorf("integration %q no longer exists", st.Integration)
	}
	var in *integrationEntry
	if err == nil {
		in, err = effectiveIntegration(ctx, s, stored)
	}
	var ep endpoints
	if err == nil {
		ep, err = resolveEndpoints(in, st.ConnectionConfig)
	}
	if err != nil {
		return nil, &callbackFailure{http.StatusBadRequest, err.Error()}
	}
	res, err := b.exchangeCode(ctx, in, ep, st.RedirectURL, code, st.Verifier)
	if err != nil {
		b.Logger().Warn("authorization code exchange failed", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err.Error())
		return nil, &callbackFailure{statusFailedDependency, "The provider did not issue tokens: " + err.Error()}
	}
	if err := b.storeAuthorizedConnection(ctx, s, in, st, res); err != nil {
		b.Logger().Error("storing authorized connection", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err)
		return nil, &callbackFailure{http.StatusInternalServerError, "Vault could not store the connection."}
	}
	return st, nil
}

// consumeState takes a pending authorization under its lock, so that two
// callbacks racing with one state cannot both get it.
func (b *backend) consumeState(ctx context.Context, s logical.Storage, state string) (*oauthStateEntry, error) {
	return b.consumeStateHash(ctx, s, hashState(state))
}

func (b *backend) consumeStateHash(ctx context.Context, s logical.Storage, stateHash string) (*oauthStateEntry, error) {
	lock := b.stateLock(stateHash)
	lock.Lock()
	defer lock.Unlock()
	return takeState(ctx, s, stateHash)
}

// storeAuthorizedConnection writes the tokens of a completed authorization.
// A re-authorization replaces the credentials and keeps the metadata unless
// authorize was given new metadata.
func (b *backend) storeAuthorizedConnection(ctx context.Context, s logical.Storage, in *integrationEntry, st *oauthStateEntry, res *tokenResult) error {
	lock := b.connLock(st.Integration, st.ConnectionID)
	lock.Lock()
	defer lock.Unlock()

	now := b.now()
	c, err := b.loadConnection(ctx, s, st.Integration, st.ConnectionID)
	if err != nil {
		return err
	}
	if c == nil {
		c = &connectionEntry{
			Integration:  st.Integration,
			ConnectionID: st.ConnectionID,
			AuthMode:     authModeOAuth2,
			Metadata:     map[string]any{},
			CreatedAt:    now,
		}
	}
	c.Credentials = credentials{}
	c.ConnectionConfig = nonNilObject(st.ConnectionConfig)
	if st.ReplaceMetadata {
		c.Metadata = nonNilObject(st.Metadata)
	}
	applyToken(c, in, res, now)
	return b.saveConnection(ctx, s, c)
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
