// SPDX-License-Identifier: MPL-2.0

// Package provider is the engine's HTTP client for external APIs: OAuth 2.0
// token requests (refresh, client credentials, code exchange), RFC 7009
// revocation, GitHub-App installation tokens and the templating of provider
// URLs. Like the client package of HashiCorp's openldap plugin, it takes
// plain values (resolved endpoints, client credentials) and an injected
// *http.Client and clock, and knows nothing of Vault's storage or paths.
package provider

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// MaxResponseBytes bounds what is read of any provider response. A token
// response is a few hundred bytes; more is a broken or hostile server.
const MaxResponseBytes = 1 << 20

// DefaultTimeout bounds one provider request when the injected client has
// no timeout of its own.
const DefaultTimeout = 30 * time.Second

// Client talks to providers. The zero value is not usable; use New.
type Client struct {
	http *http.Client
	// proxy sends proxied requests: the same guarded transport, no
	// redirects, and no timeout of its own (each request's context has
	// the integration's).
	proxy *http.Client
	// scrubbers are the proxy's scrubbers of connections' secrets.
	scrubbers scrubberCache
	now       func() time.Time
}

// New returns a Client that sends requests with base's transport and
// timeout (DefaultTimeout when it has none) and reads the time from now.
// Redirects are never followed: a 307 or 308 from a token endpoint would
// re-post the client secret, a refresh token or a code to wherever the
// Location header points.
func New(base *http.Client, now func() time.Time) *Client {
	if base == nil {
		base = &http.Client{}
	}
	timeout := base.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	noRedirects := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		http: &http.Client{
			Transport:     egressGuard{next: base.Transport},
			Timeout:       timeout,
			CheckRedirect: noRedirects,
		},
		proxy: &http.Client{Transport: egressGuard{next: proxyTransport(base.Transport)}, CheckRedirect: noRedirects},
		now:   now,
	}
}

// ProxyIdleConnsPerHost is how many idle connections the proxy keeps to
// one provider host. Proxied calls come as concurrently as applications
// send them, to a few API hosts: a pool that keeps fewer idle than are in
// use (cleanhttp's keeps GOMAXPROCS+1, net/http's default 2) closes the
// rest after each call and dials again for the next, a TCP (and TLS)
// handshake per call and a socket left in TIME_WAIT.
const ProxyIdleConnsPerHost = 64

// proxyTransport is the proxy's own pool: a clone of base (its dialer,
// TLS and proxy settings) that keeps up to ProxyIdleConnsPerHost idle
// connections per host, so that token requests and proxied calls do not
// evict each other's. Any other RoundTripper (a test's) is used as given.
// Either way the egress guard wraps it: pooling reuses a connection only
// for the host a request names, which the guard has checked.
func proxyTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return base
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = max(t.MaxIdleConnsPerHost, ProxyIdleConnsPerHost)
	if t.MaxIdleConns != 0 {
		t.MaxIdleConns = max(t.MaxIdleConns, 4*ProxyIdleConnsPerHost)
	}
	return t
}

// CloseIdleConnections closes the kept-alive connections to providers.
func (c *Client) CloseIdleConnections() {
	c.http.CloseIdleConnections()
	c.proxy.CloseIdleConnections()
}

// Endpoints are a provider's URLs with one connection's configuration
// filled in (see ResolveEndpoints).
type Endpoints struct {
	Auth, Token, Revocation, APIBase string
	// Refresh is where refresh requests go; empty means Token.
	Refresh string
	// AllowedHosts are the host patterns the operator declared for these
	// templates (see HostPolicy).
	AllowedHosts []string
	// ClientAPIBase says that APIBase is only returned to clients (every
	// mode but APP): it may be a whole URL from the config, and the client
	// sends nothing there, so ResolveEndpoints leaves it out.
	ClientAPIBase bool
	// allowed is set by ResolveEndpoints only: Endpoints built any other
	// way reach no host at all.
	allowed *HostPolicy
	// cachedPolicy is the templates' policy computed once (WithPolicy);
	// it never lets a request out.
	cachedPolicy *HostPolicy
}

// guard returns ctx carrying ep's host policy for the transport, or an
// EgressError when rawURL is outside it (or ep has none).
func (ep Endpoints) guard(ctx context.Context, field, rawURL string) (context.Context, error) {
	if ep.allowed == nil {
		return ctx, &EgressError{Field: field, Host: hostname(rawURL)}
	}
	if err := ep.allowed.checkURL(field, rawURL); err != nil {
		return ctx, err
	}
	return withPolicy(ctx, *ep.allowed), nil
}

func hostname(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// OAuthApp is an OAuth client as registered with a provider.
type OAuthApp struct {
	ClientID     string
	ClientSecret string
	// AuthStyle is how the client authenticates at the token endpoint:
	// "header" (HTTP Basic), "params" (form body) or "auto"/"" (try both).
	AuthStyle string
	// Scopes are the app's default scopes.
	Scopes []string
	// AuthParams are extra query parameters of the authorization URL.
	AuthParams map[string]string
	// TokenParams are extra form parameters of every token request.
	TokenParams map[string]string
	// RefreshParams are extra form parameters of refresh requests only,
	// applied after TokenParams.
	RefreshParams map[string]string
	// ScopeSeparator joins scopes; empty means a space.
	ScopeSeparator string
	// JSONBody sends token requests as a JSON object instead of a form.
	JSONBody bool
	// ParamSecrets are values in TokenParams or RefreshParams that came
	// from secret config: scrubbed, like the client secret, from any error
	// description the provider echoes.
	ParamSecrets []string
}

// AuthStyles are the accepted AuthStyle values.
var AuthStyles = map[string]oauth2.AuthStyle{
	"auto":   oauth2.AuthStyleAutoDetect,
	"header": oauth2.AuthStyleInHeader,
	"params": oauth2.AuthStyleInParams,
}

// Token is one successful answer of a token endpoint.
type Token struct {
	*oauth2.Token
	// Raw is the response body as the provider sent it, decoded.
	Raw map[string]any
}

// Error is a failed provider request, described without any secret: the
// HTTP status and the RFC 6749 error code and description, or the transport
// failure. Never the body, which may echo what was sent.
type Error struct {
	Status      int // 0: no HTTP answer
	Code        string
	Description string
	// RetryAfter is when the provider asked to be called again (its
	// Retry-After header, RFC 9110 section 10.2.3), zero when it did not.
	RetryAfter time.Time
	cause      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("provider")
	if e.Status != 0 {
		fmt.Fprintf(&b, " answered HTTP %d", e.Status)
		if e.Status/100 == 3 {
			b.WriteString(" (a redirect, which is not followed)")
		}
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, " (%s)", e.Description)
	}
	if e.Unreachable() {
		fmt.Fprintf(&b, " could not be reached: %s", redactedCause(e.cause))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.cause }

// Unreachable reports whether the provider never answered.
func (e *Error) Unreachable() bool { return e.Status == 0 && e.Code == "" && e.cause != nil }

// InvalidGrant reports whether the provider refused the grant itself: the
// refresh token or code is spent, revoked or expired, and only a new
// authorization helps.
func (e *Error) InvalidGrant() bool { return e.Code == "invalid_grant" }

// RetryAt is RetryAfter as a method, so that callers may test for it with an
// interface of their own instead of importing this package.
func (e *Error) RetryAt() time.Time { return e.RetryAfter }

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP
// date. Zero when absent or unreadable.
func parseRetryAfter(h http.Header, now time.Time) time.Time {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return time.Time{}
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return time.Time{}
		}
		return now.Add(time.Duration(secs) * time.Second)
	}
	if t, err := http.ParseTime(v); err == nil {
		return t
	}
	return time.Time{}
}

// redactedCause describes a transport failure. url.Error quotes the URL,
// which carries no secret, but its inner error is all a caller needs.
func redactedCause(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err.Error()
	}
	return err.Error()
}

// errorFromResponse is the Error of a non-success answer whose body was
// decoded into raw. sent are the secrets of the request, which the answer
// may echo.
func errorFromResponse(status int, raw map[string]any, sent []string) *Error {
	code, _ := raw["error"].(string)
	desc, _ := raw["error_description"].(string)
	if desc == "" {
		desc, _ = raw["message"].(string) // GitHub's REST API
	}
	return providerError(status, code, desc, sent)
}

// Bounds of what an Error keeps of a provider's error code and description.
const (
	maxErrorCodeRunes        = 100
	maxErrorDescriptionRunes = 300
)

// providerError keeps a provider's error code and description with the
// request's secrets removed before they are cut to length.
func providerError(status int, code, desc string, sent []string) *Error {
	return &Error{
		Status:      status,
		Code:        safetext.Redact(code, maxErrorCodeRunes, sent...),
		Description: safetext.Redact(desc, maxErrorDescriptionRunes, sent...),
	}
}

// secrets are what authenticates app at a token endpoint: its client
// secret, and the Basic credential made of it, which a provider may echo
// from the Authorization header.
func (app OAuthApp) secrets() []string {
	basic := url.QueryEscape(app.ClientID) + ":" + url.QueryEscape(app.ClientSecret)
	return append([]string{app.ClientSecret, base64.StdEncoding.EncodeToString([]byte(basic))}, app.ParamSecrets...)
}
