// SPDX-License-Identifier: MPL-2.0

package refresh

import (
	"time"
)

// Status is a connection's standing with its provider.
type Status string

const (
	OK      Status = "ok"
	Failing Status = "failing" // retrying with backoff
	// Exhausted: max_refresh_failures in a row; the background stops
	// until a forced refresh or a re-authorization succeeds.
	Exhausted Status = "exhausted"
	// Reauth: the provider refused the grant itself (invalid_grant);
	// only the customer can fix that, by authorizing again.
	Reauth Status = "reauthorization_required"
)

// allStatuses are every status: Stats counts each, with zero those no
// connection has.
var allStatuses = []Status{OK, Failing, Exhausted, Reauth}

// Backoff after failed refreshes: 30s, 1m, 2m, ... at most an hour.
const (
	backoffBase = 30 * time.Second
	BackoffMax  = time.Hour
)

// MaxErrorLen bounds the last refresh error as stored and shown.
const MaxErrorLen = 500

// Fields are what deciding a connection's next refresh reads of it: plain
// values, so that the rules know nothing of how a connection is stored.
// They hold no secret: of the tokens, only whether there is one.
type Fields struct {
	// IssuesTokens: the connection's auth mode obtains tokens (every mode
	// but the static ones, an API key or basic credentials).
	IssuesTokens bool
	// OAuth2: the authorization code mode, renewed with a refresh token
	// (the other token modes renew with credentials they keep).
	OAuth2          bool
	HasAccessToken  bool
	HasRefreshToken bool
	ExpiresAt       time.Time // of the access token; zero: it does not expire
	// RefreshTokenExpiry: the last token response says the refresh token
	// dies when unused.
	RefreshTokenExpiry bool
	UpdatedAt          time.Time
	LastRefreshedAt    time.Time
	Status             Status
	NextRefreshAt      time.Time
	// Seed is the connection's own number for the jitter (a hash of its
	// key and its token's expiry; zero: a random jitter), so that a save
	// that changes neither keeps the time a save before it chose.
	Seed uint64
}

// canRefresh reports whether the engine has the means to renew the token.
func (f *Fields) canRefresh() bool {
	return f.IssuesTokens && (!f.OAuth2 || f.HasRefreshToken)
}

// refreshTokenExpires reports whether the refresh token dies when unused,
// as the provider says in its token response.
func (f *Fields) refreshTokenExpires() bool {
	return f.OAuth2 && f.HasRefreshToken && f.RefreshTokenExpiry
}

// State is the refresh status; connections that never failed say ok.
func (f *Fields) State() Status {
	if f.Status == "" {
		return OK
	}
	return f.Status
}

// Settings are the mount's configuration as scheduling reads it.
type Settings struct {
	// Margin: how long before its expiry a token is renewed.
	Margin time.Duration
	// IdleInterval: how often a refresh token that dies when unused is
	// used; zero never.
	IdleInterval time.Duration
}

// Backoff is the wait after the n-th failure in a row.
func backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if n > 8 { // 30s << 7 already exceeds the cap
		return BackoffMax
	}
	return min(backoffBase<<(n-1), BackoffMax)
}

// Failure is a failed refresh as the rules read it: plain values its
// caller takes from the error, so that the rules know neither the error
// kinds of the plugin nor the provider client's types.
type Failure struct {
	// Message is the failure as stored and shown; the caller has removed
	// the request's secrets from it already.
	Message string
	// Reauthorize: the provider refused the grant itself, or there is no
	// means to refresh; only a new authorization helps.
	Reauthorize bool
	// RetryAt is when the provider asked to be called again (Retry-After);
	// zero when it did not.
	RetryAt time.Time
}

// Standing is a connection's refresh state after a failure.
type Standing struct {
	Status        Status
	Failures      int // in a row
	LastError     string
	NextRefreshAt time.Time // zero: the background does not retry
}

// AfterFailure is the standing of a connection that had failed failures
// times in a row and failed again with f: backoff while it may succeed,
// exhausted after maxFailures in a row, reauthorization when only the
// customer can help.
func AfterFailure(failures int, f Failure, maxFailures int, now time.Time) Standing {
	s := Standing{Failures: failures + 1, LastError: truncateRunes(f.Message, MaxErrorLen)}
	switch {
	case f.Reauthorize:
		s.Status = Reauth
	case s.Failures >= maxFailures:
		s.Status = Exhausted
	default:
		s.Status = Failing
		s.NextRefreshAt = now.Add(backoff(s.Failures))
		// A provider that says when to come back is believed when that is
		// later than the backoff, up to the backoff's cap.
		if f.RetryAt.After(s.NextRefreshAt) {
			s.NextRefreshAt = minTime(f.RetryAt, now.Add(BackoffMax))
		}
	}
	return s
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
