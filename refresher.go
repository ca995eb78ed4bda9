// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// refresher is the flow that keeps connections' tokens: the renewal on a
// read that finds a token due, the forced one, the background one the
// engine's queue asks for, and the one a proxied call's 401 asks for; it
// only refreshes (a connection's first token is the connectionWriter's).
// It sequences the store (whose lock makes a renewal
// single-flight), the issuer (the only way to the provider) and the engine
// (the schedule and its outcomes).
type refresher struct {
	store  *connectionStore
	engine *refreshEngine
	issuer *issuer
	// config reads the mount's configuration.
	config func(context.Context, logical.Storage) (*configEntry, error)
	// writable reports whether this node may store (a performance standby
	// or secondary may not: Vault forwards the request).
	writable func() bool
	now      func() time.Time
	logger   func() hclog.Logger
}

// trigger says why a refresh runs.
type trigger int

const (
	triggerRead       trigger = iota // a read found the token due
	triggerForced                    // the refresh path: whatever the expiry or state
	triggerBackground                // the queue said it is time
	triggerRejected                  // the provider refused the token (a proxied call's 401)
)

// readRefreshed returns a connection for a read, refreshing its token first
// when it is due. Warnings are for the response: the token works, but its
// renewal is failing. Nil, nil, nil when the connection does not exist.
func (r *refresher) readRefreshed(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, []string, error) {
	c, err := r.store.Get(ctx, s, integration, id)
	if err != nil || c == nil {
		return nil, nil, err
	}
	cfg, err := r.config(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	now := r.now()
	if !refreshDue(c, cfg.RefreshMargin, now) {
		return c, refreshWarnings(c), nil
	}
	if blocked(c, now) {
		return servedWithoutRefresh(c, now)
	}
	c, warnings, err := r.refreshConnection(ctx, s, integration, id, triggerRead)
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
func (r *refresher) refreshConnection(ctx context.Context, s logical.Storage, integration, id string, why trigger) (*connectionEntry, []string, error) {
	return r.refreshUnless(ctx, s, integration, id, why, "")
}

// refreshRejected renews a connection's token after the provider refused
// rejected (a proxied call's 401), single-flight as a read's refresh: of
// many calls refused the same token, one spends the refresh token, and the
// others find a token other than rejected under the lock and use it. A
// connection whose refresh is backing off, or whose token the engine issued
// less than rejectedRenewalCooldown ago, is not refreshed; then, or when
// the refresh fails, the token returned is still rejected.
func (r *refresher) refreshRejected(ctx context.Context, s logical.Storage, integration, id, rejected string) (*connectionEntry, error) {
	c, _, err := r.refreshUnless(ctx, s, integration, id, triggerRejected, rejected)
	return c, err
}

// refreshUnless is refreshConnection; for triggerRejected, rejected is the
// token the provider refused.
func (r *refresher) refreshUnless(ctx context.Context, s logical.Storage, integration, id string, why trigger, rejected string) (*connectionEntry, []string, error) {
	// A provider that rotates refresh tokens has already spent the old one
	// when it answers, so the answer must be stored even if the caller has
	// gone away; only the provider timeout bounds the work.
	ctx = context.WithoutCancel(ctx)
	if !r.writable() {
		// A performance standby or secondary cannot store a new token:
		// Vault forwards the request to where it can.
		return nil, nil, logical.ErrReadOnly
	}
	// Everything the refresh needs is read before the provider is called,
	// so that no read can fail once a refresh token is spent.
	cfg, err := r.config(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	var (
		served   *connectionEntry // an answer without a refresh
		warnings []string
		failure  error
	)
	c, err := r.store.Update(ctx, s, integration, id, func(c *connectionEntry) (*connectionEntry, error) {
		if c == nil {
			return nil, connectionNotFound(integration, id)
		}
		if skip, err := refreshNotNeeded(c, cfg, r.now(), why, rejected); skip || err != nil {
			if err == nil {
				served, warnings = c, refreshWarnings(c)
				if why == triggerBackground {
					warnings = nil
				}
			}
			return nil, errOrUnchanged(err)
		}
		if !c.AuthMode.HasTokens() {
			return nil, &engineError{kind: errNoTokens, msg: fmt.Sprintf("connection uses auth_mode %s, which has no token to refresh", c.AuthMode)}
		}
		failure = r.renew(ctx, s, c, cfg)
		return c, nil
	})
	if eventOwed(err) {
		// The refresh is stored; the periodic hook records its events.
		r.logger().Warn("a refresh's events are owed", "integration", integration, "connection_id", id, "error", err)
		err = nil
	}
	if err != nil {
		return nil, nil, err
	}
	if served != nil {
		if why == triggerBackground {
			r.engine.track(c) // rescheduled since it was queued
		}
		return c, warnings, nil
	}
	if failure != nil {
		return r.refreshFailed(c, failure, why)
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

// rejectedRenewalCooldown is how long after the engine last issued a
// connection's token a provider's 401 does not renew it: an endpoint that
// answers 401 whatever the token (a scope the token lacks, another kind of
// auth) would otherwise have every proxied call spend a refresh token, a
// storage write and an event; a token that new is refused for another
// reason than its age.
const rejectedRenewalCooldown = 60 * time.Second

// renewedRecently reports whether c's token was issued by the engine less
// than rejectedRenewalCooldown ago.
func renewedRecently(c *connectionEntry, now time.Time) bool {
	return !c.LastRefreshedAt.IsZero() && now.Sub(c.LastRefreshedAt) < rejectedRenewalCooldown
}

// refreshNotNeeded reports whether c, loaded under its lock, needs no
// refresh after all for this trigger (a concurrent reader renewed it, the
// schedule moved), or must not get one (err).
func refreshNotNeeded(c *connectionEntry, cfg *configEntry, now time.Time, why trigger, rejected string) (bool, error) {
	switch why {
	case triggerRejected:
		return c.Credentials.AccessToken != rejected || blocked(c, now) || renewedRecently(c, now), nil
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

// renew renews c's token through the issuer and applies the failure, if
// any, to c's refresh state; it returns the failure, classified, or the
// error that kept the issuer from asking (c then unchanged).
func (r *refresher) renew(ctx context.Context, s logical.Storage, c *connectionEntry, cfg *configEntry) error {
	statusBefore, failuresBefore := c.refreshState(), c.RefreshFailures
	failure, err := r.issuer.renew(ctx, s, c)
	if err != nil {
		return err
	}
	labels := []metrics.Label{{Name: "integration", Value: c.Integration}}
	if failure != nil {
		r.engine.recordOutcome(false)
		metrics.IncrCounterWithLabels([]string{"connect", "refresh", "failure"}, 1, labels)
		recordFailure(c, failure, cfg, r.now())
		in, _ := r.issuer.integration(ctx, s, c.Integration) // for the secrets the event's error must not quote
		c.noteRefreshOutcome(statusBefore, failuresBefore, failure, eventSecrets(in, c))
		r.logger().Warn("token refresh failed", "integration", c.Integration, "connection_id", c.ConnectionID,
			"refresh_status", c.RefreshStatus, "failures", c.RefreshFailures, "error", c.LastRefreshError)
		return failure
	}
	c.noteRefreshOutcome(statusBefore, failuresBefore, nil, nil)
	r.engine.recordOutcome(true)
	metrics.IncrCounterWithLabels([]string{"connect", "refresh", "success"}, 1, labels)
	r.logger().Debug("token refreshed", "integration", c.Integration, "connection_id", c.ConnectionID, "expires_at", formatTime(c.Credentials.ExpiresAt))
	return nil
}

// refreshFailed answers the caller of a refresh that failed (the failure is
// stored in c): the old token with a warning while it works, except to a
// forced refresh, which asked for a new one; else the failure.
func (r *refresher) refreshFailed(c *connectionEntry, cause error, why trigger) (*connectionEntry, []string, error) {
	if why != triggerForced && !tokenExpired(c, r.now()) {
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
	msg := fmt.Sprintf("token of connection %q could not be refreshed (%s): %s", c.ConnectionID, c.RefreshStatus, c.LastRefreshError)
	if !tokenExpired(c, r.now()) && c.Credentials.AccessToken != "" {
		// A forced refresh answers no token; say what reads still get.
		until := formatTime(c.Credentials.ExpiresAt)
		if until == "" {
			until = "the provider revokes it"
		}
		msg += "; the stored token is kept; it works until " + until
	}
	return nil, nil, &engineError{kind: kind, cause: cause, msg: msg}
}

// backgroundRefresh refreshes one queued connection. Its outcome is in the
// connection's refresh state, and a provider's failure was logged by
// renew; only other errors (storage) are logged here.
func (r *refresher) backgroundRefresh(ctx context.Context, s logical.Storage, key string) {
	integration, id, ok := splitConnectionKey(key)
	if !ok {
		return
	}
	_, _, err := r.refreshConnection(ctx, s, integration, id, triggerBackground)
	var ee *engineError
	if err != nil && !errors.As(err, &ee) {
		r.logger().Error("background refresh", "integration", integration, "connection_id", id, "error", err)
	}
}
