// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Refresh spends refreshToken at the token endpoint (RFC 6749 section 6).
func (c *Client) Refresh(ctx context.Context, app OAuthApp, ep Endpoints, refreshToken string) (*Token, error) {
	if ep.Refresh != "" {
		ep.Token = ep.Refresh
	}
	if len(app.RefreshParams) > 0 {
		app.TokenParams = mergeParams(app.TokenParams, app.RefreshParams)
	}
	ctx, err := ep.guard(ctx, "refresh_url", ep.Token)
	if err != nil {
		return nil, err
	}
	cfg := app.config(ep, "", nil)
	return c.fetch(ctx, app, []string{refreshToken}, func(ctx context.Context) (*oauth2.Token, error) {
		// An empty access token makes the source refresh at once.
		return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	})
}

// ClientCredentials gets a token with the client-credentials grant; scopes
// nil means the app's.
func (c *Client) ClientCredentials(ctx context.Context, app OAuthApp, ep Endpoints, scopes []string) (*Token, error) {
	if scopes == nil {
		scopes = app.Scopes
	}
	ctx, err := ep.guard(ctx, "token_url", ep.Token)
	if err != nil {
		return nil, err
	}
	cc := &clientcredentials.Config{
		ClientID:     app.ClientID,
		ClientSecret: app.ClientSecret,
		TokenURL:     ep.Token,
		Scopes:       app.joinScopes(scopes),
		AuthStyle:    AuthStyles[app.AuthStyle],
	}
	return c.fetch(ctx, app, nil, cc.Token)
}

// ExchangeCode trades an authorization code (and its PKCE verifier, if any)
// for tokens.
func (c *Client) ExchangeCode(ctx context.Context, app OAuthApp, ep Endpoints, redirectURL, code, verifier string) (*Token, error) {
	ctx, err := ep.guard(ctx, "token_url", ep.Token)
	if err != nil {
		return nil, err
	}
	cfg := app.config(ep, redirectURL, nil)
	var opts []oauth2.AuthCodeOption
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	return c.fetch(ctx, app, []string{code, verifier}, func(ctx context.Context) (*oauth2.Token, error) {
		return cfg.Exchange(ctx, code, opts...)
	})
}

// AuthCodeURL is the provider's consent page for one authorization. scopes
// nil means the app's; verifier empty means no PKCE.
func AuthCodeURL(app OAuthApp, ep Endpoints, redirectURL, state string, scopes []string, verifier string) string {
	var opts []oauth2.AuthCodeOption
	for k, v := range app.AuthParams {
		if slices.Contains(ReservedAuthParams, k) {
			// The flow sets it (CheckAuthParams let through only the
			// flow's own value): send it once, as the flow does.
			continue
		}
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	if verifier != "" {
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	return app.config(ep, redirectURL, scopes).AuthCodeURL(state, opts...)
}

// ReservedAuthParams are the authorization request parameters the flow
// sets itself; an auth param must not override them.
var ReservedAuthParams = []string{"client_id", "redirect_uri", "response_type", "state", "scope", "code_challenge", "code_challenge_method"}

// flowAuthParamValues are the reserved parameters whose value never
// varies: a provider definition that restates it (many catalogs list
// response_type=code) asks for nothing the flow does not do.
var flowAuthParamValues = map[string]string{"response_type": "code"}

// CheckAuthParams refuses auth params that would override a parameter the
// flow sets, except one restating the flow's fixed value exactly. The
// error names the parameter, never the value given.
func CheckAuthParams(params map[string]string) error {
	for _, k := range ReservedAuthParams {
		v, ok := params[k]
		if !ok {
			continue
		}
		fixed, hasFixed := flowAuthParamValues[k]
		switch {
		case hasFixed && v == fixed:
			continue
		case hasFixed:
			return fmt.Errorf("auth_params.%s may only be %s, the value the authorization flow sends; leave it out or set it to %s", k, fixed, fixed)
		}
		return fmt.Errorf("auth_params cannot set %s: the authorization flow sets it", k)
	}
	return nil
}

// config is the x/oauth2 client of app for one connection's endpoints.
func (app OAuthApp) config(ep Endpoints, redirectURL string, scopes []string) *oauth2.Config {
	if scopes == nil {
		scopes = app.Scopes
	}
	return &oauth2.Config{
		ClientID:     app.ClientID,
		ClientSecret: app.ClientSecret,
		Scopes:       app.joinScopes(scopes),
		RedirectURL:  redirectURL,
		Endpoint: oauth2.Endpoint{
			AuthURL:   ep.Auth,
			TokenURL:  ep.Token,
			AuthStyle: AuthStyles[app.AuthStyle],
		},
	}
}

// joinScopes hands x/oauth2, which joins scopes with spaces, a single
// pre-joined scope when the app wants another separator.
func (app OAuthApp) joinScopes(scopes []string) []string {
	if app.ScopeSeparator == "" || app.ScopeSeparator == " " || len(scopes) < 2 {
		return scopes
	}
	return []string{strings.Join(scopes, app.ScopeSeparator)}
}

// mergeParams returns base with over's entries on top.
func mergeParams(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	maps.Copy(out, base)
	maps.Copy(out, over)
	return out
}

// errResponseTooLarge is a response over MaxResponseBytes.
var errResponseTooLarge = fmt.Errorf("response body exceeds %d bytes", MaxResponseBytes)

// fetch runs one x/oauth2 token request through a transport that adds the
// app's token_params, bounds and keeps the raw response. sent are the
// request's own secrets besides the client secret, scrubbed from any error
// description the provider echoes.
func (c *Client) fetch(ctx context.Context, app OAuthApp, sent []string, get func(context.Context) (*oauth2.Token, error)) (*Token, error) {
	tt := &tokenTransport{base: c.http.Transport, params: app.TokenParams, jsonBody: app.JSONBody}
	client := &http.Client{Transport: tt, Timeout: c.http.Timeout, CheckRedirect: c.http.CheckRedirect}
	tok, err := get(context.WithValue(ctx, oauth2.HTTPClient, client))
	if err != nil {
		pe := asError(err, tt.status, append(sent, app.secrets()...))
		if tt.header != nil {
			pe.RetryAfter = parseRetryAfter(tt.header, c.now())
		}
		return nil, pe
	}
	if tok.AccessToken == "" {
		return nil, &Error{Status: tt.status, Description: "response has no access_token"}
	}
	return &Token{Token: tok, Raw: DecodeBody(tt.body)}, nil
}

// asError turns x/oauth2's error into an Error. RetrieveError carries the
// response body, which must not reach a log or a user, so only its parsed
// fields are kept, without the request's secrets (sent).
func asError(err error, status int, sent []string) *Error {
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		pe := providerError(0, rerr.ErrorCode, rerr.ErrorDescription, sent)
		if rerr.Response != nil {
			pe.Status = rerr.Response.StatusCode
		}
		if pe.Code == "" && pe.Description == "" && pe.Status/100 == 2 {
			pe.Description = "response could not be parsed as a token response"
		}
		return pe
	}
	if errors.Is(err, errResponseTooLarge) {
		return &Error{Status: status, Description: errResponseTooLarge.Error()}
	}
	if strings.Contains(err.Error(), "missing access_token") { // x/oauth2's own words
		return &Error{Status: status, Description: "response has no access_token"}
	}
	if status != 0 {
		// An answer x/oauth2 could not read: say so without its text,
		// which quotes the body.
		return &Error{Status: status, Description: "response could not be parsed as a token response"}
	}
	return &Error{cause: err}
}

// tokenTransport adds extra token parameters to token requests and records
// the last response. x/oauth2 takes extra parameters for some grants but not
// for refresh, and exposes no raw response; doing both here treats every
// grant the same way.
type tokenTransport struct {
	base     http.RoundTripper
	params   map[string]string
	jsonBody bool // re-encode the form as a JSON object
	body     []byte
	status   int
	header   http.Header
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	if (len(t.params) > 0 || t.jsonBody) && req.Method == http.MethodPost && req.Body != nil {
		if err := t.rewriteBody(req); err != nil {
			return nil, err
		}
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	t.status, t.header = resp.StatusCode, resp.Header
	body, err := readBounded(resp.Body)
	if err != nil {
		return nil, err
	}
	t.body = body
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// readBounded reads and closes a response body of at most MaxResponseBytes.
func readBounded(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if len(body) > MaxResponseBytes {
		return nil, errResponseTooLarge
	}
	return body, nil
}

// rewriteBody merges the extra parameters into the form body (a parameter
// the grant itself set wins) and, for JSON providers, encodes it as a JSON
// object of strings.
func (t *tokenTransport) rewriteBody(req *http.Request) error {
	raw, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return err
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return fmt.Errorf("token request body is not a form: %w", err)
	}
	for k, v := range t.params {
		if _, set := form[k]; !set {
			form.Set(k, v)
		}
	}
	encoded := form.Encode()
	if t.jsonBody {
		obj := make(map[string]string, len(form))
		for k := range form {
			obj[k] = form.Get(k)
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		encoded = string(b)
		req.Header.Set("Content-Type", "application/json")
	}
	req.Body = io.NopCloser(strings.NewReader(encoded))
	req.ContentLength = int64(len(encoded))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(encoded)), nil }
	return nil
}

// DecodeBody decodes a token response: JSON as RFC 6749 says, or the form
// encoding some providers (GitHub's classic apps) still send.
func DecodeBody(body []byte) map[string]any {
	out := map[string]any{}
	if json.Unmarshal(body, &out) == nil {
		return out
	}
	out = map[string]any{}
	if form, err := url.ParseQuery(string(body)); err == nil {
		for k := range form {
			out[k] = form.Get(k)
		}
	}
	return out
}

// LookupMember finds a dotted path such as "team.id" in a decoded response.
func LookupMember(raw map[string]any, path string) (any, bool) {
	var cur any = raw
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// GrantedScopes reads the "scope" member of a token response, if any.
func GrantedScopes(raw map[string]any) []string {
	s, ok := raw["scope"].(string)
	if !ok || strings.TrimSpace(s) == "" {
		return nil
	}
	// RFC 6749 says space-delimited; some providers use commas.
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}

// ReservedTokenParams are the token, refresh and revocation request
// parameters the flow sets itself or that carry a secret.
var ReservedTokenParams = []string{"grant_type", "client_id", "client_secret", "code", "code_verifier", "refresh_token",
	"redirect_uri", "scope", "token", "token_type_hint", "assertion", "client_assertion", "client_assertion_type"}

// CheckQueryParams refuses a URL template whose query (in any alternative)
// names a parameter with a placeholder, or names one of reserved: a value there, a connection's through a
// placeholder or the operator's, would come before the one the flow sends,
// and many servers take the first. Names compare case-insensitively.
func CheckQueryParams(field, tmpl string, reserved []string) error {
	for _, alt := range Alternatives(tmpl) {
		_, query, ok := strings.Cut(alt, "?")
		if !ok {
			continue
		}
		query, _, _ = strings.Cut(query, "#")
		for _, pair := range strings.Split(query, "&") {
			name, _, _ := strings.Cut(pair, "=")
			if strings.Contains(name, "${") {
				// Its value could be any parameter name, the flow's own
				// included.
				return fmt.Errorf("%s: a placeholder may not name a query parameter", field)
			}
			if unescaped, err := url.QueryUnescape(name); err == nil {
				name = unescaped
			}
			for _, r := range reserved {
				if strings.EqualFold(name, r) {
					return fmt.Errorf("%s may not set %s in its query: the flow sends it", field, r)
				}
			}
		}
	}
	return nil
}

// QueryPlaceholders lists the config keys used in the query of any
// alternative of tmpl: values that travel with a request as parameters.
func QueryPlaceholders(tmpl string) []string {
	var queries []string
	for _, alt := range Alternatives(tmpl) {
		if _, query, ok := strings.Cut(alt, "?"); ok {
			queries = append(queries, query)
		}
	}
	return Placeholders(strings.Join(queries, "&"))
}
