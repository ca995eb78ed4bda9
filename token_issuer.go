// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// issuer is the one owner of token issuing: every request for a token (a
// renewal, the first token of a connection the engine obtains tokens for,
// the exchange of an authorization code) and every revocation goes through
// its methods, each the whole operation: the integration with its
// provider's settings, the URLs filled from the connection's config, the
// provider client's request and, for a token, its application to the
// connection. No other code holds the provider client.
type issuer struct {
	client providerClient
	logger func() hclog.Logger
	// now is the clock of the tokens' expiry and refresh times.
	now func() time.Time

	// shortLived remembers the integrations already logged for issuing
	// tokens that live less than minTokenLifetime.
	shortLived sync.Map
}

// providerClient is what the issuer asks of internal/provider's client:
// the token grants and the revocation.
type providerClient interface {
	ClientCredentials(ctx context.Context, app provider.OAuthApp, ep provider.Endpoints, scopes []string) (*provider.Token, error)
	Refresh(ctx context.Context, app provider.OAuthApp, ep provider.Endpoints, refreshToken string) (*provider.Token, error)
	InstallationToken(ctx context.Context, app provider.App, ep provider.Endpoints, installationID string) (*provider.Token, error)
	ExchangeCode(ctx context.Context, app provider.OAuthApp, ep provider.Endpoints, redirectURL, code, verifier string) (*provider.Token, error)
	Revoke(ctx context.Context, app provider.OAuthApp, ep provider.Endpoints, token, hint string) error
}

// integration returns a stored integration with its provider's settings in
// the fields it leaves empty.
func (t *issuer) integration(ctx context.Context, s logical.Storage, name string) (*integrationEntry, error) {
	stored, err := getIntegration(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if stored == nil {
		return nil, fmt.Errorf("integration %q no longer exists", name)
	}
	return effectiveIntegration(ctx, s, stored)
}

// oauthApp is the OAuth client c's token requests use: the integration's,
// with c's own client id and secret in place of the integration's when c
// has a client of its own. Every grant and the revocation take their
// client from here, so a connection's tokens are fetched, renewed and
// revoked by the client they were issued to, and the provider client
// scrubs that client's secret from whatever the provider echoes. c is nil
// where no connection's client applies (authorization code flows).
func oauthApp(in *integrationEntry, c *connectionEntry) provider.OAuthApp {
	app := provider.OAuthApp{
		ClientID:       in.ClientID,
		ClientSecret:   in.ClientSecret,
		AuthStyle:      in.AuthStyle,
		Scopes:         in.Scopes,
		AuthParams:     in.AuthParams,
		TokenParams:    in.TokenParams,
		RefreshParams:  in.RefreshParams,
		ScopeSeparator: in.ScopeSeparator,
		JSONBody:       in.TokenRequestFormat == "json",
	}
	if c.hasOwnClient() {
		app.ClientID, app.ClientSecret = c.Credentials.ClientID, c.Credentials.ClientSecret
	}
	return app
}

// tokenRequestApp is the OAuth client of in as one connection's token
// requests use it: token_params and refresh_params with their
// ${connectionConfig.<key>} placeholders filled from cfg (schema defaults
// included).
func tokenRequestApp(in *integrationEntry, c *connectionEntry, cfg map[string]any) (provider.OAuthApp, error) {
	app := oauthApp(in, c)
	cfg = in.ConnectionConfigSchema.WithDefaults(cfg)
	var err error
	if app.TokenParams, err = provider.ExpandParams("token_params", in.TokenParams, cfg); err != nil {
		return provider.OAuthApp{}, err
	}
	if app.RefreshParams, err = provider.ExpandParams("refresh_params", in.RefreshParams, cfg); err != nil {
		return provider.OAuthApp{}, err
	}
	app.ParamSecrets = secretParamValues(in, cfg)
	return app, nil
}

// secretParamValues are the values of the config keys marked secret that
// in's parameters use: what a provider's error must not echo into a log.
func secretParamValues(in *integrationEntry, cfg map[string]any) []string {
	var out []string
	for _, k := range append(provider.ParamPlaceholders(in.TokenParams), provider.ParamPlaceholders(in.RefreshParams)...) {
		if f, ok := in.ConnectionConfigSchema[k]; ok && f.Secret && cfg[k] != nil {
			out = append(out, fmt.Sprint(cfg[k]))
		}
	}
	return out
}

// endpoints are an integration's URLs filled from one connection's config.
func endpoints(in *integrationEntry, connectionConfig map[string]any) (provider.Endpoints, error) {
	return provider.ResolveEndpoints(in.endpointTemplates(), in.ConnectionConfigSchema.WithDefaults(connectionConfig))
}

// renew asks the provider for c's next token by the grant of its auth mode
// and applies the answer to c. failure is the provider's refusal (or the
// config's), classified, with c unchanged: the caller records it. err is
// an error before any provider call (storage), which is no failure of the
// connection's.
func (t *issuer) renew(ctx context.Context, s logical.Storage, c *connectionEntry) (failure, err error) {
	in, err := t.integration(ctx, s, c.Integration)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res, failure := t.obtain(ctx, in, c)
	metrics.MeasureSinceWithLabels([]string{"connect", "refresh", "latency"}, start, []metrics.Label{{Name: "integration", Value: c.Integration}})
	if failure != nil {
		return classifyProviderError(failure), nil
	}
	t.apply(c, in, res, t.now())
	return nil, nil
}

// issueFirst gets c, which is being written, a new token by the grant of
// its auth mode; in is c's integration as the write read it. On failure c
// is unchanged and the caller stores nothing.
func (t *issuer) issueFirst(ctx context.Context, in *integrationEntry, c *connectionEntry) error {
	res, err := t.obtain(context.WithoutCancel(ctx), in, c)
	if err != nil {
		err = classifyProviderError(err)
		if errors.Is(err, errBadConnectionConfig) {
			return err
		}
		return &engineError{kind: errProviderRefused, cause: err,
			msg: fmt.Sprintf("could not obtain a token for connection %q, nothing was stored: %s", c.ConnectionID, err)}
	}
	t.apply(c, in, res, t.now())
	c.issuedBy = in
	return nil
}

// classifyProviderError gives a token request's failure its engine kind.
func classifyProviderError(err error) error {
	var pe *provider.Error
	var ce *provider.ConfigError
	var ee *provider.EgressError
	switch {
	case errors.As(err, &ce), errors.As(err, &ee):
		return &engineError{errBadConnectionConfig, err.Error(), err}
	case errors.Is(err, errNotRefreshable):
		return err
	case errors.As(err, &pe) && pe.Unreachable():
		return &engineError{errProviderUnreachable, err.Error(), err}
	case errors.As(err, &pe):
		return &engineError{errProviderRefused, err.Error(), err}
	}
	return err
}

// exchangeCode exchanges the authorization code of the pending
// authorization st for tokens, at the token URL filled from connCfg (the
// config the authorization resolved: see pendingAuthorization.connectionConfig)
// and with the redirect URL and PKCE verifier authorize sent. A config that
// cannot fill the URLs or token parameters is a *userError, and the code is
// then not spent; any other error is the provider's. The caller applies the
// tokens (apply) to the connection under its lock.
func (t *issuer) exchangeCode(ctx context.Context, in *integrationEntry, st *pendingAuthorization, connCfg map[string]any, code string) (*provider.Token, error) {
	ep, err := endpoints(in, connCfg)
	if err != nil {
		return nil, badInput(err)
	}
	app, err := tokenRequestApp(in, nil, connCfg)
	if err != nil {
		return nil, badInput(err)
	}
	return t.client.ExchangeCode(ctx, app, ep, st.RedirectURL, code, st.Verifier)
}

// authCodeURL is the provider's authorization URL for the pending
// authorization st with state, its URLs filled from connCfg. The code
// exchange fills the token parameters from this config too: one that
// cannot fill them, or the URLs, is a *userError now, before the customer
// consents.
func (t *issuer) authCodeURL(in *integrationEntry, st *pendingAuthorization, connCfg map[string]any, state string) (string, error) {
	ep, err := endpoints(in, connCfg)
	if err != nil {
		return "", badInput(err)
	}
	if _, err := tokenRequestApp(in, nil, connCfg); err != nil {
		return "", badInput(err)
	}
	return provider.AuthCodeURL(oauthApp(in, nil), ep, st.RedirectURL, state, st.Scopes, st.Verifier), nil
}

// revoker is how a deletion revokes the tokens of a connection of the
// integration name (see revoke); nil when the integration cannot be read or
// its connections hold no OAuth tokens.
func (t *issuer) revoker(ctx context.Context, s logical.Storage, name string) func(*connectionEntry) []string {
	in, err := t.integration(ctx, s, name)
	if err != nil || !in.AuthMode.IsOAuth() {
		return nil
	}
	return func(c *connectionEntry) []string {
		return t.revoke(context.WithoutCancel(ctx), in, c)
	}
}

// revokeDropped revokes the tokens issued for a write of c that nothing
// stored (the store's revokeUnstored), with the client they were issued to
// (c's own, where it has one). Failures are logged; the write fails anyway.
func (t *issuer) revokeDropped(ctx context.Context, in *integrationEntry, c *connectionEntry) {
	for _, w := range t.revoke(context.WithoutCancel(ctx), in, c) {
		t.logger().Warn("revoking the token of a write that stored nothing", "integration", in.Name, "connection_id", c.ConnectionID, "warning", w)
	}
}

// obtain asks the provider for a new token by the grant c's auth mode uses.
func (t *issuer) obtain(ctx context.Context, in *integrationEntry, c *connectionEntry) (*provider.Token, error) {
	ep, err := endpoints(in, c.ConnectionConfig)
	if err != nil {
		return nil, err
	}
	switch c.AuthMode {
	case catalog.OAuth2CC:
		app, err := tokenRequestApp(in, c, c.ConnectionConfig)
		if err != nil {
			return nil, err
		}
		var scopes []string
		if len(c.Credentials.Scopes) > 0 {
			scopes = c.Credentials.Scopes
		}
		return t.client.ClientCredentials(ctx, app, ep, scopes)
	case catalog.OAuth2:
		if c.Credentials.RefreshToken == "" {
			return nil, errNotRefreshable
		}
		app, err := tokenRequestApp(in, c, c.ConnectionConfig)
		if err != nil {
			return nil, err
		}
		return t.client.Refresh(ctx, app, ep, c.Credentials.RefreshToken)
	case catalog.App:
		if c.InstallationID == "" {
			return nil, &provider.ConfigError{Msg: "installation_id is required for an APP connection: set it on the connection"}
		}
		return t.client.InstallationToken(ctx, provider.App{AppID: in.AppID, PrivateKey: in.PrivateKey}, ep, c.InstallationID)
	}
	return nil, fmt.Errorf("auth_mode %s has no token grant", c.AuthMode)
}

// tokenGrant is what a token the engine obtains itself is issued for, as
// far as a connection decides it: the endpoint asked (the token URL of an
// OAUTH2_CC connection, the API of an APP one, both filled from the
// connection's config), the token parameters filled from that config (an
// audience), the APP installation and the OAuth client. The client's
// secret is part of it too, though a token outlives a rotation of its
// client's secret: a write that changes the secret proves the new one in
// the same request rather than at the next refresh. The scopes and the
// rest of the parameters come from the integration, which no connection
// write changes.
type tokenGrant struct {
	endpoint       string
	tokenParams    string // the filled-in token_params, form-encoded
	installationID string
	clientID       string
	clientSecret   string
}

// grantOf is the grant c's next token would be issued for; the zero grant
// for modes whose tokens the engine does not obtain by itself.
func grantOf(in *integrationEntry, c *connectionEntry) (tokenGrant, error) {
	ep, err := endpoints(in, c.ConnectionConfig)
	if err != nil {
		return tokenGrant{}, err
	}
	switch c.AuthMode {
	case catalog.OAuth2CC:
		app, err := tokenRequestApp(in, c, c.ConnectionConfig)
		if err != nil {
			return tokenGrant{}, err
		}
		return tokenGrant{endpoint: ep.Token, tokenParams: formEncoded(app.TokenParams), clientID: app.ClientID, clientSecret: app.ClientSecret}, nil
	case catalog.App:
		return tokenGrant{endpoint: ep.APIBase, installationID: c.InstallationID}, nil
	}
	return tokenGrant{}, nil
}

// formEncoded is params as a form body: one string, in key order.
func formEncoded(params map[string]string) string {
	form := url.Values{}
	for k, v := range params {
		form.Set(k, v)
	}
	return form.Encode()
}

// grantMoved reports whether the token after would hold was issued for
// something else than after names now: another installation, another
// token endpoint, another client (or client secret). Such a token must not
// be served as after's. A config that resolves neither before nor after is
// no move, so that an unrelated edit of such a connection is not refused;
// one that resolves on one side only is.
func grantMoved(in *integrationEntry, before, after *connectionEntry) bool {
	if before == nil || !after.AuthMode.IssuesOwnTokens() {
		return false
	}
	// The client and the installation are the connection's own fields:
	// a change of either moves the grant whether or not the config still
	// resolves (an operator's change since may have broken it).
	if !sameClient(before, after) || before.InstallationID != after.InstallationID {
		return true
	}
	old, errOld := grantOf(in, before)
	cur, errCur := grantOf(in, after)
	if errOld != nil || errCur != nil {
		return (errOld == nil) != (errCur == nil)
	}
	return old != cur
}

// apply stores a token response in c and copies the members that in maps
// into the connection's config, within the size caps of both (what did not
// fit is noted in c.RawTokenResponseNote). A response without a refresh
// token keeps the old one (RFC 6749 section 6: the server may or may not
// issue a new one). c is marked as holding provider-issued credentials,
// which the store never drops.
func (t *issuer) apply(c *connectionEntry, in *integrationEntry, res *provider.Token, now time.Time) {
	cr := &c.Credentials
	cr.AccessToken = res.AccessToken
	if res.RefreshToken != "" {
		cr.RefreshToken = res.RefreshToken
	}
	cr.TokenType = res.Type()
	cr.ExpiresAt = t.expiry(in.Name, res, now)
	if scopes := provider.GrantedScopes(res.Raw); scopes != nil {
		cr.Scopes = scopes
	}
	var notes []string
	c.RawTokenResponse, notes = trimRawTokenResponse(res.Raw)
	notes = append(notes, copyMappedMembers(c, in, res.Raw)...)
	c.RawTokenResponseNote = strings.Join(notes, "; ")
	c.LastRefreshedAt = now
	c.UpdatedAt = now
	// A token the provider just issued ends any failure streak.
	c.RefreshStatus, c.RefreshFailures, c.LastRefreshError = refreshOK, 0, ""
	c.issued = true
}

// rawMembersDroppedLast are the members of a token response that a trim
// keeps longest: those RFC 6749 defines, and those the engine reads.
var rawMembersDroppedLast = append([]string{"access_token", "token_type", "expires_in", "refresh_token", "scope"}, refreshExpiryMembers...)

// copyMappedMembers copies the token response members that the integration maps
// (token_response_config) into c's config, and returns a note for each one
// left out because the config would go over the cap of a config write: an
// entry over the caps is one storage may refuse on every save.
//
// A value that fails its connection_config_schema field, or would point
// one of the integration's URLs outside its allowed hosts, is not copied
// either: the provider's answer is kept (its
// tokens already replaced the old ones) and the config keeps its previous
// value.
func copyMappedMembers(c *connectionEntry, in *integrationEntry, raw map[string]any) []string {
	mapping := in.TokenResponseConfig
	var notes []string
	for _, key := range slices.Sorted(maps.Keys(mapping)) {
		v, ok := provider.LookupMember(raw, mapping[key])
		if !ok {
			continue
		}
		if c.ConnectionConfig == nil {
			c.ConnectionConfig = map[string]any{}
		}
		if !fitsDocument(c.ConnectionConfig, key, v) {
			notes = append(notes, fmt.Sprintf("connection_config.%s was not copied from member %s: connection_config would be over %d bytes",
				key, printable(mapping[key]), maxDocumentBytes))
			continue
		}
		if f, inSchema := in.ConnectionConfigSchema[key]; inSchema {
			if err := f.Check(v); err != nil {
				notes = append(notes, fmt.Sprintf("connection_config.%s was not copied from member %s: it %s", key, printable(mapping[key]), err))
				continue
			}
		}
		candidate := maps.Clone(c.ConnectionConfig)
		candidate[key] = v
		if err := in.checkConfigHosts(candidate); err != nil {
			notes = append(notes, fmt.Sprintf("connection_config.%s was not copied from member %s: it points a URL outside the integration's allowed hosts",
				key, printable(mapping[key])))
			continue
		}
		c.ConnectionConfig[key] = v
	}
	return notes
}

// maxNotedMembers bounds how many dropped member names a note lists.
const maxNotedMembers = 8

// trimRawTokenResponse returns what is kept of a provider's raw token
// response: all of it when its JSON fits maxRawTokenBytes, else all but its
// largest members, with a note naming what was dropped; the members of
// RFC 6749 and those the engine reads (rawMembersDroppedLast) go last. A
// token answer is never refused for its size (the provider may have spent
// a refresh token to send it, and the tokens, expiry and scopes are kept
// in the credentials), but an entry with a raw response near 1 MiB is one
// that integrated storage refuses on every save, losing each new refresh
// token.
func trimRawTokenResponse(raw map[string]any) (map[string]any, []string) {
	sizes := make(map[string]int, len(raw))
	total := 2 // the braces
	for k, v := range raw {
		sizes[k] = memberSize(k, v)
		total += sizes[k]
	}
	if total <= maxRawTokenBytes {
		return raw, nil
	}
	largestFirst := make([]string, 0, len(raw))
	for k := range raw {
		largestFirst = append(largestFirst, k)
	}
	slices.SortFunc(largestFirst, func(a, b string) int {
		usedA, usedB := slices.Contains(rawMembersDroppedLast, a), slices.Contains(rawMembersDroppedLast, b)
		return cmp.Or(compareBool(usedA, usedB), cmp.Compare(sizes[b], sizes[a]), cmp.Compare(a, b))
	})
	kept := cloneMap(raw)
	var dropped []string
	for _, k := range largestFirst {
		if total <= maxRawTokenBytes {
			break
		}
		delete(kept, k)
		total -= sizes[k]
		dropped = append(dropped, k)
	}
	return kept, []string{droppedMembersNote(dropped, sizes)}
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

// memberSize bounds the bytes one member takes in its object's JSON: key,
// colon, value and comma. A value that does not encode counts as too big
// to keep.
func memberSize(key string, v any) int {
	k, errK := json.Marshal(key)
	b, errV := json.Marshal(v)
	if errK != nil || errV != nil {
		return maxRawTokenBytes + 1
	}
	return len(k) + len(b) + 2
}

// droppedMembersNote says which members of a raw token response were not
// kept, by name and size only: values may be secrets.
func droppedMembersNote(dropped []string, sizes map[string]int) string {
	named := make([]string, 0, min(len(dropped), maxNotedMembers))
	for _, k := range dropped[:min(len(dropped), maxNotedMembers)] {
		named = append(named, fmt.Sprintf("%s (%d bytes)", printable(k), sizes[k]))
	}
	if more := len(dropped) - len(named); more > 0 {
		named = append(named, fmt.Sprintf("and %d more", more))
	}
	return fmt.Sprintf("raw_token_response keeps at most %d bytes; members dropped: %s", maxRawTokenBytes, strings.Join(named, ", "))
}

// fitsDocument reports whether doc with key set to v stays within
// maxDocumentBytes, the cap of every write of a connection's config.
func fitsDocument(doc map[string]any, key string, v any) bool {
	next := cloneMap(doc)
	next[key] = v
	return checkDocumentSize("connection_config", next) == nil
}

// expiry is when a new token expires: zero for one without expires_in, and
// at least minTokenLifetime from now, since a provider that says 0 or a
// negative lifetime would otherwise make every read refresh.
func (t *issuer) expiry(integration string, res *provider.Token, now time.Time) time.Time {
	if res.Expiry.IsZero() {
		return time.Time{}
	}
	if floor := now.Add(minTokenLifetime); res.Expiry.Before(floor) {
		if _, logged := t.shortLived.LoadOrStore(integration, true); !logged {
			t.logger().Warn("provider issued a token that expires in under a minute; treating it as valid for a minute",
				"integration", integration, "expires_in", res.Expiry.Sub(now).Round(time.Second).String())
		}
		return floor.UTC()
	}
	return res.Expiry.UTC()
}

// revoke revokes c's refresh and access tokens at the integration's
// revocation endpoint (RFC 7009), refresh token first: with most providers
// that also invalidates the access tokens issued from it. Failures are
// returned as warnings; a deletion goes ahead regardless, since keeping a
// connection the customer wants gone is worse than a token that lives out
// its expiry.
func (t *issuer) revoke(ctx context.Context, in *integrationEntry, c *connectionEntry) []string {
	if in.RevocationURL == "" {
		return nil
	}
	ep, err := endpoints(in, c.ConnectionConfig)
	if err != nil {
		return []string{fmt.Sprintf("tokens not revoked: %s", err)}
	}
	var warnings []string
	for _, tok := range []struct{ value, hint string }{
		{c.Credentials.RefreshToken, "refresh_token"},
		{c.Credentials.AccessToken, "access_token"},
	} {
		if tok.value == "" {
			continue
		}
		if err := t.client.Revoke(ctx, oauthApp(in, c), ep, tok.value, tok.hint); err != nil {
			warnings = append(warnings, fmt.Sprintf("revoking the %s failed, the connection was deleted anyway: %s", tok.hint, err))
		}
	}
	return warnings
}
