// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/connectpage"
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
			"error_description": {Type: framework.TypeString, Query: true, Description: "The provider's description of the error: logged (scrubbed) and in the authorization_failed event, never shown."},
			"error_uri":         {Type: framework.TypeString, Query: true, Description: "The provider's page about the error: logged (scrubbed) and in the authorization_failed event, never shown."},
			"iss":               {Type: framework.TypeString, Query: true, Description: "The authorization server's issuer (RFC 9207); where the integration declares an issuer, they must be equal."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: forwardedOperation(b.pathOAuthCallback, "complete", okResponse("An HTML page, or a redirect to the return_url.", nil)),
		},
		HelpSynopsis:    "The OAuth redirect URI: providers send the customer's browser here after consent.",
		HelpDescription: pathCallbackHelp,
	}}
}

func (b *backend) pathOAuthCallback(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// The browser may go away once the provider has spent the code; finish.
	ctx = context.WithoutCancel(ctx)
	cb, fail := b.callbackInputFrom(req, d)
	var out *callbackOutcome
	if fail == nil {
		out, fail = b.authorizer.completeCallback(ctx, req.Storage, cb)
	}
	switch {
	case fail != nil:
		return callbackPage(completionStatus[fail.fault], connectpage.View{Title: "Connection failed", Alert: fail.msg}), nil
	case out.st.SessionHash != "":
		return pageAuthorizedPage(out.st, out.sess), nil
	case out.completion != "":
		return pageResponse(connectpage.SeeOther(withQuery(out.st.ReturnURL, url.Values{
			"integration": {out.st.Integration}, "connection_id": {out.st.ConnectionID}, completionParam: {out.completion},
		}), "Back to the application")), nil
	case out.st.ReturnURL != "":
		return &logical.Response{Redirect: withQuery(out.st.ReturnURL, url.Values{
			"integration": {out.st.Integration}, "connection_id": {out.st.ConnectionID}, "status": {"connected"},
		})}, nil
	}
	return callbackPage(http.StatusOK, connectedView(http.StatusOK, &sessionEntry{},
		fmt.Sprintf("Connection %q of %q is stored in Vault. You can close this window.", out.st.ConnectionID, out.st.Integration))), nil
}

// completionParam is the query parameter that carries a pending
// completion back to the application's return_url.
const completionParam = "connect_completion"

// callbackInputFrom reads the provider's redirect, or refuses one that
// cannot be a provider's before its state is spent, so that the
// authorization may still complete.
func (b *backend) callbackInputFrom(req *logical.Request, d *framework.FieldData) (callbackInput, *completionError) {
	cb := callbackInput{
		state: d.Get("state").(string), code: d.Get("code").(string),
		errorCode: d.Get("error").(string), errorDescription: d.Get("error_description").(string),
		query: req.Data, headers: req.Headers, writable: b.WriteSafeReplicationState(),
	}
	if cb.state == "" {
		return cb, &completionError{faultRequest, "The request has no state. Start the authorization again."}
	}
	if name, ok := oversizedCallbackValue(req.Data); ok {
		// Logged so that a provider whose answers pass the bound is found:
		// the parameter's name, never its value.
		b.Logger().Warn("callback refused: a query value is over the bound", "parameter", printable(name), "bound_bytes", maxCallbackValueBytes)
		return cb, &completionError{faultRequest, "The request's query is too long to be a provider's answer."}
	}
	if !wellFormedState(cb.state) {
		return cb, &completionError{faultRequest, "This authorization is unknown or was already used. Start the authorization again."}
	}
	return cb, nil
}

// pageAuthorizedPage is the page's success after a completed authorization
// a session started, with its link back.
func pageAuthorizedPage(st *pendingAuthorization, sess *sessionEntry) *logical.Response {
	if sess == nil {
		// Not readable after the connection was stored: the page says so
		// without a link back.
		sess = &sessionEntry{}
	}
	sess.ConnectedIntegration, sess.ConnectionID = st.Integration, st.ConnectionID
	return callbackPage(http.StatusOK, connectedView(http.StatusOK, sess, st.Integration+" is connected. Its credentials are stored in Vault."))
}

// callbackPage renders a page the callback serves: its URL holds the
// provider's code and the state, so the page sends no Referer.
func callbackPage(status int, v connectpage.View) *logical.Response {
	v.NoReferrer = true
	return pageResponse(connectpage.Render(status, v))
}

// completionStatus is the callback page's status for each fault of the
// authorization flow.
var completionStatus = map[completionFault]int{
	faultRequest:  http.StatusBadRequest,
	faultGone:     http.StatusConflict,
	faultProvider: http.StatusFailedDependency,
	faultVault:    http.StatusInternalServerError,
	faultBinding:  http.StatusForbidden,
	faultExists:   http.StatusConflict,
	// 503: a standby or secondary that cannot write.
	faultUnavailable: http.StatusServiceUnavailable,
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

const pathCallbackHelp = `
The redirect URI of every OAUTH2 integration of this mount: set config's
redirect_url to its external address (for example
https://vault.example.com/v1/connect/oauth/callback) and register that
address with each provider.

It needs no Vault token: the state in the query string, created by
connections/<integration>/<connection_id>/authorize, is what authorises it.
A state is spent by its first use, succeeded or not, and expires after
config's state_ttl. With config's oauth_completion "application" (the
default), an authorization started by authorize is not stored here: the
code is exchanged, the tokens kept for state_ttl, and the browser sent (303)
to return_url with connect_completion, which the application gives to
connections/<integration>/<connection_id>/complete. With "callback", and
for the connect page's authorizations (which require the page's binding
cookie), the connection is stored here: the browser sees a short page, or is
redirected to return_url. On failure it sees an error page with a fixed
message, and the connection is left as it was.
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
