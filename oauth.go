package connect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// maxTokenResponseBytes bounds what is read and stored of a token response.
const maxTokenResponseBytes = 1 << 20

// tokenResult is one successful answer of a token endpoint.
type tokenResult struct {
	token *oauth2.Token
	// raw is the response body as the provider sent it, decoded.
	raw map[string]any
}

// providerError is a failed token request, described without any secret:
// only the HTTP status and the RFC 6749 error code and description.
type providerError struct {
	Status      int
	Code        string
	Description string
	cause       error
}

func (e *providerError) Error() string {
	var b strings.Builder
	b.WriteString("token endpoint")
	if e.Status != 0 {
		fmt.Fprintf(&b, " answered HTTP %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, " (%s)", e.Description)
	}
	if e.Status == 0 && e.Code == "" && e.cause != nil {
		fmt.Fprintf(&b, " could not be reached: %s", redactedCause(e.cause))
	}
	return b.String()
}

func (e *providerError) Unwrap() error { return e.cause }

// redactedCause describes a transport failure. url.Error would quote the
// URL, which is the provider's token URL and carries no secret, but its
// inner error is all a caller needs.
func redactedCause(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err.Error()
	}
	return err.Error()
}

// asProviderError turns x/oauth2's error into a providerError. RetrieveError
// carries the response body, which must not reach a log or a user, so only
// its parsed fields are kept.
func asProviderError(err error) error {
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		pe := &providerError{Code: printableN(rerr.ErrorCode, 100), Description: printableN(rerr.ErrorDescription, 300)}
		if rerr.Response != nil {
			pe.Status = rerr.Response.StatusCode
		}
		return pe
	}
	return &providerError{cause: err}
}

// refreshToken spends refreshToken at the integration's token endpoint.
func (b *backend) refreshToken(ctx context.Context, in *integrationEntry, ep endpoints, refreshToken string) (*tokenResult, error) {
	cfg := oauthConfig(in, ep, "", nil)
	return b.fetchToken(ctx, in, func(ctx context.Context) (*oauth2.Token, error) {
		// An empty access token makes the source refresh at once.
		return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	})
}

// clientCredentialsToken gets a token with the client-credentials grant.
func (b *backend) clientCredentialsToken(ctx context.Context, in *integrationEntry, ep endpoints, scopes []string) (*tokenResult, error) {
	cc := &clientcredentials.Config{
		ClientID:     in.ClientID,
		ClientSecret: in.ClientSecret,
		TokenURL:     ep.token,
		Scopes:       scopes,
		AuthStyle:    authStyles[in.AuthStyle],
	}
	return b.fetchToken(ctx, in, cc.Token)
}

// exchangeCode trades an authorization code (and its PKCE verifier, if any)
// for tokens.
func (b *backend) exchangeCode(ctx context.Context, in *integrationEntry, ep endpoints, redirectURL, code, verifier string) (*tokenResult, error) {
	cfg := oauthConfig(in, ep, redirectURL, nil)
	var opts []oauth2.AuthCodeOption
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	return b.fetchToken(ctx, in, func(ctx context.Context) (*oauth2.Token, error) {
		return cfg.Exchange(ctx, code, opts...)
	})
}

// oauthConfig is the x/oauth2 client of an integration, with its URLs filled
// for one connection. scopes nil means the integration's.
func oauthConfig(in *integrationEntry, ep endpoints, redirectURL string, scopes []string) *oauth2.Config {
	if scopes == nil {
		scopes = in.Scopes
	}
	return &oauth2.Config{
		ClientID:     in.ClientID,
		ClientSecret: in.ClientSecret,
		Scopes:       scopes,
		RedirectURL:  redirectURL,
		Endpoint: oauth2.Endpoint{
			AuthURL:   ep.auth,
			TokenURL:  ep.token,
			AuthStyle: authStyles[in.AuthStyle],
		},
	}
}

// fetchToken runs one x/oauth2 token request through a transport that adds
// the integration's token_params and keeps the raw response.
func (b *backend) fetchToken(ctx context.Context, in *integrationEntry, get func(context.Context) (*oauth2.Token, error)) (*tokenResult, error) {
	tt := &tokenTransport{base: b.httpClient.Transport, params: in.TokenParams}
	client := &http.Client{Transport: tt, Timeout: b.httpClient.Timeout}
	tok, err := get(context.WithValue(ctx, oauth2.HTTPClient, client))
	if err != nil {
		return nil, asProviderError(err)
	}
	if tok.AccessToken == "" {
		return nil, &providerError{Description: "response has no access_token"}
	}
	return &tokenResult{token: tok, raw: decodeTokenBody(tt.body)}, nil
}

// tokenTransport adds the integration's extra token parameters to requests
// for its token endpoint and records the last response body. x/oauth2 takes
// extra parameters for some grants but not for refresh, and exposes no raw
// response; doing both here treats every grant the same way.
type tokenTransport struct {
	base   http.RoundTripper
	params map[string]string
	body   []byte
}

func (t *tokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	if len(t.params) > 0 && req.Method == http.MethodPost && req.Body != nil {
		if err := t.addParams(req); err != nil {
			return nil, err
		}
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponseBytes))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading token response: %w", err)
	}
	t.body = body
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// addParams merges the extra parameters into the form body; a parameter the
// grant itself set wins.
func (t *tokenTransport) addParams(req *http.Request) error {
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
	req.Body = io.NopCloser(strings.NewReader(encoded))
	req.ContentLength = int64(len(encoded))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(encoded)), nil }
	return nil
}

// decodeTokenBody decodes a token response: JSON as RFC 6749 says, or the
// form encoding some providers (GitHub's classic apps) still send.
func decodeTokenBody(body []byte) map[string]any {
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

// lookupMember finds a dotted path such as "team.id" in a decoded response.
func lookupMember(raw map[string]any, path string) (any, bool) {
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

// grantedScopes reads the "scope" member of a token response, if any.
func grantedScopes(raw map[string]any) []string {
	s, ok := raw["scope"].(string)
	if !ok || strings.TrimSpace(s) == "" {
		return nil
	}
	// RFC 6749 says space-delimited; some providers use commas.
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}

// obtainToken asks the provider for a new token by the grant the auth mode
// uses. in is the stored integration; its provider is resolved here so that
// an operator's change to a provider applies to the next refresh.
func (b *backend) obtainToken(ctx context.Context, s logical.Storage, stored *integrationEntry, c *connectionEntry) (*tokenResult, *integrationEntry, error) {
	in, err := effectiveIntegration(ctx, s, stored)
	if err != nil {
		return nil, nil, err
	}
	ep, err := resolveEndpoints(in, c.ConnectionConfig)
	if err != nil {
		return nil, nil, err
	}
	var res *tokenResult
	switch c.AuthMode {
	case authModeOAuth2CC:
		scopes := c.Credentials.Scopes
		if len(scopes) == 0 {
			scopes = in.Scopes
		}
		res, err = b.clientCredentialsToken(ctx, in, ep, scopes)
	case authModeOAuth2:
		if c.Credentials.RefreshToken == "" {
			return nil, nil, errNotRefreshable
		}
		res, err = b.refreshToken(ctx, in, ep, c.Credentials.RefreshToken)
	case authModeApp:
		res, err = b.appInstallationToken(ctx, in, ep, c.ConnectionConfig)
	default:
		err = fmt.Errorf("auth_mode %s has no token grant", c.AuthMode)
	}
	return res, in, err
}

// applyToken stores a token response in c, and copies the members that in
// maps into the connection's config. A response without a refresh token
// keeps the old one (RFC 6749 section 6: the server may or may not issue a
// new one).
func applyToken(c *connectionEntry, in *integrationEntry, res *tokenResult, now time.Time) {
	tok := res.token
	cr := &c.Credentials
	cr.AccessToken = tok.AccessToken
	if tok.RefreshToken != "" {
		cr.RefreshToken = tok.RefreshToken
	}
	cr.TokenType = tok.Type()
	cr.ExpiresAt = tok.Expiry.UTC()
	if scopes := grantedScopes(res.raw); scopes != nil {
		cr.Scopes = scopes
	}
	c.RawTokenResponse = res.raw
	for key, member := range in.TokenResponseConfig {
		if v, ok := lookupMember(res.raw, member); ok {
			if c.ConnectionConfig == nil {
				c.ConnectionConfig = map[string]any{}
			}
			c.ConnectionConfig[key] = v
		}
	}
	c.LastRefreshedAt = now
	c.UpdatedAt = now
	// A token the provider just issued ends any failure streak.
	c.RefreshStatus, c.RefreshFailures, c.LastRefreshError = statusOK, 0, ""
}
