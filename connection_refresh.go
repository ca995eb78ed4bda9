// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// Errors of the refresh of one connection, in the engine's own terms; the
// path handlers alone turn them into HTTP statuses (httpError).
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

// trigger says why a refresh runs.
type trigger int

const (
	triggerRead       trigger = iota // a read found the token due
	triggerForced                    // the refresh path: whatever the expiry or state
	triggerBackground                // the queue said it is time
)

// readRefreshed returns a connection for a read, refreshing its token first
// when it is due. Warnings are for the response: the token works, but its
// renewal is failing. Nil, nil, nil when the connection does not exist.
func (b *backend) readRefreshed(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, []string, error) {
	c, err := b.store.Get(ctx, s, integration, id)
	if err != nil || c == nil {
		return nil, nil, err
	}
	cfg, err := b.config(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	now := b.now()
	if !refreshDue(c, cfg.RefreshMargin, now) {
		return c, refreshWarnings(c), nil
	}
	if blocked(c, now) {
		return servedWithoutRefresh(c, now)
	}
	c, warnings, err := b.refreshConnection(ctx, s, integration, id, triggerRead)
	if errors.Is(err, errConnectionNotFound) {
		return nil, nil, nil // deleted meanwhile
	}
	return c, warnings, err
}

// refreshWarnings says why a connection whose token still works needs
// attention.
func refreshWarnings(c *connectionEntry) []string {
	if c.refreshState() == refreshOK {
		return nil
	}
	return []string{fmt.Sprintf("token refresh is %s after %d failure(s), returning the current token until it expires at %s: %s",
		c.RefreshStatus, c.RefreshFailures, formatTime(c.Credentials.ExpiresAt), c.LastRefreshError)}
}

// servedWithoutRefresh answers a read of a due connection that must not be
// refreshed now: its token while it works, else errExpiredUnrefreshable.
func servedWithoutRefresh(c *connectionEntry, now time.Time) (*connectionEntry, []string, error) {
	if !tokenExpired(c, now) {
		return c, refreshWarnings(c), nil
	}
	return nil, nil, &engineError{kind: errExpiredUnrefreshable, msg: fmt.Sprintf(
		"token of connection %q has expired and refresh is %s after %d failure(s): %s; force a refresh at connections/%s/%s/refresh or authorize the connection again",
		c.ConnectionID, c.RefreshStatus, c.RefreshFailures, c.LastRefreshError, c.Integration, c.ConnectionID)}
}

// refreshConnection renews a connection's token through the store, whose
// lock makes it single-flight: of many readers that find the same token due,
// one spends the refresh token and the others see its result.
func (b *backend) refreshConnection(ctx context.Context, s logical.Storage, integration, id string, why trigger) (*connectionEntry, []string, error) {
	// A provider that rotates refresh tokens has already spent the old one
	// when it answers, so the answer must be stored even if the caller has
	// gone away; only the provider timeout bounds the work.
	ctx = context.WithoutCancel(ctx)
	if !b.WriteSafeReplicationState() {
		// A performance standby or secondary cannot store a new token:
		// Vault forwards the request to where it can.
		return nil, nil, logical.ErrReadOnly
	}
	// Everything the refresh needs is read before the provider is called,
	// so that no read can fail once a refresh token is spent.
	cfg, err := b.config(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	var (
		served   *connectionEntry // an answer without a refresh
		warnings []string
		failure  error
	)
	c, err := b.store.Update(ctx, s, integration, id, func(c *connectionEntry) (*connectionEntry, error) {
		if c == nil {
			return nil, connectionNotFound(integration, id)
		}
		if skip, err := refreshNotNeeded(c, cfg, b.now(), why); skip || err != nil {
			if err == nil {
				served, warnings = c, refreshWarnings(c)
				if why == triggerBackground {
					warnings = nil
				}
			}
			return nil, errOrUnchanged(err)
		}
		if !c.AuthMode.hasTokens() {
			return nil, &engineError{kind: errNoTokens, msg: fmt.Sprintf("connection uses auth_mode %s, which has no token to refresh", c.AuthMode)}
		}
		failure = b.renewToken(ctx, s, c, cfg)
		return c, nil
	})
	if eventOwed(err) {
		// The refresh is stored; the periodic hook records its events.
		b.Logger().Warn("a refresh's events are owed", "integration", integration, "connection_id", id, "error", err)
		err = nil
	}
	if err != nil {
		return nil, nil, err
	}
	if served != nil {
		if why == triggerBackground {
			b.engine.track(c) // rescheduled since it was queued
		}
		return c, warnings, nil
	}
	if failure != nil {
		return b.refreshFailed(c, failure, why)
	}
	return c, nil, nil
}

// errOrUnchanged turns "nothing to do" into errUnchanged for the store.
func errOrUnchanged(err error) error {
	if err == nil {
		return errUnchanged
	}
	return err
}

// refreshNotNeeded reports whether c, loaded under its lock, needs no
// refresh after all for this trigger (a concurrent reader renewed it, the
// schedule moved), or must not get one (err).
func refreshNotNeeded(c *connectionEntry, cfg *configEntry, now time.Time, why trigger) (bool, error) {
	switch why {
	case triggerRead:
		if !refreshDue(c, cfg.RefreshMargin, now) {
			return true, nil
		}
		if blocked(c, now) {
			_, _, err := servedWithoutRefresh(c, now)
			return err == nil, err
		}
	case triggerBackground:
		if c.NextRefreshAt.IsZero() || now.Before(c.NextRefreshAt) {
			return true, nil
		}
	}
	return false, nil
}

// renewToken asks the provider for a new token and applies the answer, or
// the failure, to c. It returns the failure, classified.
func (b *backend) renewToken(ctx context.Context, s logical.Storage, c *connectionEntry, cfg *configEntry) error {
	in, err := b.tokens.integration(ctx, s, c.Integration)
	if err != nil {
		return err
	}
	statusBefore, failuresBefore := c.refreshState(), c.RefreshFailures
	start := time.Now()
	res, err := b.tokens.obtain(ctx, in, c)
	labels := []metrics.Label{{Name: "integration", Value: c.Integration}}
	metrics.MeasureSinceWithLabels([]string{"connect", "refresh", "latency"}, start, labels)
	if err != nil {
		err = classifyProviderError(err)
		b.engine.recordOutcome(false)
		metrics.IncrCounterWithLabels([]string{"connect", "refresh", "failure"}, 1, labels)
		recordFailure(c, err, cfg, b.now())
		c.noteRefreshOutcome(statusBefore, failuresBefore, err, eventSecrets(in, c))
		b.Logger().Warn("token refresh failed", "integration", c.Integration, "connection_id", c.ConnectionID,
			"refresh_status", c.RefreshStatus, "failures", c.RefreshFailures, "error", c.LastRefreshError)
		return err
	}
	b.tokens.apply(c, in, res, b.now())
	c.noteRefreshOutcome(statusBefore, failuresBefore, nil, nil)
	b.engine.recordOutcome(true)
	metrics.IncrCounterWithLabels([]string{"connect", "refresh", "success"}, 1, labels)
	b.Logger().Debug("token refreshed", "integration", c.Integration, "connection_id", c.ConnectionID, "expires_at", formatTime(c.Credentials.ExpiresAt))
	return nil
}

// refreshFailed answers the caller of a refresh that failed (the failure is
// stored in c): the old token with a warning while it works, except to a
// forced refresh, which asked for a new one; else the failure.
func (b *backend) refreshFailed(c *connectionEntry, cause error, why trigger) (*connectionEntry, []string, error) {
	if why != triggerForced && !tokenExpired(c, b.now()) {
		return c, refreshWarnings(c), nil
	}
	kind := errProviderRefused
	switch {
	case errors.Is(cause, errBadConnectionConfig):
		kind = errBadConnectionConfig
	case errors.Is(cause, errNotRefreshable) && why == triggerForced:
		kind = errNotRefreshable
	case errors.Is(cause, errNotRefreshable):
		kind = errExpiredUnrefreshable
	case errors.Is(cause, errProviderUnreachable):
		kind = errProviderUnreachable
	}
	return nil, nil, &engineError{kind: kind, cause: cause,
		msg: fmt.Sprintf("token of connection %q could not be refreshed (%s): %s", c.ConnectionID, c.RefreshStatus, c.LastRefreshError)}
}

// backgroundRefresh refreshes one queued connection. Its outcome is in the
// connection's refresh state, and a provider's failure was logged by
// renewToken; only other errors (storage) are logged here.
func (b *backend) backgroundRefresh(ctx context.Context, s logical.Storage, key string) {
	integration, id, ok := splitConnectionKey(key)
	if !ok {
		return
	}
	_, _, err := b.refreshConnection(ctx, s, integration, id, triggerBackground)
	var ee *engineError
	if err != nil && !errors.As(err, &ee) {
		b.Logger().Error("background refresh", "integration", integration, "connection_id", id, "error", err)
	}
}
