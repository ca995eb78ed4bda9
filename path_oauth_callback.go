// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"html"
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

// callbackFailure is a failed callback: an HTML page with a status, and a
// message safe to show (it never holds a secret).
type callbackFailure struct {
	status int
	msg    string
}

// callbackOutcome is what a successful callback did: st's authorization
// was stored (sess is the connect session that started it, if any), or
// its tokens are held for the application under completion.
type callbackOutcome struct {
	st         *oauthStateEntry
	sess       *sessionEntry
	completion string
}

func (b *backend) pathOAuthCallback(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// The browser may go away once the provider has spent the code; finish.
	ctx = context.WithoutCancel(ctx)
	out, fail := b.completeAuthorization(ctx, req, d)
	switch {
	case fail != nil:
		return htmlPage(fail.status, "Connection failed", fail.msg), nil
	case out.st.SessionHash != "":
		return pageAuthorizedPage(out.st, out.sess), nil
	case out.completion != "":
		return seeOtherPage(withQuery(out.st.ReturnURL, url.Values{
			"integration": {out.st.Integration}, "connection_id": {out.st.ConnectionID}, completionParam: {out.completion},
		}), "Back to the application"), nil
	case out.st.ReturnURL != "":
		return &logical.Response{Redirect: withQuery(out.st.ReturnURL, url.Values{
			"integration": {out.st.Integration}, "connection_id": {out.st.ConnectionID}, "status": {"connected"},
		})}, nil
	}
	return htmlPage(http.StatusOK, "Connected",
		fmt.Sprintf("Connection %q of %q is stored in Vault. You can close this window.", out.st.ConnectionID, out.st.Integration)), nil
}

// completionParam is the query parameter that carries a pending
// completion back to the application's return_url.
const completionParam = "connect_completion"

// completeAuthorization spends the state, exchanges the code and stores the
// connection, or, for an authorization the application completes, keeps
// its tokens for it. On failure nothing is written but the spent state.
// For an authorization a connect session started it requires the page's
// binding cookie, and marks the session connected.
func (b *backend) completeAuthorization(ctx context.Context, req *logical.Request, d *framework.FieldData) (*callbackOutcome, *callbackFailure) {
	s, query := req.Storage, req.Data
	state := d.Get("state").(string)
	if state == "" {
		return nil, &callbackFailure{http.StatusBadRequest, "The request has no state. Start the authorization again."}
	}
	if name, ok := oversizedCallbackValue(query); ok {
		// Logged so that a provider whose answers pass the bound is found:
		// the parameter's name, never its value.
		b.Logger().Warn("callback refused: a query value is over the bound", "parameter", printable(name), "bound_bytes", maxCallbackValueBytes)
		return nil, &callbackFailure{http.StatusBadRequest, "The request's query is too long to be a provider's answer."}
	}
	if !wellFormedState(state) {
		return nil, &callbackFailure{http.StatusBadRequest, "This authorization is unknown or was already used. Start the authorization again."}
	}
	st, err := b.states.TakeAuthorization(ctx, s, hashState(state))
	if err != nil {
		b.Logger().Error("reading authorization state", "error", err)
		return nil, &callbackFailure{http.StatusInternalServerError, "Vault could not read the authorization state."}
	}
	if st == nil || st.Held != nil {
		return nil, &callbackFailure{http.StatusBadRequest, "This authorization is unknown or was already used. Start the authorization again."}
	}
	if !b.now().Before(st.ExpiresAt) {
		return nil, &callbackFailure{http.StatusBadRequest, "This authorization has expired. Start the authorization again."}
	}
	if st.SessionHash != "" {
		if fail := b.checkBindingCookie(ctx, s, st, req.Headers); fail != nil {
			return nil, fail
		}
		// The session's lock is held from its check to its mark, across
		// the exchange, as the page's post holds it from its check to its
		// mark: a form posted meanwhile waits, then finds the session
		// connected, so that the session connects once. It is taken before
		// the store's integration and connection locks, as the post takes
		// it, and after Take has released the state lock.
		defer b.sessions.Lock(st.SessionHash)()
	}
	if fail := b.checkAuthorizingSession(ctx, s, st); fail != nil {
		return nil, fail
	}
	if code := d.Get("error").(string); code != "" {
		desc := d.Get("error_description").(string)
		b.authorizer.failed(ctx, s, st, nil, code, desc, query)
		return nil, &callbackFailure{http.StatusBadRequest, providerRefusalMessage(code)}
	}
	code := d.Get("code").(string)
	if code == "" {
		return nil, &callbackFailure{http.StatusBadRequest, "The provider sent no authorization code."}
	}
	if !b.WriteSafeReplicationState() {
		return nil, &callbackFailure{http.StatusServiceUnavailable, "This Vault node cannot store connections. Start the authorization again."}
	}
	if st.ApplicationCompletes && st.SessionHash == "" {
		return b.holdForApplication(ctx, s, st, code, query)
	}
	if fail := b.authorizer.complete(ctx, s, st, code, query); fail != nil {
		return nil, &callbackFailure{completionStatus[fail.fault], fail.msg}
	}
	out := &callbackOutcome{st: st}
	if st.SessionHash != "" {
		out.sess = b.markPageAuthorization(ctx, s, st)
	}
	return out, nil
}

// holdForApplication exchanges the code of an authorization the
// application completes and keeps its tokens for state_ttl.
func (b *backend) holdForApplication(ctx context.Context, s logical.Storage, st *oauthStateEntry, code string, query map[string]any) (*callbackOutcome, *callbackFailure) {
	cfg, err := b.config(ctx, s)
	if err != nil {
		return nil, &callbackFailure{http.StatusInternalServerError, "Vault could not read its configuration."}
	}
	completion, fail := b.authorizer.hold(ctx, s, st, code, query, cfg.StateTTL)
	if fail != nil {
		return nil, &callbackFailure{completionStatus[fail.fault], fail.msg}
	}
	return &callbackOutcome{st: st, completion: completion}, nil
}

// registeredErrorCodes are the error codes RFC 6749 (section 4.1.2.1)
// registers for the authorization endpoint: the only words of a
// provider's refusal a page served from Vault's address repeats.
var registeredErrorCodes = map[string]bool{
	"invalid_request": true, "unauthorized_client": true, "access_denied": true, "unsupported_response_type": true,
	"invalid_scope": true, "server_error": true, "temporarily_unavailable": true,
}

// providerRefusalMessage is the page's fixed message for a provider's
// refusal: its code when RFC 6749 registers it, never its description or
// error_uri, which anyone can put in the query of a link to Vault.
func providerRefusalMessage(code string) string {
	msg := "The provider refused the authorization. Nothing was stored. Start the authorization again."
	if registeredErrorCodes[code] {
		msg += " (" + code + ")"
	}
	return msg
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

// seeOtherPage answers 303 See Other to location. Vault passes the
// Location header only where the mount allows it (allowed_response_headers,
// see docs/deployment.md); elsewhere the browser shows the body, which
// refreshes to location and links to it.
func seeOtherPage(location, linkText string) *logical.Response {
	resp := renderConnectPage(http.StatusSeeOther, connectPageView{
		Title:      "Continue",
		Notice:     "Taking you back to the application.",
		RefreshTo:  template.HTMLAttr(`content="0; url=` + html.EscapeString(location) + `"`),
		ReturnURL:  location,
		ReturnText: linkText,
	})
	resp.Headers = map[string][]string{"Location": {location}}
	return resp
}

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
