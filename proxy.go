// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/headertemplate"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// The proxy (docs/proxy.md): an application calls a provider's API through
// connections/<integration>/<id>/proxy/<provider path>, and the plugin puts
// the connection's credential on the call, so the application never holds
// it. Vault's policy on that path decides who may call which connection,
// method and path; the integration's proxy rules (proxy_paths,
// proxy_methods, proxy_headers) decide what may reach the provider at all;
// the egress rule decides the host.

// Defaults and bounds of an integration's proxy settings.
const (
	defaultProxyRetries       = 2
	maxProxyRetries           = 10
	defaultProxyRetryAfterMax = 10 * time.Second
	maxProxyRetryAfterMax     = 60 * time.Second
	defaultProxyMaxResponse   = provider.DefaultProxyMaxResponse
	maxProxyMaxResponse       = 32 << 20
	defaultProxyTimeout       = 30 * time.Second
	// maxProxyTimeout stays below Vault's own 90 s request limit, so the
	// caller gets the proxy's 504 rather than Vault's.
	maxProxyTimeout = 85 * time.Second
	// proxyBackoff is the first wait before retrying an answer that gave
	// no Retry-After; it doubles with each retry.
	proxyBackoff = 250 * time.Millisecond
)

// proxyMethods are the upstream methods a proxy may be allowed.
var proxyMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// retries, retryAfterMax, maxResponse and timeout are the settings with
// their defaults filled in.
func (p proxySettings) retries() int {
	if p.Retries == nil {
		return defaultProxyRetries
	}
	return *p.Retries
}

func (p proxySettings) retryAfterMax() time.Duration {
	if p.RetryAfterMax <= 0 {
		return defaultProxyRetryAfterMax
	}
	return p.RetryAfterMax
}

func (p proxySettings) maxResponse() int64 {
	if p.MaxResponse <= 0 {
		return defaultProxyMaxResponse
	}
	return p.MaxResponse
}

func (p proxySettings) timeout() time.Duration {
	if p.Timeout <= 0 {
		return defaultProxyTimeout
	}
	return p.Timeout
}

// methods are the allowed upstream methods: GET unless set.
func (p proxySettings) methods() []string {
	if len(p.Methods) == 0 {
		return []string{http.MethodGet}
	}
	return p.Methods
}

// validate checks the settings an integration write gives, each failure
// naming its field.
func (p proxySettings) validate(credentialHeaders []string) error {
	for _, pat := range p.Paths {
		if err := checkProxyPathGlob(pat); err != nil {
			return fmt.Errorf("proxy_paths: %q %w", printable(pat), err)
		}
	}
	for _, m := range p.Methods {
		if !slices.Contains(proxyMethods, m) {
			return fmt.Errorf("proxy_methods: %q is not one of %s", printable(m), strings.Join(proxyMethods, ", "))
		}
	}
	for _, h := range p.Headers {
		if !headertemplate.HeaderNameRe.MatchString(h) {
			return fmt.Errorf("proxy_headers: %q is not an HTTP header name", printable(h))
		}
		if why := refusedCallerHeader(h, credentialHeaders); why != "" {
			return fmt.Errorf("proxy_headers: %s %s", h, why)
		}
	}
	switch {
	case p.Retries != nil && (*p.Retries < 0 || *p.Retries > maxProxyRetries):
		return fmt.Errorf("proxy_retries must be between 0 and %d", maxProxyRetries)
	case p.RetryAfterMax < 0 || p.RetryAfterMax > maxProxyRetryAfterMax:
		return fmt.Errorf("proxy_retry_after_max must be between 0 and %s", maxProxyRetryAfterMax)
	case p.MaxResponse < 0 || p.MaxResponse > maxProxyMaxResponse:
		return fmt.Errorf("proxy_max_response must be between 1 and %d bytes", maxProxyMaxResponse)
	case p.Timeout < 0 || p.Timeout > maxProxyTimeout:
		return fmt.Errorf("proxy_timeout must be between 1s and %s", maxProxyTimeout)
	}
	return nil
}

// checkProxyPathGlob checks one proxy_paths entry: an absolute path of
// whole segments, '+' a whole segment (any one), '*' only at the end (any
// rest); nothing a provider path could not be.
func checkProxyPathGlob(pat string) error {
	if !strings.HasPrefix(pat, "/") || len(pat) > 512 {
		return errors.New("must start with '/' (a path under the API base) and be at most 512 characters")
	}
	body := strings.TrimSuffix(pat, "*")
	if strings.Contains(body, "*") {
		return errors.New("may hold '*' only at its end")
	}
	segs := strings.Split(strings.TrimPrefix(body, "/"), "/")
	for i, seg := range segs {
		if seg == "" && i < len(segs)-1 {
			return errors.New("may not hold an empty segment (//)")
		}
		if seg == "" || seg == "+" {
			continue
		}
		if strings.Contains(seg, "+") && strings.Trim(seg, "+") == "" {
			return errors.New("may hold '+' only as a whole segment")
		}
		if _, err := provider.ProxyPath(seg); err != nil {
			return fmt.Errorf("has a segment a provider path may not have: %w", err)
		}
	}
	return nil
}

// proxyPathAllowed reports whether the provider path's segments match one
// of the globs.
func proxyPathAllowed(globs []string, segments []string) bool {
	path := append([]string{""}, segments...)
	for _, g := range globs {
		if globMatches(g, path) {
			return true
		}
	}
	return false
}

// globMatches matches one glob against a path split at '/' (its first
// element empty, for the leading '/').
func globMatches(glob string, path []string) bool {
	body, prefix := strings.CutSuffix(glob, "*")
	parts := strings.Split(body, "/")
	if len(path) < len(parts) || (!prefix && len(path) != len(parts)) {
		return false
	}
	for i, part := range parts {
		last := i == len(parts)-1
		switch {
		case part == "+" && !(last && prefix):
			if path[i] == "" {
				return false
			}
		case last && prefix:
			if !strings.HasPrefix(path[i], part) {
				return false
			}
		case part != path[i]:
			return false
		}
	}
	return true
}

// allowedCallerHeaders pass on without being named in proxy_headers
// (canonical names); If-* too.
var allowedCallerHeaders = map[string]bool{"Accept": true, "Content-Type": true, "Idempotency-Key": true}

// refusedCallerHeaderNames are never taken from a caller.
var refusedCallerHeaderNames = map[string]bool{
	"Authorization": true, "Host": true, "Cookie": true, "Cookie2": true, "Forwarded": true, "X-Real-Ip": true,
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Expect": true, "Via": true, "Max-Forwards": true, "Accept-Encoding": true,
}

// refusedCallerHeader says why a caller may not set header name ("" when
// it may be allowed): it authenticates, routes or frames the request, or is
// one of the integration's credential headers.
func refusedCallerHeader(name string, credentialHeaders []string) string {
	canon := http.CanonicalHeaderKey(name)
	switch {
	case refusedCallerHeaderNames[canon],
		strings.HasPrefix(canon, "Proxy-"), strings.HasPrefix(canon, "X-Forwarded-"), strings.HasPrefix(canon, "X-Vault-"):
		return "is set by the proxy or Vault, never by a caller"
	case slices.ContainsFunc(credentialHeaders, func(h string) bool { return strings.EqualFold(h, name) }):
		return "carries the integration's credential, which only the proxy sets"
	}
	return ""
}

// checkCallerHeaders refuses a caller header that is not allowed, naming
// it, and any value with a line break or NUL.
func checkCallerHeaders(h http.Header, rules proxySettings, credentialHeaders []string) error {
	for name, values := range h {
		if !headertemplate.HeaderNameRe.MatchString(name) {
			return badInput(fmt.Errorf("header %q is not an HTTP header name", printable(name)))
		}
		if why := refusedCallerHeader(name, credentialHeaders); why != "" {
			return badInput(fmt.Errorf("header %s %s", http.CanonicalHeaderKey(name), why))
		}
		canon := http.CanonicalHeaderKey(name)
		listed := slices.ContainsFunc(rules.Headers, func(h string) bool { return strings.EqualFold(h, name) })
		if !allowedCallerHeaders[canon] && !strings.HasPrefix(canon, "If-") && !listed {
			return badInput(fmt.Errorf("header %s is not passed on: the proxy passes Accept, Content-Type, If-*, Idempotency-Key and the integration's proxy_headers", canon))
		}
		for _, v := range values {
			if !sendableHeaderValue(v) {
				return badInput(fmt.Errorf("header %s holds a line break or another control character", canon))
			}
		}
	}
	return nil
}

// sendableHeaderValue reports whether net/http sends v as a header value:
// no control character but a tab (a line break, NUL, a vertical tab),
// which it would refuse only after the call was counted as sent.
func sendableHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// proxyCall is one call through the proxy, as the handler read it from the
// Vault request.
type proxyCall struct {
	Integration, ConnectionID string
	// Method is the upstream method.
	Method string
	// Path is the provider path, as Vault matched it.
	Path string
	// Query is the query string to pass on, encoded.
	Query  string
	Header http.Header
	Body   []byte
}

// proxySender is what the proxier asks of internal/provider's client.
type proxySender interface {
	Proxy(ctx context.Context, base provider.ProxyBase, req provider.ProxyRequest) (*provider.ProxyResponse, error)
}

// proxier is the flow of the proxy: resolve the connection (a fresh token
// through the refresher), check the integration's rules, inject the
// credential, send through the provider client under the egress rule, retry
// as the rules allow, count the call.
type proxier struct {
	refresher  *refresher
	renderings *renderingCache
	store      *connectionStore
	client     proxySender
	now        func() time.Time
	// sleep waits d or until ctx ends; replaceable in tests.
	sleep  func(ctx context.Context, d time.Duration) bool
	logger func() hclog.Logger
}

// call makes one proxied call. Errors are the base layer's: userError
// (400), errProxyForbidden (403), errConnectionNotFound (404),
// errProxyUpstream (502), errProxyTimeout (504), the refresher's.
func (p *proxier) call(ctx context.Context, s logical.Storage, in proxyCall) (*provider.ProxyResponse, error) {
	segments, err := provider.ProxyPath(in.Path)
	if err != nil {
		return nil, badInput(err)
	}
	rendering, err := p.renderings.get(ctx, s, in.Integration)
	if err != nil {
		return nil, err
	}
	if rendering == nil {
		return nil, connectionNotFound(in.Integration, in.ConnectionID)
	}
	integration := rendering.integration
	rules := integration.Proxy
	if err := checkProxyRules(integration, rules, in.Method, segments); err != nil {
		return nil, err
	}
	if err := checkCallerHeaders(in.Header, rules, rendering.credentialHeaderNames()); err != nil {
		return nil, err
	}
	c, _, err := p.refresher.readRefreshed(ctx, s, in.Integration, in.ConnectionID)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, connectionNotFound(in.Integration, in.ConnectionID)
	}
	cfg := integration.ConnectionConfigSchema.WithDefaults(c.ConnectionConfig)
	base, err := provider.ResolveProxyBase(rendering.templates, cfg)
	if err != nil {
		return nil, classifyProviderError(err)
	}
	ctx, cancel := context.WithTimeout(ctx, rules.timeout())
	defer cancel()
	start := p.now()
	resp, err := p.send(ctx, s, in, rendering, c, base, segments)
	p.record(in, resp, err, start)
	return resp, err
}

// checkProxyRules refuses a call the integration's proxy does not allow.
func checkProxyRules(in *integrationEntry, rules proxySettings, method string, segments []string) error {
	switch {
	case len(rules.Paths) == 0:
		return &engineError{kind: errProxyForbidden, msg: fmt.Sprintf("integration %q has no proxy: its proxy_paths are empty", in.Name)}
	case !slices.Contains(rules.methods(), method):
		return &engineError{kind: errProxyForbidden, msg: fmt.Sprintf("integration %q's proxy_methods do not allow %s", in.Name, method)}
	case !proxyPathAllowed(rules.Paths, segments):
		return &engineError{kind: errProxyForbidden, msg: fmt.Sprintf("integration %q's proxy_paths do not allow this path", in.Name)}
	}
	return nil
}

// send sends the call, retrying as the rules allow: once with a renewed
// token after a 401, and an idempotent call (or one with an
// Idempotency-Key) on 429, 502, 503 and 504 up to proxy_retries times.
func (p *proxier) send(ctx context.Context, s logical.Storage, in proxyCall, r *integrationRendering, c *connectionEntry, base provider.ProxyBase, segments []string) (*provider.ProxyResponse, error) {
	rules := r.integration.Proxy
	renewed := false
	for attempt := 0; ; {
		req, err := p.request(in, r, c, segments)
		if err != nil {
			return nil, err
		}
		resp, err := p.client.Proxy(ctx, base, req)
		if err != nil {
			return nil, proxyError(err)
		}
		if resp.Status == http.StatusUnauthorized && !renewed && c.AuthMode.HasTokens() {
			renewed = true
			next, err := p.refresher.refreshRejected(ctx, s, in.Integration, in.ConnectionID, c.Credentials.AccessToken)
			if err != nil || next == nil || next.Credentials.AccessToken == c.Credentials.AccessToken {
				return resp, nil // no other token to try: the provider's 401
			}
			c = next
			continue
		}
		if attempt >= rules.retries() || !retryable(in, resp.Status) {
			return resp, nil
		}
		wait, ok := retryWait(resp, attempt, rules.retryAfterMax(), p.now())
		if deadline, has := ctx.Deadline(); !ok || (has && p.now().Add(wait).After(deadline)) {
			return resp, nil // a wait beyond the bound or the timeout: the provider's answer now
		}
		if !p.sleep(ctx, wait) {
			return nil, &engineError{kind: errProxyTimeout, msg: (&provider.ProxyTimeoutError{}).Error()}
		}
		attempt++
	}
}

// retryable reports whether an answer may be retried: 429, 502, 503, 504
// to a GET or DELETE, or to a write that carries an Idempotency-Key.
func retryable(in proxyCall, status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		return false
	}
	switch in.Method {
	case http.MethodGet, http.MethodHead, http.MethodDelete:
		return true
	}
	return in.Header.Get("Idempotency-Key") != ""
}

// retryWait is how long to wait before retry attempt+1: the answer's
// Retry-After when it gives one (ok false when that is beyond max), else a
// backoff that doubles.
func retryWait(resp *provider.ProxyResponse, attempt int, bound time.Duration, now time.Time) (time.Duration, bool) {
	if at := provider.RetryAfter(resp.Header, now); !at.IsZero() {
		d := max(at.Sub(now), 0)
		return d, d <= bound
	}
	return min(proxyBackoff<<attempt, bound), true
}

// request builds one attempt's request: the caller's headers with the
// connection's credential set over them.
func (p *proxier) request(in proxyCall, r *integrationRendering, c *connectionEntry, segments []string) (provider.ProxyRequest, error) {
	header := in.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	cred, err := r.credentialHeaders(c)
	if err != nil {
		return provider.ProxyRequest{}, err
	}
	var injected []string
	for name, v := range cred {
		header.Set(name, v)
		injected = append(injected, v)
	}
	return provider.ProxyRequest{
		Method:           in.Method,
		Segments:         segments,
		Query:            in.Query,
		Header:           header,
		Body:             in.Body,
		MaxResponseBytes: r.integration.Proxy.maxResponse(),
		Secrets:          connectionSecrets(r.integration, c, injected...),
	}, nil
}

// proxyError gives the provider client's failure its kind: the caller sees
// which bound was hit, never a URL or a secret.
func proxyError(err error) error {
	var tooLarge *provider.ProxyTooLargeError
	var timeout *provider.ProxyTimeoutError
	var pe *provider.Error
	switch {
	case errors.As(err, &tooLarge):
		return &engineError{kind: errProxyUpstream, msg: err.Error(), cause: err}
	case errors.As(err, &timeout):
		return &engineError{kind: errProxyTimeout, msg: err.Error(), cause: err}
	case errors.As(err, &pe):
		return &engineError{kind: errProxyUpstream, msg: err.Error(), cause: err}
	}
	return classifyProviderError(err)
}

// record counts a call that reached the provider and logs one it did not
// answer in time or in bounds, without its path, query or any header. An
// answered call is not logged: Vault's audit log has it, the metric counts
// it, and a log line per call would cost the plugin an encoding and a
// write, and Vault a parse, on every call.
func (p *proxier) record(in proxyCall, resp *provider.ProxyResponse, err error, start time.Time) {
	var tooLarge *provider.ProxyTooLargeError
	var timeout *provider.ProxyTimeoutError
	reached := resp != nil || errors.As(err, &tooLarge) || errors.As(err, &timeout)
	if !reached {
		return
	}
	p.store.NoteProxyCall(in.Integration, in.ConnectionID, p.now())
	status := "error"
	if resp != nil {
		status = fmt.Sprintf("%dxx", resp.Status/100)
	}
	metrics.IncrCounterWithLabels([]string{"connect", "proxy", "call"}, 1, []metrics.Label{
		{Name: "integration", Value: in.Integration}, {Name: "status", Value: status},
	})
	if resp == nil {
		p.logger().Debug("proxied call not answered", "integration", in.Integration, "connection_id", in.ConnectionID,
			"method", in.Method, "error", err.Error(), "duration", p.now().Sub(start))
	}
}

// credentialHeaderNames are the headers that carry the integration's
// credential: its request_headers, and Authorization.
func (u *integrationRendering) credentialHeaderNames() []string {
	names := []string{"Authorization"}
	for name := range u.headers {
		names = append(names, name)
	}
	return names
}

// credentialHeaders are the headers that put c's credential on a proxied
// call: the integration's request_headers rendered with it and, unless they
// set Authorization, Bearer for token modes and Basic for BASIC. API_KEY
// and CUSTOM need request_headers.
func (u *integrationRendering) credentialHeaders(c *connectionEntry) (map[string]string, error) {
	out := map[string]string{}
	lookup := connectionVariables(c, u.integration.ConnectionConfigSchema.WithDefaults(c.ConnectionConfig))
	for _, name := range slices.Sorted(maps.Keys(u.headers)) {
		v, err := u.headers[name].Render(lookup)
		if err == nil && strings.ContainsAny(v, "\r\n\x00") {
			err = errors.New("its value would hold a line break")
		}
		if err != nil {
			return nil, &engineError{kind: errBadConnectionConfig, msg: fmt.Sprintf("request header %s cannot be made for this connection: %s", name, err)}
		}
		out[http.CanonicalHeaderKey(name)] = v
	}
	if _, set := out["Authorization"]; set {
		return out, nil
	}
	switch c.AuthMode {
	case catalog.OAuth2, catalog.OAuth2CC, catalog.App:
		out["Authorization"] = "Bearer " + c.Credentials.AccessToken
	case catalog.Basic:
		out["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Credentials.Username+":"+c.Credentials.Password))
	default:
		if len(out) == 0 {
			return nil, &engineError{kind: errBadConnectionConfig, msg: fmt.Sprintf("integration %q has no request_headers: the proxy has no way to put a %s credential on the call", u.integration.Name, c.AuthMode)}
		}
	}
	return out, nil
}

// proxyCallsOf are a connection's proxied calls for its read: stored and
// since the last save.
func (p *proxier) proxyCallsOf(c *connectionEntry) (int64, time.Time) {
	return p.store.ProxyCalls(c)
}
