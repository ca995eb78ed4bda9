// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/connectpage"
)

// connectUIPath is the hosted connect page. It is unauthenticated
// (PathsSpecial.Unauthenticated): a customer's browser opens it from a
// session's connect_url and holds no Vault token. What authorises a request
// is the session secret in its query or form, and, for every request that
// changes something, a form token bound to that session.
const connectUIPath = "connect/ui"

// Parameters of the page's requests.
const (
	sessionParam     = "session"
	integrationParam = "integration"
	formTokenParam   = "form_token"
)

// Form token purposes: a token for one form is refused by the other.
const (
	purposeConnect   = "connect"
	purposeAuthorize = "authorize"
)

func pathConnectUI(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: connectUIPath,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "connect-page",
		},
		Fields: map[string]*framework.FieldSchema{
			sessionParam:     {Type: framework.TypeString, Query: true, Description: "The session's secret, from its connect_url."},
			integrationParam: {Type: framework.TypeString, Query: true, Description: "The integration chosen."},
			formTokenParam:   {Type: framework.TypeString, Description: "The form's token, bound to the session."},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation:   localOperation(b.pathConnectUIGet, "open", okResponse("An HTML page.", nil)),
			logical.UpdateOperation: forwardedOperation(b.pathConnectUIPost, "submit", okResponse("An HTML page.", nil)),
		},
		HelpSynopsis:    "The hosted connect page, opened from a session's connect_url.",
		HelpDescription: pathConnectUIHelp,
	}}
}

// openSession finds the session a request's secret opens, or the page that
// says why it cannot be used.
func (b *backend) openSession(ctx context.Context, req *logical.Request) (*sessionEntry, string, *logical.Response, error) {
	sess, hash, err := b.sessions.BySecret(ctx, req.Storage, queryValue(req.Data, sessionParam))
	if err != nil {
		return nil, "", nil, err
	}
	if page := refusalPage(refusalOf(sess, b.now()), sess); page != nil {
		return nil, "", page, nil
	}
	return sess, hash, nil, nil
}

// refusalPage is the page that says why a session cannot be used, nil
// when it can.
func refusalPage(r sessionRefusal, sess *sessionEntry) *logical.Response {
	switch r {
	case sessionUnknown:
		return messagePage(http.StatusNotFound, "Link not valid",
			"This link is not valid: it was revoked, or it was never issued. Ask the application for a new one.")
	case sessionExpired:
		return messagePage(http.StatusGone, "Link expired",
			"This link has expired. Ask the application for a new one.")
	case sessionConnected:
		return connectedPage(http.StatusConflict, sess,
			fmt.Sprintf("This link has already connected %s; a link connects once. Ask the application for a new one to connect again.", sess.ConnectedIntegration))
	case sessionSpent:
		return spentLinkPage()
	}
	return nil
}

func (b *backend) pathConnectUIGet(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if err := checkPayloadSize(req.Data); err != nil {
		return messagePage(http.StatusBadRequest, "Request too large", err.Error()), nil
	}
	sess, _, page, err := b.openSession(ctx, req)
	if page != nil || err != nil {
		return page, err
	}
	integration := queryValue(req.Data, integrationParam)
	if integration == "" {
		return b.choicesPage(ctx, req.Storage, sess, queryValue(req.Data, sessionParam))
	}
	in, page, err := b.pageIntegration(ctx, req.Storage, sess, integration)
	if page != nil || err != nil {
		return page, err
	}
	return formPage(http.StatusOK, sess, queryValue(req.Data, sessionParam), in, nil, nil, ""), nil
}

func (b *backend) pathConnectUIPost(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if page, err := b.checkPageOrigin(ctx, req); page != nil || err != nil {
		return page, err
	}
	if err := checkPayloadSize(req.Data); err != nil {
		return messagePage(http.StatusBadRequest, "Request too large", err.Error()), nil
	}
	sess, hash, page, err := b.openSession(ctx, req)
	if page != nil || err != nil {
		return page, err
	}
	in, page, err := b.pageIntegration(ctx, req.Storage, sess, queryValue(req.Data, integrationParam))
	if page != nil || err != nil {
		return page, err
	}
	purpose := purposeConnect
	if in.AuthMode == catalog.OAuth2 {
		purpose = purposeAuthorize
	}
	if !sess.validFormToken(in.Name, purpose, queryValue(req.Data, formTokenParam)) {
		return refusedFormPage(), nil
	}
	f := formFor(in)
	if f.Unsupported != "" {
		return messagePage(http.StatusBadRequest, "Cannot connect here", f.Unsupported), nil
	}
	post := pagePost{secretHash: hash, integration: in, connect: func(ctx context.Context, s logical.Storage, sess *sessionEntry) error {
		_, err := b.connectThroughPage(ctx, s, sess, in.Name, f, req.Data)
		return err
	}}
	if len(f.Config) > 0 {
		post.config = f.PostedConfig(req.Data)
	}
	out, err := b.pagePoster.post(ctx, req.Storage, post)
	switch {
	case errors.Is(err, errIntegrationChanged):
		// A race with an operator's write, not the customer's mistake:
		// nothing was stored, and the link stays as it was.
		return messagePage(http.StatusConflict, "Try again",
			"The service's settings changed while connecting. Nothing was stored; submit the form again."), nil
	case err != nil:
		return nil, err
	case out.refusal != sessionUsable:
		return refusalPage(out.refusal, out.sess), nil
	case out.spent:
		return spentLinkPage(), nil
	case out.failed != nil:
		return failedFormPage(out.sess, queryValue(req.Data, sessionParam), in, f, req.Data, out.failed), nil
	case out.started != nil:
		return continuePage(out.sess, in, out.started, req.MountPoint), nil
	}
	return connectedPage(http.StatusOK, out.sess, fmt.Sprintf("%s is connected. Its credentials are stored in Vault.", integrationLabel(in))), nil
}

// pageIntegration resolves an integration the session offers, or the page
// that refuses it.
func (b *backend) pageIntegration(ctx context.Context, s logical.Storage, sess *sessionEntry, name string) (*integrationEntry, *logical.Response, error) {
	notOffered := messagePage(http.StatusForbidden, "Not available",
		"This link does not offer that service. Nothing was changed.")
	if name == "" || validateIntegrationName(name) != nil || !sess.allows(name) {
		return nil, notOffered, nil
	}
	// From the rendering cache, as the chooser: an unauthenticated GET
	// reads no integration from storage once it is cached, a missing one
	// included. A post's write reads the integration again.
	u, err := b.renderings.get(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	if u == nil || !pageConnects(u.integration.AuthMode) {
		return nil, notOffered, nil
	}
	return u.integration, nil, nil
}

// choicesPage lists the integrations the session offers; with one, it is
// its form at once.
func (b *backend) choicesPage(ctx context.Context, s logical.Storage, sess *sessionEntry, secret string) (*logical.Response, error) {
	names := sess.Integrations
	if len(names) == 0 {
		var err error
		if names, err = listIntegrations(ctx, s); err != nil {
			return nil, err
		}
	}
	// An unauthenticated GET: the integrations come from the rendering
	// cache (integration and provider writes clear it), not from storage
	// on every request. Shared entries: the page only reads them.
	var offered []*integrationEntry
	for _, name := range names {
		u, err := b.renderings.get(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if u != nil && pageConnects(u.integration.AuthMode) {
			offered = append(offered, u.integration)
		}
	}
	if len(offered) == 1 {
		return formPage(http.StatusOK, sess, secret, offered[0], nil, nil, ""), nil
	}
	view := connectpage.View{Title: "Connect an account", For: sess.DisplayName}
	if len(offered) == 0 {
		view.Alert = "There is nothing to connect with this link."
	}
	for _, in := range offered {
		view.Choices = append(view.Choices, connectpage.Choice{
			Label: integrationLabel(in), Mode: connectpage.ModeLabel(in.AuthMode),
			Href: connectUIRelative(url.Values{sessionParam: {secret}, integrationParam: {in.Name}}),
		})
	}
	return pageResponse(connectpage.Render(http.StatusOK, view)), nil
}

// connectUIRelative is a link to the page itself: relative, so that it
// works at whatever address the browser reached Vault.
func connectUIRelative(q url.Values) string {
	return "ui?" + q.Encode()
}

// formPage renders an integration's form, with kept values and errors
// after a failed post.
func formPage(status int, sess *sessionEntry, secret string, in *integrationEntry, kept, errs map[string]string, general string) *logical.Response {
	p := connectpage.FormPage{
		For: sess.DisplayName, Integration: pageIntegration(in),
		Session: secret, Token: sess.formToken(in.Name, purposeConnect),
		Kept: kept, Errors: errs, General: general,
	}
	if in.AuthMode == catalog.OAuth2 {
		p.Token = sess.formToken(in.Name, purposeAuthorize)
	}
	if len(sess.Integrations) != 1 {
		p.Back = connectUIRelative(url.Values{sessionParam: {secret}})
	}
	return pageResponse(p.Render(status))
}

// pageIntegration is what the page shows of an integration.
func pageIntegration(in *integrationEntry) connectpage.Integration {
	return connectpage.Integration{
		Name: in.Name, DisplayName: integrationLabel(in), AuthMode: in.AuthMode,
		CredentialsSchema: in.CredentialsSchema, ConnectionConfigSchema: in.ConnectionConfigSchema,
		AuthURL: in.AuthURL, AllowedHosts: in.AllowedHosts,
	}
}

// formFor lists the inputs of in's form.
func formFor(in *integrationEntry) pageForm {
	return pageForm{connectpage.FormFor(pageIntegration(in))}
}

// integrationLabel is how the page names an integration: its name, and the
// catalog provider it is built on.
func integrationLabel(in *integrationEntry) string {
	return in.displayName()
}

// failedFormPage shows the form again after a post the customer can fix
// (customerFault): the error next to its input, or above the form, with
// the non-secret values kept and every posted secret scrubbed from the
// message; too many sign-ins in progress is a page of its own.
func failedFormPage(sess *sessionEntry, secret string, in *integrationEntry, f pageForm, data map[string]any, err error) *logical.Response {
	var limit *pendingLimitError
	var ee *engineError
	status := http.StatusBadRequest
	switch {
	case errors.As(err, new(*userError)), errors.Is(err, errBadConnectionConfig):
	case errors.As(err, &ee) && (errors.Is(ee.kind, errProviderRefused) || errors.Is(ee.kind, errProviderUnreachable)):
		status = http.StatusFailedDependency
	case errors.As(err, &limit):
		return messagePage(http.StatusTooManyRequests, "Try again later", "Too many sign-ins are in progress for this service. Try again in a few minutes.")
	}
	msg := f.ScrubPosted(err.Error(), data)
	byInput, general := f.Errors(msg)
	return formPage(status, sess, secret, in, f.KeptValues(data), byInput, general)
}

// spentLinkPage answers a session whose failed posts used it up.
func spentLinkPage() *logical.Response {
	return messagePage(http.StatusGone, "Link used up",
		fmt.Sprintf("This link was used for too many attempts that failed (%d); it cannot be used again. Ask the application for a new one.", maxFailedPosts))
}

// continuePage sends the browser on to the provider's consent page: 303
// with its Location and the binding cookie the callback requires (Vault
// passes both only where the mount allows them, see tuneCommand). The body
// is for a mount that does not: it says what the operator must tune,
// without a link on, since the callback would refuse a browser without
// the cookie.
func continuePage(sess *sessionEntry, in *integrationEntry, started *pageAuthorization, mount string) *logical.Response {
	p := connectpage.Render(http.StatusSeeOther, connectpage.View{
		Title: "Continue to sign in", For: sess.DisplayName, Service: integrationLabel(in),
		Alert: "This Vault did not send you on to " + integrationLabel(in) + ": it does not pass the headers this page needs. Tell its operator to run: " + tuneCommand(mount),
	})
	p.Headers = map[string][]string{"Location": {started.url}, "Set-Cookie": {started.cookie}}
	return pageResponse(p)
}

// tuneCommand is the command that lets Vault pass the headers the
// connect page and the callback use, to and from the plugin mounted at
// mount.
func tuneCommand(mount string) string {
	if mount == "" {
		mount = "connect/"
	}
	return "vault secrets tune -passthrough-request-headers=Cookie -passthrough-request-headers=Origin " +
		"-allowed-response-headers=Set-Cookie -allowed-response-headers=Location " + mount
}

// checkPageOrigin refuses a post that does not come from this Vault's own
// page: its Origin must be the origin of public_url (else of
// redirect_url). Browsers send Origin on every POST, so a post without one
// means a mount that does not pass it: refused too, with the command that
// fixes it, since a check that cannot see the origin must not let
// everything through.
func (b *backend) checkPageOrigin(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	got := headerValues(req.Headers, "Origin")
	if len(got) == 0 {
		b.Logger().Warn("connect page post refused: the request has no Origin header; the mount must pass it", "tune", tuneCommand(req.MountPoint))
		return messagePage(http.StatusForbidden, "Vault is not set up for this page",
			"Nothing was changed. This Vault does not pass the browser's Origin to the page, so it cannot tell this form from one posted by another site. Tell its operator to run: "+tuneCommand(req.MountPoint)), nil
	}
	want := pageOrigin(cfg)
	if len(got) != 1 || want == "" || !strings.EqualFold(got[0], want) {
		return messagePage(http.StatusForbidden, "Form refused",
			"This form was not sent from this Vault's page, so nothing was changed. Open the link you were given again."), nil
	}
	return nil, nil
}

// messagePage is a page with a title and a message that alerts: every
// refusal and failure of the page and the callback.
func messagePage(status int, title, msg string) *logical.Response {
	return pageResponse(connectpage.Message(status, title, msg))
}

// refusedFormPage answers a form that does not belong to the session it
// was posted with.
func refusedFormPage() *logical.Response {
	return messagePage(http.StatusForbidden, "Form refused",
		"This form does not belong to this link. Nothing was changed. Open the link you were given again.")
}

// connectedPage is the success page of a session, with the link back to
// its return_url.
func connectedPage(status int, sess *sessionEntry, msg string) *logical.Response {
	return pageResponse(connectpage.Render(status, connectedView(status, sess, msg)))
}

// connectedView is connectedPage's view: a 200 says connected; another
// status says the session had connected already.
func connectedView(status int, sess *sessionEntry, msg string) connectpage.View {
	view := connectpage.View{Title: "Connected", Notice: msg, ReturnText: "Back to the application", For: sess.DisplayName}
	if sess.ReturnURL != "" {
		view.ReturnURL = withQuery(sess.ReturnURL, url.Values{
			"integration": {sess.ConnectedIntegration}, "connection_id": {sess.ConnectionID}, "status": {"connected"},
		})
	}
	if status != http.StatusOK {
		view.Title, view.Notice, view.Alert = "Already connected", "", msg
	}
	return view
}

const pathConnectUIHelp = `
The page a connect session's connect_url opens (see sessions). It needs no
Vault token: the session's secret in the URL authorises it, and every
form carries a token bound to that session.

GET lists the session's integrations, or shows one's form
(integration=<name>). POST (application/x-www-form-urlencoded) stores the
connection from an API_KEY, BASIC, CUSTOM or OAUTH2_CC form, checked as any
connection write is; an OAUTH2 form's POST starts the authorization and
answers 303 to the provider's consent page with a binding cookie that the
callback requires. Every POST must carry this Vault's Origin (public_url's,
else redirect_url's). A session connects once.

The mount must pass the headers involved:

    vault secrets tune -passthrough-request-headers=Cookie -passthrough-request-headers=Origin \
        -allowed-response-headers=Set-Cookie -allowed-response-headers=Location connect/
`
