// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/refresh"
)

// This file is a connection entry as the refresh rules read it: the rules
// themselves (when the background refreshes, backoff, the states a failure
// leaves) are internal/refresh's; here are the entry's fields they read,
// the read-time checks of its token and the failure applied to it.

// minTokenLifetime is what a token that the provider says lives for no time
// at all (expires_in <= 0, or a few seconds) is taken to live: otherwise
// every read would refresh it.
const minTokenLifetime = 60 * time.Second

// refreshDue reports whether c's token should be renewed before a read
// returns it: it expires within margin, or there is none yet.
func refreshDue(c *connectionEntry, margin time.Duration, now time.Time) bool {
	if !c.AuthMode.HasTokens() {
		return false
	}
	if c.Credentials.AccessToken == "" {
		return true
	}
	if c.Credentials.ExpiresAt.IsZero() {
		return false
	}
	return !now.Before(c.Credentials.ExpiresAt.Add(-margin))
}

// tokenExpired reports whether c's token can no longer be used at all.
func tokenExpired(c *connectionEntry, now time.Time) bool {
	if c.Credentials.AccessToken == "" {
		return true
	}
	return !c.Credentials.ExpiresAt.IsZero() && !now.Before(c.Credentials.ExpiresAt)
}

// scheduleFields are what deciding a connection's next refresh reads of it,
// as stored. The start-up rebuild decodes only these from each stored entry
// (decodeScheduleFields); everything else takes them from a whole entry
// (connectionEntry.scheduleFields), so that both decide by the same rules
// (forEngine). They hold no secret: of the tokens, only whether there is
// one.
type scheduleFields struct {
	AuthMode        catalog.AuthMode
	HasAccessToken  bool
	HasRefreshToken bool
	ExpiresAt       time.Time // of the access token; zero: it does not expire
	// RefreshExpiryMember: the last token response holds one of
	// refreshExpiryMembers.
	RefreshExpiryMember bool
	UpdatedAt           time.Time
	LastRefreshedAt     time.Time
	RefreshStatus       refreshStatus
	NextRefreshAt       time.Time
}

// scheduleFields are c's fields that scheduling reads.
func (c *connectionEntry) scheduleFields() scheduleFields {
	f := scheduleFields{
		AuthMode:        c.AuthMode,
		HasAccessToken:  c.Credentials.AccessToken != "",
		HasRefreshToken: c.Credentials.RefreshToken != "",
		ExpiresAt:       c.Credentials.ExpiresAt,
		UpdatedAt:       c.UpdatedAt,
		LastRefreshedAt: c.LastRefreshedAt,
		RefreshStatus:   c.RefreshStatus,
		NextRefreshAt:   c.NextRefreshAt,
	}
	for _, k := range refreshExpiryMembers {
		if _, ok := c.RawTokenResponse[k]; ok {
			f.RefreshExpiryMember = true
		}
	}
	return f
}

// forEngine are f as the engine's rules read them.
func (f scheduleFields) forEngine() refresh.Fields {
	return refresh.Fields{
		IssuesTokens:       f.AuthMode.HasTokens(),
		OAuth2:             f.AuthMode == catalog.OAuth2,
		HasAccessToken:     f.HasAccessToken,
		HasRefreshToken:    f.HasRefreshToken,
		ExpiresAt:          f.ExpiresAt,
		RefreshTokenExpiry: f.RefreshExpiryMember,
		UpdatedAt:          f.UpdatedAt,
		LastRefreshedAt:    f.LastRefreshedAt,
		Status:             f.RefreshStatus,
		NextRefreshAt:      f.NextRefreshAt,
	}
}

// refreshExpiryMembers are the token response members by which providers
// say that a refresh token dies when unused.
var refreshExpiryMembers = []string{"refresh_token_expires_in", "refresh_expires_in", "x_refresh_token_expires_in"}

// refreshState is c's refresh status; entries that never failed say ok.
func (c *connectionEntry) refreshState() refreshStatus {
	if c.RefreshStatus == "" {
		return refreshOK
	}
	return c.RefreshStatus
}

// blocked reports whether reads must not ask the provider for c now: it
// refused for good, or a retry is not due yet.
func blocked(c *connectionEntry, now time.Time) bool {
	switch c.RefreshStatus {
	case refreshExhausted, refreshReauth:
		return true
	case refreshFailing:
		return now.Before(c.NextRefreshAt)
	}
	return false
}

// maxRefreshErrorLen bounds last_refresh_error as stored and shown.
const maxRefreshErrorLen = refresh.MaxErrorLen

// recordFailure updates c's refresh state after a failed refresh
// (refresh.AfterFailure). cause has had the request's secrets removed
// already; it is read only through the base layer's kinds
// (errNotRefreshable) and interfaces (grantRefusal, retryHint), never the
// provider client's types.
func recordFailure(c *connectionEntry, cause error, cfg *configEntry, now time.Time) {
	s := refresh.AfterFailure(c.RefreshFailures, refresh.Failure{
		Message:     cause.Error(),
		Reauthorize: refusedGrant(cause) || errors.Is(cause, errNotRefreshable),
		RetryAt:     retryAt(cause),
	}, cfg.MaxRefreshFailures, now)
	c.RefreshStatus, c.RefreshFailures, c.LastRefreshError, c.NextRefreshAt = s.Status, s.Failures, s.LastError, s.NextRefreshAt
}
