// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// authorizer is the flow of the authorization code grant hosted by Vault:
// authorize records a pending authorization and returns the provider's
// URL; complete exchanges the code the provider's redirect brings (through
// the issuer, the only way to the provider) and stores the connection.
// The path handlers parse and check fields and answer; the sequence is
// here.
type authorizer struct {
	store  *connectionStore
	issuer *issuer
	// putState stores a pending authorization under the hash of its state.
	putState func(ctx context.Context, s logical.Storage, stateHash string, st *pendingAuthorization) error
	// takeState spends a pending authorization or completion; peekState
	// reads one without spending it; takeAuthorization spends a pending
	// authorization, never a completion (the callback's).
	takeState         func(ctx context.Context, s logical.Storage, stateHash string) (*pendingAuthorization, error)
	peekState         func(ctx context.Context, s logical.Storage, stateHash string) (*pendingAuthorization, error)
	takeAuthorization func(ctx context.Context, s logical.Storage, stateHash string) (*pendingAuthorization, error)
	// sessions are the connect sessions: an authorization one started is
	// completed under its lock, checked and marked connected.
	sessions *sessionStore
	// config reads the mount's config (the callback's URL, state_ttl).
	config func(ctx context.Context, s logical.Storage) (*configEntry, error)
	// events records connection.authorization_failed, which no saved
	// change carries (the store records the others).
	events eventRecorder
	now    func() time.Time
	logger func() hclog.Logger
}

// completionError is why an authorization could not be completed: fault
// says whose (the path answers with its status), msg is what the
// customer's browser is shown, never a secret.
type completionError struct {
	fault completionFault
	msg   string
}

// completionFault is whose fault a failed completion is.
type completionFault int

const (
	// faultRequest: the authorization or the provider's redirect cannot
	// complete as it is; the customer starts again.
	faultRequest completionFault = iota
	// faultGone: the connection or its integration was deleted meanwhile.
	faultGone
	// faultProvider: the provider issued no tokens.
	faultProvider
	// faultVault: Vault could not read or store what it needed.
	faultVault
	// faultBinding: the browser binding does not match.
	faultBinding
	// faultExists: an authorization that may only create its connection
	// found it created meanwhile, or its connect session has connected
	// something else.
	faultExists
	// faultUnavailable: this Vault node cannot store connections.
	faultUnavailable
)

// connectionConfig is the config an authorization fills the provider's
// URLs and token parameters with, and the one its connection is stored
// with: the one authorize was given, else the connection's as it is (c,
// nil when there is none yet), with the given keys set over it when st
// merges. A config given empty is an empty object, though a stored state
// drops it.
func (st *pendingAuthorization) connectionConfig(c *connectionEntry) map[string]any {
	switch {
	case st.MergeConnectionConfig && c != nil:
		return mergedConnectionConfig(c.ConnectionConfig, st.ConnectionConfig)
	case st.MergeConnectionConfig:
		return mergedConnectionConfig(nil, st.ConnectionConfig)
	case st.ReplaceConnectionConfig && st.ConnectionConfig == nil:
		return map[string]any{}
	case st.ReplaceConnectionConfig, c == nil:
		return st.ConnectionConfig
	}
	return c.ConnectionConfig
}

// authorize checks that the config st resolves (see connectionConfig) fills
// in's URLs and token parameters, records st as pending and returns the
// URL to send the customer to. existing is the connection as it is, nil if
// none. A config that does not resolve is a *userError, and nothing is
// recorded.
func (a *authorizer) authorize(ctx context.Context, s logical.Storage, in *integrationEntry, existing *connectionEntry, st *pendingAuthorization) (string, error) {
	connCfg := st.connectionConfig(existing)
	if err := in.checkConnectionConfig("connection_config", connCfg); err != nil {
		return "", badInput(err)
	}
	state, stateHash, err := newState()
	if err != nil {
		return "", err
	}
	if !in.DisablePKCE && in.UsesPKCE() {
		st.Verifier = oauth2.GenerateVerifier()
	}
	authURL, err := a.issuer.authCodeURL(in, st, connCfg, state)
	if err != nil {
		return "", err
	}
	if err := a.putState(ctx, s, stateHash, st); err != nil {
		return "", err
	}
	return authURL, nil
}

// complete finishes the pending authorization st, already spent, with the
// code the provider's redirect brought (query is the whole redirect's):
// it exchanges the code and stores the connection. On failure nothing is
// written.
func (a *authorizer) complete(ctx context.Context, s logical.Storage, st *pendingAuthorization, code string, query map[string]any) *completionError {
	in, res, issued, fail := a.exchange(ctx, s, st, code, query)
	if fail != nil {
		return fail
	}
	return a.save(ctx, s, in, st, res, issued)
}

// callbackInput is the provider's redirect to the callback as the browser
// brought it: its state and code or error, the whole query (scrubbed from
// the event of a refusal, copied into config by callback_config), and the
// request's headers (the connect page's binding cookie).
type callbackInput struct {
	state, code                 string
	errorCode, errorDescription string
	query                       map[string]any
	headers                     map[string][]string
	// writable says whether this Vault node may store connections.
	writable bool
}

// callbackOutcome is what a successful callback did: st's authorization
// was stored (sess is the connect session that started it, if any), or
// its tokens are held for the application under completion.
type callbackOutcome struct {
	st         *pendingAuthorization
	sess       *sessionEntry
	completion string
}

// completeCallback spends the pending authorization the redirect's state
// names, exchanges the code and stores the connection, or, for an
// authorization the application completes, keeps its tokens for it. On
// failure nothing is written but the spent state. For an authorization a
// connect session started it requires the page's binding cookie, checks
// the session under its lock and marks it connected.
func (a *authorizer) completeCallback(ctx context.Context, s logical.Storage, cb callbackInput) (*callbackOutcome, *completionError) {
	st, err := a.takeAuthorization(ctx, s, hashState(cb.state))
	if err != nil {
		a.logger().Error("reading authorization state", "error", err)
		return nil, &completionError{faultVault, "Vault could not read the authorization state."}
	}
	if st == nil || st.Held != nil {
		return nil, &completionError{faultRequest, "This authorization is unknown or was already used. Start the authorization again."}
	}
	if !a.now().Before(st.ExpiresAt) {
		return nil, &completionError{faultRequest, "This authorization has expired. Start the authorization again."}
	}
	if st.SessionHash != "" {
		if fail := a.checkBindingCookie(ctx, s, st, cb.headers); fail != nil {
			return nil, fail
		}
		// The session's lock is held from its check to its mark, across
		// the exchange, as the page's post holds it from its check to its
		// mark: a form posted meanwhile waits, then finds the session
		// connected, so that the session connects once. It is taken before
		// the store's integration and connection locks, as the post takes
		// it, and after the take has released the state lock.
		defer a.sessions.Lock(st.SessionHash)()
	}
	if fail := a.checkAuthorizingSession(ctx, s, st); fail != nil {
		return nil, fail
	}
	if cb.errorCode != "" {
		a.failed(ctx, s, st, nil, cb.errorCode, cb.errorDescription, cb.query)
		return nil, &completionError{faultRequest, providerRefusalMessage(cb.errorCode)}
	}
	if cb.code == "" {
		return nil, &completionError{faultRequest, "The provider sent no authorization code."}
	}
	if !cb.writable {
		return nil, &completionError{faultUnavailable, "This Vault node cannot store connections. Start the authorization again."}
	}
	if st.ApplicationCompletes && st.SessionHash == "" {
		return a.holdForApplication(ctx, s, st, cb.code, cb.query)
	}
	if fail := a.complete(ctx, s, st, cb.code, cb.query); fail != nil {
		return nil, fail
	}
	out := &callbackOutcome{st: st}
	if st.SessionHash != "" {
		out.sess = a.markPageAuthorization(ctx, s, st)
	}
	return out, nil
}

// holdForApplication exchanges the code of an authorization the
// application completes and keeps its tokens for state_ttl.
func (a *authorizer) holdForApplication(ctx context.Context, s logical.Storage, st *pendingAuthorization, code string, query map[string]any) (*callbackOutcome, *completionError) {
	cfg, err := a.config(ctx, s)
	if err != nil {
		return nil, &completionError{faultVault, "Vault could not read its configuration."}
	}
	completion, fail := a.hold(ctx, s, st, code, query, cfg.StateTTL)
	if fail != nil {
		return nil, fail
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

// checkAuthorizingSession refuses the callback of an authorization started
// by a connect session that has since been revoked, has expired or has
// connected something else: the session's link no longer allows it.
func (a *authorizer) checkAuthorizingSession(ctx context.Context, s logical.Storage, st *pendingAuthorization) *completionError {
	if st.SessionHash == "" {
		return nil
	}
	sess, err := a.sessions.ByHash(ctx, s, st.SessionHash)
	switch {
	case err != nil:
		a.logger().Error("reading the connect session of an authorization", "error", err)
		return &completionError{faultVault, "Vault could not read the connect session."}
	case sess == nil:
		return &completionError{faultRequest, "The link this sign-in started from was revoked. Nothing was stored. Ask the application for a new link."}
	case !a.now().Before(sess.ExpiresAt):
		return &completionError{faultRequest, "The link this sign-in started from has expired. Nothing was stored. Ask the application for a new link."}
	case sess.ConnectedIntegration != "":
		return &completionError{faultExists, "The link this sign-in started from has connected " + sess.ConnectedIntegration + " already. Nothing was stored."}
	}
	return nil
}

// markPageAuthorization marks the session of a completed authorization
// connected, under the session's lock (completeCallback holds it), and
// returns the session, nil when it could not be read.
func (a *authorizer) markPageAuthorization(ctx context.Context, s logical.Storage, st *pendingAuthorization) *sessionEntry {
	sess, err := a.sessions.ByHash(ctx, s, st.SessionHash)
	if err == nil && sess != nil {
		err = a.sessions.MarkConnected(ctx, s, st.SessionHash, sess, st.Integration)
	}
	if err != nil {
		// The connection is stored; the session stays usable until it
		// expires, which is no worse than an unspent link.
		a.logger().Warn("marking a connect session used", "error", err)
	}
	return sess
}

// exchange reads what the exchange and the save need, checks the values
// the redirect carries (query) and exchanges the code: the integration,
// the provider's tokens and the redirect's values for the connection's
// config.
func (a *authorizer) exchange(ctx context.Context, s logical.Storage, st *pendingAuthorization, code string, query map[string]any) (*integrationEntry, *provider.Token, issuance, *completionError) {
	// Everything the exchange and the save need is read before the code is
	// spent at the provider.
	in, connCfg, fail := a.resolve(ctx, s, st)
	if fail != nil {
		return nil, nil, issuance{}, fail
	}
	if iss := queryValue(query, "iss"); iss != "" && in.Issuer != "" && iss != in.Issuer {
		// RFC 9207: the redirect names another authorization server than
		// the one this authorization went to (a mix-up); the code is not
		// sent anywhere.
		a.logger().Warn("callback refused: its iss is not the integration's issuer", "integration", st.Integration, "connection_id", st.ConnectionID)
		return nil, nil, issuance{}, &completionError{faultRequest, "The provider's redirect names another issuer than this integration's. Nothing was stored. Start the authorization again."}
	}
	fromCallback := callbackValues(in.CallbackConfig, query)
	if err := checkCallbackConfig(in, connCfg, fromCallback); err != nil {
		return nil, nil, issuance{}, &completionError{faultRequest, fmt.Sprintf(
			"The provider's redirect carries connection config this integration does not accept: %s. Nothing was stored. Start the authorization again.", err)}
	}
	res, err := a.issuer.exchangeCode(ctx, in, st, connCfg, code)
	var bad *userError
	if errors.As(err, &bad) {
		return nil, nil, issuance{}, &completionError{faultRequest, bad.Error()}
	}
	if err != nil {
		a.failed(ctx, s, st, err, "", "", query)
		return nil, nil, issuance{}, &completionError{faultProvider, exchangeFailureMessage(err)}
	}
	return in, res, issuance{fromCallback: fromCallback, config: issuedConfig(connCfg, fromCallback)}, nil
}

// issuance is what a code exchange's tokens were issued for: the values
// the provider's redirect carried for the connection's config, and the
// whole config the exchange used (the state's, else the connection's, with
// those values over it), under which they are revoked if nothing stores
// them.
type issuance struct {
	fromCallback map[string]any
	config       map[string]any
}

// issuedConfig is connCfg with the redirect's values over it.
func issuedConfig(connCfg, fromCallback map[string]any) map[string]any {
	cfg := maps.Clone(connCfg)
	if cfg == nil {
		cfg = map[string]any{}
	}
	maps.Copy(cfg, fromCallback)
	return cfg
}

// tokenErrorCodes are the error codes RFC 6749 (section 5.2) registers
// for the token endpoint: the only words of a failed exchange's answer a
// page served from Vault's address repeats.
var tokenErrorCodes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true,
	"unauthorized_client": true, "unsupported_grant_type": true, "invalid_scope": true,
}

// exchangeFailureMessage is the page's fixed message for a code exchange
// that failed with err: the provider's error code when RFC 6749 registers
// it for the token endpoint, never its description or any other text the
// provider chose (those go to the scrubbed log and the
// authorization_failed event).
func exchangeFailureMessage(err error) string {
	msg := "The provider did not issue tokens. Nothing was stored. Start the authorization again."
	var pe *provider.Error
	if errors.As(err, &pe) && tokenErrorCodes[pe.Code] {
		msg += " (" + pe.Code + ")"
	}
	return msg
}

// save stores the tokens res of st's authorization in its connection
// (see storeConnection) and says why it could not.
func (a *authorizer) save(ctx context.Context, s logical.Storage, in *integrationEntry, st *pendingAuthorization, res *provider.Token, issued issuance) *completionError {
	err := a.storeConnection(ctx, s, in, st, res, issued.fromCallback)
	if eventOwed(err) {
		// Stored; the periodic hook records the event.
		a.logger().Warn("an authorized connection's event is owed", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err)
		err = nil
	}
	if err == nil {
		return nil
	}
	a.logger().Error("storing authorized connection", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err)
	var bad *userError
	switch {
	case errors.Is(err, errConnectionExists):
		a.revokeUnstored(ctx, in, issued.config, res)
		return &completionError{faultExists, "This account is connected already; the connection was created while you signed in and was left as it is. Nothing was stored. Ask the application for a reconnect link to replace its credentials."}
	case errors.Is(err, errIntegrationGone) || errors.Is(err, errConnectionNotFound):
		a.revokeUnstored(ctx, in, issued.config, res)
		return &completionError{faultGone, "The connection or its integration was deleted during the authorization."}
	case errors.As(err, &bad):
		return &completionError{faultRequest, "The provider's redirect carried a connection config value Vault may not store: " + bad.Error()}
	}
	return &completionError{faultVault, "Vault could not store the connection."}
}

// errConnectionExists: an authorization that may only create its
// connection (a connect session without reconnect) found it created
// meanwhile.
var errConnectionExists = errors.New("the connection exists and this authorization may only create it")

// hold finishes the callback of an authorization the application
// completes: the code is exchanged at once (a slow application cannot let
// it expire), and the tokens are kept, seal-wrapped, in a pending
// completion that expires ttl from now. It returns the one-time completion
// value the browser carries back to the application.
func (a *authorizer) hold(ctx context.Context, s logical.Storage, st *pendingAuthorization, code string, query map[string]any, ttl time.Duration) (string, *completionError) {
	in, res, issued, fail := a.exchange(ctx, s, st, code, query)
	if fail != nil {
		return "", fail
	}
	completion, fail := a.keepHeld(ctx, s, st, res, issued, ttl)
	if fail != nil {
		// Not kept: revoked now, at the provider that issued them (a new
		// integration of the same name has another revocation_url), and
		// outside the integration's lock.
		a.revokeUnstored(ctx, in, issued.config, res)
		return "", fail
	}
	return completion, nil
}

// keepHeld keeps the tokens res for the application's completion of st
// while st's integration is the one that issued them, under its lock for
// reading: a delete of the integration (which revokes the completions it
// finds) cannot run between the check and the write, and leave tokens kept
// for an integration that is gone.
func (a *authorizer) keepHeld(ctx context.Context, s logical.Storage, st *pendingAuthorization, res *provider.Token, issued issuance, ttl time.Duration) (string, *completionError) {
	defer a.store.RLockIntegration(st.Integration)()
	if fail := a.checkIssuerStands(ctx, s, st); fail != nil {
		return "", fail
	}
	held := *st
	held.Verifier = ""
	held.ExpiresAt = a.now().Add(ttl)
	held.Held = &heldTokens{
		AccessToken: res.AccessToken, RefreshToken: res.RefreshToken, TokenType: res.TokenType,
		Expiry: res.Expiry, Raw: res.Raw, FromCallback: issued.fromCallback, IssuedConfig: issued.config,
	}
	completion, _, err := newState()
	if err == nil {
		err = a.putState(ctx, s, hashCompletion(completion), &held)
	}
	if err != nil {
		// Revoked by hold at the integration that issued them, in hand:
		// storage that refused them may not read it again.
		a.logger().Error("keeping the tokens of an authorization for its completion", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err)
		return "", &completionError{faultVault, "Vault could not keep the authorization for the application to complete. Start the authorization again."}
	}
	return completion, nil
}

// checkIssuerStands says whether st's integration is still the one its
// code was exchanged with (not deleted, nor re-created, since authorize):
// tokens are kept only while the integration that issued them stands.
func (a *authorizer) checkIssuerStands(ctx context.Context, s logical.Storage, st *pendingAuthorization) *completionError {
	stored, err := getIntegration(ctx, s, st.Integration)
	if err != nil {
		a.logger().Error("reading integration", "integration", st.Integration, "error", err)
		return &completionError{faultVault, "Vault could not read the integration."}
	}
	if stored == nil || !stored.CreatedAt.Equal(st.IntegrationCreatedAt) {
		return &completionError{faultGone, "The connection or its integration was deleted during the authorization."}
	}
	return nil
}

// completeHeld is the application's completion of the authorization of
// connection id of integration: the pending completion the value
// completion names, for the browser binding authorize was given. A
// completion of another connection is refused and left as it is; one that
// is found is spent, whatever comes next (a wrong binding cannot be
// guessed again), and its tokens are revoked unless they are stored.
func (a *authorizer) completeHeld(ctx context.Context, s logical.Storage, integration, id, completion, binding string) *completionError {
	hash := hashCompletion(completion)
	peek, err := a.peekState(ctx, s, hash)
	if err != nil {
		return &completionError{faultVault, "Vault could not read the completion."}
	}
	if peek == nil || peek.Held == nil {
		return &completionError{faultRequest, "completion is unknown, was used already or has expired; start the authorization again"}
	}
	if peek.Integration != integration || peek.ConnectionID != id {
		return &completionError{faultRequest, "completion belongs to another connection; nothing was stored"}
	}
	st, err := a.takeState(ctx, s, hash)
	if err != nil {
		return &completionError{faultVault, "Vault could not read the completion."}
	}
	if st == nil || st.Held == nil {
		return &completionError{faultRequest, "completion is unknown, was used already or has expired; start the authorization again"}
	}
	fail := a.completeTaken(ctx, s, st, binding)
	if fail != nil {
		a.revokeHeld(ctx, s, st)
	}
	return fail
}

// completeTaken checks a spent completion and stores its connection.
func (a *authorizer) completeTaken(ctx context.Context, s logical.Storage, st *pendingAuthorization, binding string) *completionError {
	if !a.now().Before(st.ExpiresAt) {
		return &completionError{faultRequest, "completion has expired; start the authorization again"}
	}
	if !bindingMatches(st.BrowserBindingHash, binding) {
		a.logger().Warn("a completion was refused: browser_binding does not match authorize's; the completion is spent and its tokens revoked", "integration", st.Integration, "connection_id", st.ConnectionID)
		return &completionError{faultBinding, "browser_binding is not the one authorize was given: the browser that came back is not the one that started the authorization. The completion is spent; nothing was stored"}
	}
	stored, err := getIntegration(ctx, s, st.Integration)
	if err != nil {
		return &completionError{faultVault, "Vault could not read the integration."}
	}
	if stored == nil || !stored.CreatedAt.Equal(st.IntegrationCreatedAt) {
		return &completionError{faultGone, fmt.Sprintf("integration %q was deleted since the authorization started", st.Integration)}
	}
	in, err := effectiveIntegration(ctx, s, stored)
	if err != nil {
		return &completionError{faultVault, "Vault could not resolve the integration's provider."}
	}
	return a.save(ctx, s, in, st, st.Held.token(), st.Held.issuance(st))
}

// issuance is what the held tokens were issued for. Held tokens kept
// before their config was (none outside this version's tests) fall back to
// the state's config with the redirect's values over it.
func (h *heldTokens) issuance(st *pendingAuthorization) issuance {
	cfg := h.IssuedConfig
	if cfg == nil {
		cfg = issuedConfig(st.connectionConfig(nil), h.FromCallback)
	}
	return issuance{fromCallback: h.FromCallback, config: cfg}
}

// token is the provider's answer the held tokens came from.
func (h *heldTokens) token() *provider.Token {
	return &provider.Token{Token: &oauth2.Token{
		AccessToken: h.AccessToken, RefreshToken: h.RefreshToken, TokenType: h.TokenType, Expiry: h.Expiry,
	}, Raw: h.Raw}
}

// revokeHeld revokes the tokens of a pending completion that will not be
// stored (RFC 7009, where the integration has a revocation_url): expired,
// refused or replaced. Only at the integration that issued them: one
// re-created under the name since is another provider, and they are
// dropped unrevoked. Failures are logged; the tokens are dropped anyway.
func (a *authorizer) revokeHeld(ctx context.Context, s logical.Storage, st *pendingAuthorization) {
	if st == nil || st.Held == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	stored, err := getIntegration(ctx, s, st.Integration)
	if err != nil || stored == nil {
		a.logger().Warn("the tokens of an uncompleted authorization were dropped unrevoked: its integration cannot be read", "integration", st.Integration, "connection_id", st.ConnectionID)
		return
	}
	if !stored.CreatedAt.Equal(st.IntegrationCreatedAt) {
		// Another integration under the same name: its revocation_url is
		// not the issuer's, and the tokens may not go there.
		a.logger().Warn("the tokens of an uncompleted authorization were dropped unrevoked: its integration was re-created, and the new one did not issue them", "integration", st.Integration, "connection_id", st.ConnectionID)
		return
	}
	in, err := effectiveIntegration(ctx, s, stored)
	if err != nil {
		a.logger().Warn("the tokens of an uncompleted authorization were dropped unrevoked: its provider cannot be resolved", "integration", st.Integration, "connection_id", st.ConnectionID)
		return
	}
	c := &connectionEntry{
		Integration: st.Integration, ConnectionID: st.ConnectionID, AuthMode: catalog.OAuth2, ConnectionConfig: st.Held.issuance(st).config,
		Credentials: credentials{AccessToken: st.Held.AccessToken, RefreshToken: st.Held.RefreshToken},
	}
	for _, w := range a.issuer.revoke(ctx, in, c) {
		a.logger().Warn("revoking the tokens of an uncompleted authorization", "integration", st.Integration, "connection_id", st.ConnectionID, "warning", w)
	}
}

// bindingMatches compares a browser binding with the stored hash in
// constant time. An authorization without a stored hash matches nothing.
func bindingMatches(storedHash, binding string) bool {
	if storedHash == "" || binding == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(hashState(binding)), []byte(storedHash)) == 1
}

// hashCompletion is the storage key of a pending completion's value: a
// hash apart from a state's, so that a completion is never taken as a
// state by the callback, nor a state as a completion.
func hashCompletion(completion string) string {
	return hashState("connect_completion\x00" + completion)
}

// revokeUnstored revokes, at the provider of in (the integration the code
// was exchanged with), tokens no connection will hold: the connection or
// its integration was deleted, or the integration re-created, during the
// exchange.
func (a *authorizer) revokeUnstored(ctx context.Context, in *integrationEntry, connCfg map[string]any, res *provider.Token) {
	c := &connectionEntry{Integration: in.Name, AuthMode: catalog.OAuth2, ConnectionConfig: connCfg,
		Credentials: credentials{AccessToken: res.AccessToken, RefreshToken: res.RefreshToken}}
	for _, w := range a.issuer.revoke(context.WithoutCancel(ctx), in, c) {
		a.logger().Warn("revoking the tokens of an authorization that stored nothing", "integration", in.Name, "warning", w)
	}
}

// resolve reads the integration a callback authorizes for, and the config
// its URLs are filled with (see connectionConfig), whose token endpoint
// must resolve.
func (a *authorizer) resolve(ctx context.Context, s logical.Storage, st *pendingAuthorization) (*integrationEntry, map[string]any, *completionError) {
	stored, err := getIntegration(ctx, s, st.Integration)
	if err != nil {
		a.logger().Error("reading integration", "integration", st.Integration, "error", err)
		return nil, nil, &completionError{faultVault, "Vault could not read the integration."}
	}
	if stored == nil || !stored.CreatedAt.Equal(st.IntegrationCreatedAt) {
		return nil, nil, &completionError{faultRequest, fmt.Sprintf("Integration %q was deleted since the authorization started.", st.Integration)}
	}
	in, err := effectiveIntegration(ctx, s, stored)
	if err != nil {
		a.logger().Error("resolving integration", "integration", st.Integration, "error", err)
		return nil, nil, &completionError{faultVault, "Vault could not resolve the integration's provider."}
	}
	var c *connectionEntry
	if !st.ReplaceConnectionConfig {
		if c, err = a.store.Get(ctx, s, st.Integration, st.ConnectionID); err != nil {
			return nil, nil, &completionError{faultVault, "Vault could not read the connection."}
		}
	}
	connCfg := st.connectionConfig(c)
	if _, err := endpoints(in, connCfg); err != nil {
		return nil, nil, &completionError{faultRequest, err.Error()}
	}
	return in, connCfg, nil
}

// storeConnection writes the tokens of a completed authorization
// into the connection as it is now. A re-authorization replaces the
// credentials and keeps the metadata and config unless authorize was given
// new ones; a connection deleted since authorize is not re-created.
func (a *authorizer) storeConnection(ctx context.Context, s logical.Storage, in *integrationEntry, st *pendingAuthorization, res *provider.Token, fromCallback map[string]any) error {
	_, err := a.store.Update(ctx, s, st.Integration, st.ConnectionID, func(c *connectionEntry) (*connectionEntry, error) {
		now := a.now()
		created := c == nil
		if c != nil && st.CreateOnly {
			return nil, errConnectionExists
		}
		if c == nil {
			if st.Reauthorization {
				return nil, connectionNotFound(st.Integration, st.ConnectionID)
			}
			c = &connectionEntry{
				Integration:      st.Integration,
				ConnectionID:     st.ConnectionID,
				AuthMode:         catalog.OAuth2,
				Metadata:         map[string]any{},
				ConnectionConfig: map[string]any{},
				CreatedAt:        now,
				// The integration the code was exchanged with: the store
				// refuses the entry if it was re-created since.
				IntegrationCreatedAt: st.IntegrationCreatedAt,
			}
		} else if !sameIntegration(&connectionEntry{IntegrationCreatedAt: st.IntegrationCreatedAt}, c) {
			return nil, fmt.Errorf("%w: %q was re-created during the authorization", errIntegrationGone, st.Integration)
		}
		c.Credentials = credentials{}
		c.ConnectionConfig = st.connectionConfig(c)
		if st.ReplaceMetadata {
			c.Metadata = st.Metadata
			if c.Metadata == nil { // given empty: a stored state drops it
				c.Metadata = map[string]any{}
			}
		}
		switch {
		case st.ReplaceTags && created:
			c.Tags = st.Tags
		case st.ReplaceTags:
			// Created by someone else since authorize: its tags are
			// theirs, not those of whoever started the authorization.
			a.logger().Warn("a connection created since authorize keeps its tags; authorize's are ignored", "integration", st.Integration, "connection_id", st.ConnectionID)
		}
		for k, v := range fromCallback {
			if c.ConnectionConfig == nil {
				c.ConnectionConfig = map[string]any{}
			}
			c.ConnectionConfig[k] = v
		}
		if len(fromCallback) > 0 {
			// Values from the redirect's query are the browser's, not the
			// provider's: they may not point the integration elsewhere.
			if err := in.checkConfigHosts(c.ConnectionConfig); err != nil {
				return nil, badInput(err)
			}
		}
		a.issuer.apply(c, in, res, now)
		c.noteAuthorized(created)
		return c, nil
	})
	return err
}

// failed records connection.authorization_failed for st's connection: the
// provider's error code and description from its redirect (cause nil), or
// the failed code exchange. The description is scrubbed of every secret
// of the connection and its integration and of the redirect's state and
// code and st's verifier (query is the redirect's). Nothing is stored by a
// failed callback, so a failed recording is logged: the customer sees the
// failure and starts again.
func (a *authorizer) failed(ctx context.Context, s logical.Storage, st *pendingAuthorization, cause error, code, desc string, query map[string]any) {
	var in *integrationEntry
	if stored, err := getIntegration(ctx, s, st.Integration); err == nil && stored != nil {
		in, _ = effectiveIntegration(ctx, s, stored)
	}
	existing, _ := a.store.Get(ctx, s, st.Integration, st.ConnectionID)
	secrets := eventSecrets(in, existing, queryValue(query, "state"), queryValue(query, "code"), st.Verifier)
	e := scrubbedEventError(code, desc, secrets)
	if cause != nil {
		e = eventErrorOf(cause, secrets)
	} else if uri := queryValue(query, "error_uri"); uri != "" {
		// The provider's refusal as it sent it, for the operator and the
		// application: never on a page served from Vault's address, where
		// anyone can put words in a link's query.
		e = scrubbedEventError(code, strings.TrimSpace(desc+" (see "+uri+")"), secrets)
	}
	if cause == nil {
		a.logger().Info("the provider refused an authorization", "integration", st.Integration, "connection_id", st.ConnectionID,
			"error", e.Code, "error_description", e.Description)
	} else {
		a.logger().Warn("authorization code exchange failed", "integration", st.Integration, "connection_id", st.ConnectionID,
			"error", e.Code, "error_description", e.Description)
	}
	if a.events == nil {
		return
	}
	if err := a.events.record(ctx, s, eventAuthorizationFailed, authorizationFailedData(st, existing, e)); err != nil {
		a.logger().Error("recording a failed authorization's event", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err)
	}
}

// queryValue is one parameter of a redirect's query as the request data
// holds it.
func queryValue(query map[string]any, name string) string {
	switch v := query[name].(type) {
	case string:
		return v
	case []string:
		if len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// checkCallbackConfig checks the values callback_config copies from the
// provider's redirect against the integration's connection_config_schema,
// as any write of a connection's config is checked: the redirect comes
// through the customer's browser, so its query is the customer's input,
// and it must not replace a value authorize checked with one the schema
// refuses. It runs before the code is exchanged, so a refusal spends
// nothing at the provider. Errors name the key, never the value. The values
// may not point the integration's URLs outside its allowed hosts either,
// merged into base, the config the callback resolves its endpoints with
// (checked again under the connection's lock when they are stored).
func checkCallbackConfig(in *integrationEntry, base, fromCallback map[string]any) error {
	for _, key := range in.CallbackConfig {
		v, ok := fromCallback[key]
		f, inSchema := in.ConnectionConfigSchema[key]
		if !ok || !inSchema {
			continue
		}
		if err := f.Check(v); err != nil {
			return fmt.Errorf("connection_config.%s %s", key, err)
		}
	}
	if len(fromCallback) == 0 {
		return nil
	}
	merged := maps.Clone(base)
	if merged == nil {
		merged = map[string]any{}
	}
	maps.Copy(merged, fromCallback)
	if err := in.checkConfigHosts(merged); err != nil {
		return err
	}
	return in.checkParamConfig(merged)
}

// maxCallbackValueLen bounds a value copied from the callback's query.
const maxCallbackValueLen = 256

// callbackValues picks the query parameters that callback_config names,
// as single strings of printable characters.
func callbackValues(names []string, query map[string]any) map[string]any {
	out := map[string]any{}
	for _, name := range names {
		var v string
		switch raw := query[name].(type) {
		case string:
			v = raw
		case []string:
			if len(raw) > 0 {
				v = raw[0]
			}
		}
		if v != "" && len(v) <= maxCallbackValueLen && safetext.Printable(v, maxCallbackValueLen) == v {
			out[name] = v
		}
	}
	return out
}
