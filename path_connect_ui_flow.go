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

	"github.com/hashicorp/vault/sdk/logical"
)

// The connect page's writes: a posted form is a connection write through
// the connectionWriter, an OAuth button an authorization through the
// authorize flow, each with the session's metadata and tags; and the
// callback's part in an authorization a session started.

// connectThroughPage writes the connection a posted form describes, through
// the connectionWriter as every connection write. A new connection is
// refused when one exists (a session without reconnect creates), and a
// reconnect when none does.
func (b *backend) connectThroughPage(ctx context.Context, s logical.Storage, sess *sessionEntry, integration string, f pageForm, data map[string]any) (*connectionEntry, error) {
	stored, in, err := integrationForWrites(ctx, s, integration)
	if err != nil {
		return nil, err
	}
	existing, err := b.store.Get(ctx, s, integration, sess.ConnectionID)
	if err != nil {
		return nil, err
	}
	if err := checkReconnect(sess, existing, integration); err != nil {
		return nil, err
	}
	c, _, err := b.writer.write(ctx, s, stored, in, sess.ConnectionID, f.connectionInputFrom(in.AuthMode, data, sess))
	return c, err
}

// checkReconnect says whether the session may write the connection as it
// is: a reconnect replaces one that exists, any other session creates one.
func checkReconnect(sess *sessionEntry, existing *connectionEntry, integration string) error {
	switch {
	case sess.Reconnect && existing == nil:
		return badInput(fmt.Errorf("there is no %s connection to reconnect; ask for a new link", integration))
	case !sess.Reconnect && existing != nil:
		return badInput(fmt.Errorf("this account is connected to %s already; ask for a reconnect link to replace its credentials", integration))
	}
	return nil
}

// authorizeThroughPage starts the OAuth authorization of the session's
// connection with the config the form gives, as authorize does, and returns
// the provider's authorization URL.
func (b *backend) authorizeThroughPage(ctx context.Context, s logical.Storage, sess *sessionEntry, secretHash, integration string, f pageForm, data map[string]any) (*pageAuthorization, error) {
	cfg, err := b.config(ctx, s)
	if err != nil {
		return nil, err
	}
	if cfg.RedirectURL == "" {
		return nil, badInput(errors.New("this Vault is not set up for OAuth (config's redirect_url)"))
	}
	stored, in, err := integrationForWrites(ctx, s, integration)
	if err != nil {
		return nil, err
	}
	existing, err := b.store.Get(ctx, s, integration, sess.ConnectionID)
	if err != nil {
		return nil, err
	}
	if err := checkReconnect(sess, existing, integration); err != nil {
		return nil, err
	}
	if err := checkCallbackHost(cfg); err != nil {
		return nil, err
	}
	binding, _, err := newState()
	if err != nil {
		return nil, err
	}
	st := &oauthStateEntry{
		Integration:          in.Name,
		ConnectionID:         sess.ConnectionID,
		RedirectURL:          in.RedirectURI(cfg.RedirectURL),
		Reauthorization:      existing != nil,
		IntegrationCreatedAt: stored.CreatedAt,
		ExpiresAt:            b.now().Add(cfg.StateTTL),
		SessionHash:          secretHash,
		BrowserBindingHash:   hashState(binding),
		// Checked again under the connection's lock when the callback
		// stores it: a connection created meanwhile is not replaced.
		CreateOnly: !sess.Reconnect,
	}
	switch {
	case len(f.Config) > 0 && sess.Reconnect:
		// Merged over the connection's config when the callback stores it.
		st.ConnectionConfig, st.MergeConnectionConfig = f.postedConfig(data), true
	case len(f.Config) > 0:
		st.ConnectionConfig, st.ReplaceConnectionConfig = f.postedConfig(data), true
	}
	if !sess.Reconnect {
		st.Metadata, st.ReplaceMetadata = nonNilObject(sess.Metadata), true
		st.Tags, st.ReplaceTags = sess.Tags, true
	}
	authURL, err := b.authorizer.authorize(ctx, s, in, existing, st)
	if err != nil {
		return nil, err
	}
	return &pageAuthorization{
		url:    authURL,
		cookie: bindingCookie(secretHash, binding, cfg.RedirectURL, cfg.StateTTL),
	}, nil
}

// pageAuthorization is an authorization the page's button started: the
// provider's URL and the Set-Cookie line of its binding cookie.
type pageAuthorization struct {
	url, cookie string
}

// checkAuthorizingSession refuses the callback of an authorization started
// by a connect session that has since been revoked, has expired or has
// connected something else: the session's link no longer allows it.
func (b *backend) checkAuthorizingSession(ctx context.Context, s logical.Storage, st *oauthStateEntry) *callbackFailure {
	if st.SessionHash == "" {
		return nil
	}
	sess, err := b.sessions.ByHash(ctx, s, st.SessionHash)
	switch {
	case err != nil:
		b.Logger().Error("reading the connect session of an authorization", "error", err)
		return &callbackFailure{http.StatusInternalServerError, "Vault could not read the connect session."}
	case sess == nil:
		return &callbackFailure{http.StatusBadRequest, "The link this sign-in started from was revoked. Nothing was stored. Ask the application for a new link."}
	case !b.now().Before(sess.ExpiresAt):
		return &callbackFailure{http.StatusBadRequest, "The link this sign-in started from has expired. Nothing was stored. Ask the application for a new link."}
	case sess.ConnectedIntegration != "":
		return &callbackFailure{http.StatusConflict, "The link this sign-in started from has connected " + sess.ConnectedIntegration + " already. Nothing was stored."}
	}
	return nil
}

// markPageAuthorization marks the session of a completed authorization
// connected, under the session's lock (completeAuthorization holds it), and
// returns the session, nil when it could not be read.
func (b *backend) markPageAuthorization(ctx context.Context, s logical.Storage, st *oauthStateEntry) *sessionEntry {
	sess, err := b.sessions.ByHash(ctx, s, st.SessionHash)
	if err == nil && sess != nil {
		err = b.sessions.MarkConnected(ctx, s, st.SessionHash, sess, st.Integration)
	}
	if err != nil {
		// The connection is stored; the session stays usable until it
		// expires, which is no worse than an unspent link.
		b.Logger().Warn("marking a connect session used", "error", err)
	}
	return sess
}

// pageAuthorizedPage is the page's success after a completed authorization
// a session started, with its link back.
func pageAuthorizedPage(st *oauthStateEntry, sess *sessionEntry) *logical.Response {
	if sess == nil {
		// Not readable after the connection was stored: the page says so
		// without a link back.
		sess = &sessionEntry{}
	}
	sess.ConnectedIntegration, sess.ConnectionID = st.Integration, st.ConnectionID
	return connectedPage(http.StatusOK, sess, st.Integration+" is connected. Its credentials are stored in Vault.")
}

// The page's binding of an authorization to the browser that pressed its
// button: the post sets a cookie of 32 random bytes, whose SHA-256 the
// state keeps, and the callback of that state requires it. A browser that
// was merely sent the authorization URL (the account-linking attack of
// docs/security.md) has no such cookie.

// bindingCookiePrefix starts the name of a binding cookie; the rest comes
// from the session, so that the sessions of two tabs in one browser keep
// their own (one session has one authorization at a time).
const bindingCookiePrefix = "connect_binding_"

// bindingCookieName is the name of the binding cookie of the session
// whose secret's hash is sessionHash, for the mount's callback at
// callbackURL: over https a __Secure- cookie, which a browser accepts only
// from an https answer, so no plain-http answer (a network attacker's)
// can plant one.
func bindingCookieName(sessionHash, callbackURL string) string {
	name := bindingCookiePrefix + sessionHash[:min(16, len(sessionHash))]
	if callbackIsHTTPS(callbackURL) {
		name = "__Secure-" + name
	}
	return name
}

// callbackIsHTTPS reports whether the mount's callback is served over
// https.
func callbackIsHTTPS(callbackURL string) bool {
	u, err := url.Parse(callbackURL)
	return err == nil && strings.EqualFold(u.Scheme, "https")
}

// bindingCookie is the Set-Cookie line of the binding cookie of the
// session whose secret's hash is sessionHash: HttpOnly, SameSite=Lax (a
// provider's redirect back is a top-level navigation, so the browser sends
// it; a cross-site subrequest does not), only to the path of the mount's
// callback (callbackURL, config's redirect_url: the browser comes back
// there even where an integration sends a registered name as
// redirect_uri), for the state's lifetime, Secure over https.
func bindingCookie(sessionHash, value, callbackURL string, lifetime time.Duration) string {
	c := &http.Cookie{
		Name: bindingCookieName(sessionHash, callbackURL), Value: value, Path: "/", MaxAge: max(int(lifetime.Seconds()), 1),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: callbackIsHTTPS(callbackURL),
	}
	if u, err := url.Parse(callbackURL); err == nil && u.Path != "" {
		c.Path = u.Path
	}
	return c.String()
}

// checkCallbackHost refuses to start a page authorization that could not
// complete: the binding cookie belongs to the page's host (public_url's),
// and a browser sends it only to that host, so the callback (redirect_url)
// must be on it.
func checkCallbackHost(cfg *configEntry) error {
	page, callback := pageOrigin(cfg), pageOrigin(&configEntry{RedirectURL: cfg.RedirectURL})
	if page != callback {
		return badInput(errors.New("this Vault's OAuth callback (config's redirect_url) is on another host than this page (public_url), so your browser could not prove at the callback that it started this sign-in; ask the operator to serve both from one host"))
	}
	return nil
}

// headerValues are the values of a request header, whatever its case.
func headerValues(headers map[string][]string, name string) []string {
	var out []string
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			out = append(out, v...)
		}
	}
	return out
}

// cookieValue is the value of the request's cookie name, "" when it has
// none.
func cookieValue(headers map[string][]string, name string) string {
	for _, line := range headerValues(headers, "Cookie") {
		cookies, err := http.ParseCookie(line)
		if err != nil {
			continue
		}
		for _, c := range cookies {
			if c.Name == name {
				return c.Value
			}
		}
	}
	return ""
}

// checkBindingCookie refuses the callback of an authorization a connect
// session started unless the browser brings the cookie the page's post
// set (compared in constant time). The state is spent already, and the
// code is never exchanged.
func (b *backend) checkBindingCookie(ctx context.Context, s logical.Storage, st *oauthStateEntry, headers map[string][]string) *callbackFailure {
	cfg, err := b.config(ctx, s)
	if err != nil {
		b.Logger().Error("reading config at the callback", "error", err)
		return &callbackFailure{http.StatusInternalServerError, "Vault could not read its configuration."}
	}
	if bindingMatches(st.BrowserBindingHash, cookieValue(headers, bindingCookieName(st.SessionHash, cfg.RedirectURL))) {
		return nil
	}
	b.Logger().Warn("callback refused: the browser does not hold the binding cookie of the page that started the authorization",
		"integration", st.Integration, "connection_id", st.ConnectionID, "cookie_header", len(headerValues(headers, "Cookie")) > 0)
	return &callbackFailure{http.StatusForbidden, "This sign-in was not started from this browser, so it was not stored. " +
		"Nothing was changed. If you were sent here by someone else, close this page. " +
		"Otherwise open the link you were given again, in this browser, and start again."}
}
