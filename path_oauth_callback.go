// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

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
	st, sess, fail := b.completeAuthorization(ctx, req.Storage, d, req.Data)
	if fail != nil {
		return htmlPage(fail.status, "Connection failed", fail.msg), nil
	}
	if st.SessionHash != "" {
		return pageAuthorizedPage(st, sess), nil
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
// connection. On failure nothing is written but the spent state. For an
// authorization a connect session started it also marks the session
// connected and returns it (nil if it could not be read back).
func (b *backend) completeAuthorization(ctx context.Context, s logical.Storage, d *framework.FieldData, query map[string]any) (*oauthStateEntry, *sessionEntry, *callbackFailure) {
	state := d.Get("state").(string)
	if state == "" {
		return nil, nil, &callbackFailure{http.StatusBadRequest, "The request has no state. Start the authorization again."}
	}
	if name, ok := oversizedCallbackValue(query); ok {
		// Logged so that a provider whose answers pass the bound is found:
		// the parameter's name, never its value.
		b.Logger().Warn("callback refused: a query value is over the bound", "parameter", printable(name), "bound_bytes", maxCallbackValueBytes)
		return nil, nil, &callbackFailure{http.StatusBadRequest, "The request's query is too long to be a provider's answer."}
	}
	st, err := b.states.Take(ctx, s, hashState(state))
	if err != nil {
		b.Logger().Error("reading authorization state", "error", err)
		return nil, nil, &callbackFailure{http.StatusInternalServerError, "Vault could not read the authorization state."}
	}
	if st == nil {
		return nil, nil, &callbackFailure{http.StatusBadRequest, "This authorization is unknown or was already used. Start the authorization again."}
	}
	if !b.now().Before(st.ExpiresAt) {
		return nil, nil, &callbackFailure{http.StatusBadRequest, "This authorization has expired. Start the authorization again."}
	}
	if st.SessionHash != "" {
		// The session's lock is held from its check to its mark, across
		// the exchange, as the page's post holds it from its check to its
		// mark: a form posted meanwhile waits, then finds the session
		// connected, so that the session connects once. It is taken before
		// the store's integration and connection locks, as the post takes
		// it, and after Take has released the state lock.
		defer b.sessions.Lock(st.SessionHash)()
	}
	if fail := b.checkAuthorizingSession(ctx, s, st); fail != nil {
		return nil, nil, fail
	}
	if code := d.Get("error").(string); code != "" {
		desc := d.Get("error_description").(string)
		b.authorizer.failed(ctx, s, st, nil, code, desc, query)
		return nil, nil, &callbackFailure{http.StatusBadRequest, fmt.Sprintf("The provider refused the authorization: %s %s", safetext.Printable(code, 100), safetext.Printable(desc, 300))}
	}
	code := d.Get("code").(string)
	if code == "" {
		return nil, nil, &callbackFailure{http.StatusBadRequest, "The provider sent no authorization code."}
	}
	if !b.WriteSafeReplicationState() {
		return nil, nil, &callbackFailure{http.StatusServiceUnavailable, "This Vault node cannot store connections. Start the authorization again."}
	}
	if fail := b.authorizer.complete(ctx, s, st, code, query); fail != nil {
		return nil, nil, &callbackFailure{completionStatus[fail.fault], fail.msg}
	}
	if st.SessionHash == "" {
		return st, nil, nil
	}
	return st, b.markPageAuthorization(ctx, s, st), nil
}

// completionStatus is the callback page's status for each fault of the
// authorization flow.
var completionStatus = map[completionFault]int{
	faultRequest:  http.StatusBadRequest,
	faultGone:     http.StatusConflict,
	faultProvider: http.StatusFailedDependency,
	faultVault:    http.StatusInternalServerError,
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

// htmlPage is the callback's raw HTML page, as Vault's PKI serves its CRLs.
func htmlPage(status int, title, message string) *logical.Response {
	return rawHTMLResponse(status, pageTemplate, struct{ Title, Message string }{title, message}, title)
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

// maxCallbackValueBytes bounds each value of the callback's query (long
// authorization codes, such as Microsoft's, are a few KiB). The
// browser sends it, unauthenticated; a provider's code, state and error
// description are far shorter, and scrubbing a long description against a
// long code costs time in the product of their lengths.
const maxCallbackValueBytes = 8192

// oversizedCallbackValue names a parameter of the callback's query whose
// value is over the bound: the callback refuses it before its state is
// spent, since it cannot be the provider's, and the authorization may
// still complete.
func oversizedCallbackValue(query map[string]any) (string, bool) {
	for name, v := range query {
		var values []string
		switch t := v.(type) {
		case string:
			values = []string{t}
		case []string:
			values = t
		case []any:
			for _, e := range t {
				values = append(values, fmt.Sprint(e))
			}
		}
		for _, s := range values {
			if len(s) > maxCallbackValueBytes {
				return name, true
			}
		}
	}
	return "", false
}
