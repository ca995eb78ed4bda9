// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	putState func(ctx context.Context, s logical.Storage, stateHash string, st *oauthStateEntry) error
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
)

// connectionConfig is the config an authorization fills the provider's
// URLs and token parameters with, and the one its connection is stored
// with: the one authorize was given, else the connection's as it is (c,
// nil when there is none yet), with the given keys set over it when st
// merges. A config given empty is an empty object, though a stored state
// drops it.
func (st *oauthStateEntry) connectionConfig(c *connectionEntry) map[string]any {
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
func (a *authorizer) authorize(ctx context.Context, s logical.Storage, in *integrationEntry, existing *connectionEntry, st *oauthStateEntry) (string, error) {
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
func (a *authorizer) complete(ctx context.Context, s logical.Storage, st *oauthStateEntry, code string, query map[string]any) *completionError {
	// Everything the exchange and the save need is read before the code is
	// spent at the provider.
	in, connCfg, fail := a.resolve(ctx, s, st)
	if fail != nil {
		return fail
	}
	fromCallback := callbackValues(in.CallbackConfig, query)
	if err := checkCallbackConfig(in, connCfg, fromCallback); err != nil {
		return &completionError{faultRequest, fmt.Sprintf(
			"The provider's redirect carries connection config this integration does not accept: %s. Nothing was stored. Start the authorization again.", err)}
	}
	res, err := a.issuer.exchangeCode(ctx, in, st, connCfg, code)
	var bad *userError
	if errors.As(err, &bad) {
		return &completionError{faultRequest, bad.Error()}
	}
	if err != nil {
		a.logger().Warn("authorization code exchange failed", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err.Error())
		a.failed(ctx, s, st, err, "", "", query)
		return &completionError{faultProvider, "The provider did not issue tokens: " + err.Error()}
	}
	err = a.storeConnection(ctx, s, in, st, res, fromCallback)
	if eventOwed(err) {
		// Stored; the periodic hook records the event.
		a.logger().Warn("an authorized connection's event is owed", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err)
		err = nil
	}
	if err != nil {
		a.logger().Error("storing authorized connection", "integration", st.Integration, "connection_id", st.ConnectionID, "error", err)
		if errors.Is(err, errIntegrationGone) || errors.Is(err, errConnectionNotFound) {
			a.revokeUnstored(ctx, in, connCfg, res)
			return &completionError{faultGone, "The connection or its integration was deleted during the authorization."}
		}
		if errors.As(err, &bad) {
			return &completionError{faultRequest, "The provider's redirect carried a connection config value Vault may not store: " + bad.Error()}
		}
		return &completionError{faultVault, "Vault could not store the connection."}
	}
	return nil
}

// revokeUnstored revokes, at the provider of in (the integration the code
// was exchanged with), tokens no connection will hold: the connection or
// its integration was deleted, or the integration re-created, during the
// exchange.
func (a *authorizer) revokeUnstored(ctx context.Context, in *integrationEntry, connCfg map[string]any, res *provider.Token) {
	c := &connectionEntry{Integration: in.Name, AuthMode: catalog.OAuth2, ConnectionConfig: connCfg,
		Credentials: credentials{AccessToken: res.AccessToken, RefreshToken: res.RefreshToken}}
	for _, w := range a.issuer.revoke(context.WithoutCancel(ctx), in, c) {
		a.logger().Warn("revoking the tokens of an authorization whose integration is gone", "integration", in.Name, "warning", w)
	}
}

// resolve reads the integration a callback authorizes for, and the config
// its URLs are filled with (see connectionConfig), whose token endpoint
// must resolve.
func (a *authorizer) resolve(ctx context.Context, s logical.Storage, st *oauthStateEntry) (*integrationEntry, map[string]any, *completionError) {
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
func (a *authorizer) storeConnection(ctx context.Context, s logical.Storage, in *integrationEntry, st *oauthStateEntry, res *provider.Token, fromCallback map[string]any) error {
	_, err := a.store.Update(ctx, s, st.Integration, st.ConnectionID, func(c *connectionEntry) (*connectionEntry, error) {
		now := a.now()
		created := c == nil
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
func (a *authorizer) failed(ctx context.Context, s logical.Storage, st *oauthStateEntry, cause error, code, desc string, query map[string]any) {
	if a.events == nil {
		return
	}
	var in *integrationEntry
	if stored, err := getIntegration(ctx, s, st.Integration); err == nil && stored != nil {
		in, _ = effectiveIntegration(ctx, s, stored)
	}
	existing, _ := a.store.Get(ctx, s, st.Integration, st.ConnectionID)
	secrets := eventSecrets(in, existing, queryValue(query, "state"), queryValue(query, "code"), st.Verifier)
	e := scrubbedEventError(code, desc, secrets)
	if cause != nil {
		e = eventErrorOf(cause, secrets)
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
