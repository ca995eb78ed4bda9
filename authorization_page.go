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

// The connect page's part in an authorization: a session's post starts it
// with a cookie that binds it to the browser, and the callback requires
// that cookie (completeCallback, authorization.go).

// startForSession starts the OAuth authorization of the connection of the
// connect session whose secret's hash is secretHash, with the config the
// posted form gives (nil when its form has none), as authorize does, and returns where the
// browser goes and the binding cookie the callback will require. The
// caller holds the session's lock.
func (a *authorizer) startForSession(ctx context.Context, s logical.Storage, sess *sessionEntry, secretHash, integration string, config map[string]any) (*pageAuthorization, error) {
	cfg, err := a.config(ctx, s)
	if err != nil {
		return nil, err
	}
	if cfg.RedirectURL == "" {
		return nil, badInput(errors.New("this Vault is not set up for OAuth (config's redirect_url)"))
	}
	stored, err := getIntegration(ctx, s, integration)
	if err != nil {
		return nil, err
	}
	if stored == nil {
		return nil, badInput(fmt.Errorf("integration %q does not exist; create it first at integrations/%s", integration, integration))
	}
	in, err := effectiveIntegration(ctx, s, stored)
	if err != nil {
		return nil, err
	}
	existing, err := a.store.Get(ctx, s, integration, sess.ConnectionID)
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
	st, err := newPendingAuthorization(cfg, in, existing, sessionAuthorizationRequest(sess, secretHash, binding, config), a.now())
	if err != nil {
		return nil, err
	}
	authURL, err := a.authorize(ctx, s, in, existing, st)
	if err != nil {
		return nil, err
	}
	return &pageAuthorization{
		url:    authURL,
		cookie: bindingCookie(secretHash, binding, cfg.RedirectURL, cfg.StateTTL),
	}, nil
}

// sessionAuthorizationRequest is the pending authorization a session's
// post asks for: the form's config (merged over the connection's on a
// reconnect), the session's metadata and tags for a new connection, and
// the page's binding cookie value.
func sessionAuthorizationRequest(sess *sessionEntry, secretHash, binding string, config map[string]any) authorizationRequest {
	r := authorizationRequest{
		connectionID: sess.ConnectionID, sessionHash: secretHash, browserBinding: binding,
		createOnly: !sess.Reconnect,
	}
	if config != nil {
		r.connectionConfig, r.configGiven, r.mergeConfig = config, true, sess.Reconnect
	}
	if !sess.Reconnect {
		r.metadata, r.metadataGiven = nonNilObject(sess.Metadata), true
		r.tags, r.tagsGiven = sess.Tags, true
	}
	return r
}

// pageAuthorization is an authorization the page's button started: the
// provider's URL and the Set-Cookie line of its binding cookie.
type pageAuthorization struct {
	url, cookie string
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
func (a *authorizer) checkBindingCookie(ctx context.Context, s logical.Storage, st *pendingAuthorization, headers map[string][]string) *completionError {
	cfg, err := a.config(ctx, s)
	if err != nil {
		a.logger().Error("reading config at the callback", "error", err)
		return &completionError{faultVault, "Vault could not read its configuration."}
	}
	if bindingMatches(st.BrowserBindingHash, cookieValue(headers, bindingCookieName(st.SessionHash, cfg.RedirectURL))) {
		return nil
	}
	a.logger().Warn("callback refused: the browser does not hold the binding cookie of the page that started the authorization",
		"integration", st.Integration, "connection_id", st.ConnectionID, "cookie_header", len(headerValues(headers, "Cookie")) > 0)
	return &completionError{faultBinding, "This sign-in was not started from this browser, so it was not stored. " +
		"Nothing was changed. If you were sent here by someone else, close this page. " +
		"Otherwise open the link you were given again, in this browser, and start again."}
}

// pageOrigin is the origin (RFC 6454) the page is served from: public_url's,
// else redirect_url's, without a default port. "" when neither is set.
func pageOrigin(cfg *configEntry) string {
	base := cfg.PublicURL
	if base == "" {
		base = cfg.RedirectURL
	}
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	return scheme + "://" + host
}
