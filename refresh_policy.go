// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

// Backoff after failed refreshes: 30s, 1m, 2m, ... at most an hour.
const (
	backoffBase = 30 * time.Second
	backoffMax  = time.Hour
)

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

// scheduleFields are what deciding a connection's next refresh reads of it.
// The start-up rebuild decodes only these from each stored entry
// (decodeScheduleFields); everything else takes them from a whole entry
// (connectionEntry.scheduleFields), so that both decide by the same rules.
// They hold no secret: of the tokens, only whether there is one.
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

// canRefresh reports whether the engine has the means to renew the token.
func (f *scheduleFields) canRefresh() bool {
	return f.AuthMode.HasTokens() && (f.AuthMode != catalog.OAuth2 || f.HasRefreshToken)
}

// refreshTokenExpires reports whether the refresh token dies when unused,
// as the provider says in its token response.
func (f *scheduleFields) refreshTokenExpires() bool {
	return f.AuthMode == catalog.OAuth2 && f.HasRefreshToken && f.RefreshExpiryMember
}

// refreshState is the refresh status; entries that never failed say ok.
func (f *scheduleFields) refreshState() refreshStatus {
	if f.RefreshStatus == "" {
		return refreshOK
	}
	return f.RefreshStatus
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

// backoff is the wait after the n-th failure in a row.
func backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 8 { // 30s << 7 already exceeds the cap
		return backoffMax
	}
	return min(backoffBase<<(n-1), backoffMax)
}

// maxRefreshErrorLen bounds last_refresh_error as stored and shown.
const maxRefreshErrorLen = 500

// recordFailure updates c's refresh state after a failed refresh. cause
// has had the request's secrets removed already; the rules read it only
// through the base layer's kinds (errNotRefreshable) and interfaces
// (grantRefusal, retryHint), never the provider client's types.
func recordFailure(c *connectionEntry, cause error, cfg *configEntry, now time.Time) {
	c.RefreshFailures++
	c.LastRefreshError = truncateRunes(cause.Error(), maxRefreshErrorLen)
	switch {
	case refusedGrant(cause), errors.Is(cause, errNotRefreshable):
		c.RefreshStatus = refreshReauth
		c.NextRefreshAt = time.Time{}
	case c.RefreshFailures >= cfg.MaxRefreshFailures:
		c.RefreshStatus = refreshExhausted
		c.NextRefreshAt = time.Time{}
	default:
		c.RefreshStatus = refreshFailing
		c.NextRefreshAt = now.Add(backoff(c.RefreshFailures))
		// A provider that says when to come back is believed when that is
		// later than the backoff, up to the backoff's cap.
		if at := retryAt(cause); at.After(c.NextRefreshAt) {
			c.NextRefreshAt = minTime(at, now.Add(backoffMax))
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func truncateRunes(s string, max int) string {
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max]) + "…"
}
