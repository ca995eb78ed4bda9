// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"fmt"
	"time"
)

// The base layer's errors: every layer returns them, and response.go alone
// turns them into HTTP statuses (httpError, respondError). They import
// nothing of the plugin, so the store and the engine can return them
// without reaching up into the flows or the path handlers.

// Kinds of the errors of the store, the engine and the flows, each wrapped
// in an engineError with the detail of its case.
var (
	// errProviderRefused: the provider answered, and not with a token.
	errProviderRefused = errors.New("the provider refused to issue a token")
	// errProviderUnreachable: the provider did not answer.
	errProviderUnreachable = errors.New("the provider could not be reached")
	// errNotRefreshable: the connection has no means to renew its token.
	errNotRefreshable = errors.New("the connection has no refresh token; write new tokens to it or authorize it again")
	// errExpiredUnrefreshable: the token has expired and the engine may not
	// renew it now (it gave up, or a retry is not due).
	errExpiredUnrefreshable = errors.New("the token has expired and cannot be refreshed now")
	// errBadConnectionConfig: the connection's config cannot fill the
	// provider's URLs or name its installation.
	errBadConnectionConfig = errors.New("the connection's configuration cannot be used with its provider")
	// errNoTokens: the connection's auth mode has no token to refresh.
	errNoTokens = errors.New("the connection's auth_mode has no token to refresh")
	// errConnectionNotFound: there is no such connection.
	errConnectionNotFound = errors.New("connection not found")
	// errWALPending: at start, the connection's tokens a previous process
	// left in the WAL are not stored yet, and storage's may be spent.
	errWALPending = errors.New("the connection's tokens in the write-ahead log are not stored yet")
	// errProxyForbidden: a proxied call outside its integration's proxy
	// rules (no proxy_paths, a method or path they do not allow); nothing
	// was sent.
	errProxyForbidden = errors.New("the integration's proxy rules do not allow this call")
	// errProxyUpstream: a proxied call's provider could not be reached or
	// answered beyond the bounds (a body over proxy_max_response).
	errProxyUpstream = errors.New("the provider's answer to a proxied call could not be used")
	// errProxyTimeout: a proxied call's provider did not answer within
	// proxy_timeout.
	errProxyTimeout = errors.New("the provider did not answer a proxied call in time")
	// errNewerFormat: a stored entry is of a later storage format than
	// this build's (a newer version wrote it, then the mount was rolled
	// back): refused, never misread or overwritten.
	errNewerFormat = errors.New("stored by a newer version of the plugin")
	// errIntegrationChanged: the integration was written while its
	// provider issued a connection's token, which may have been issued for
	// what it no longer names; nothing was stored.
	errIntegrationChanged = errors.New("the integration changed while the token was issued")
)

// engineError is one of the errors above with the detail of this case; its
// message is safe to show (no secret).
type engineError struct {
	kind  error
	msg   string
	cause error
}

func (e *engineError) Error() string        { return e.msg }
func (e *engineError) Is(target error) bool { return target == e.kind }
func (e *engineError) Unwrap() error        { return e.cause }

// userError marks an error as the caller's fault: a 400 with its message.
// Validation code returns it; anything else a handler meets (storage) is
// not a 400.
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

// badInput is a userError built like fmt.Errorf.
func badInput(err error) error { return &userError{err.Error()} }

// pendingLimitError refuses a pending authorization beyond config's
// max_pending_authorizations for one integration.
type pendingLimitError struct {
	integration string
	max         int
}

func (e *pendingLimitError) Error() string {
	return fmt.Sprintf("integration %q already has %d pending authorizations, config's max_pending_authorizations: "+
		"retry when some have completed or expired (state_ttl), or raise the limit", e.integration, e.max)
}

// errHasConnections refuses to delete an integration that has connections
// without force.
type errHasConnections struct{ count int }

func (e *errHasConnections) Error() string {
	return fmt.Sprintf("the integration still has %d connection(s)", e.count)
}

// errUnchanged, returned by an Update's change function, leaves the entry as
// it is stored; Update then returns it without saving.
var errUnchanged = errors.New("unchanged")

// connectionNotFound is errConnectionNotFound for one connection.
func connectionNotFound(integration, id string) error {
	return &engineError{kind: errConnectionNotFound, msg: fmt.Sprintf("connection %q of integration %q does not exist", id, integration)}
}

// errIntegrationGone is a connection write whose integration was deleted.
var errIntegrationGone = errors.New("integration does not exist")

// grantRefusal is a token request's failure that may be the provider
// refusing the grant itself (OAuth's invalid_grant): only a new
// authorization helps then. The provider client's errors implement it; the
// refresh rules test for it without knowing the client.
type grantRefusal interface{ InvalidGrant() bool }

// retryHint is a failure by which the provider said when to call again
// (Retry-After); the zero time when it did not.
type retryHint interface{ RetryAt() time.Time }

// refusedGrant reports whether err's chain holds a grant refusal.
func refusedGrant(err error) bool {
	var g grantRefusal
	return errors.As(err, &g) && g.InvalidGrant()
}

// retryAt is when err's provider asked to be called again, or the zero time.
func retryAt(err error) time.Time {
	var h retryHint
	if errors.As(err, &h) {
		return h.RetryAt()
	}
	return time.Time{}
}
