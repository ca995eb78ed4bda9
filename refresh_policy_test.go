// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/refresh"
)

// The rules read a provider's failure through the base layer's interfaces;
// the provider client's error must keep implementing them, or an
// invalid_grant would silently count as a retryable failure.
var (
	_ grantRefusal = (*provider.Error)(nil)
	_ retryHint    = (*provider.Error)(nil)
)

// stubFailure is a token request's failure as the rules see it.
type stubFailure struct {
	invalidGrant bool
	retryAt      time.Time
}

func (f stubFailure) Error() string      { return "token request failed" }
func (f stubFailure) InvalidGrant() bool { return f.invalidGrant }
func (f stubFailure) RetryAt() time.Time { return f.retryAt }

func TestRecordFailureStates(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := &configEntry{MaxRefreshFailures: 3}
	wrapped := func(err error) error {
		return &engineError{kind: errProviderRefused, msg: err.Error(), cause: fmt.Errorf("refresh: %w", err)}
	}
	for _, tc := range []struct {
		name      string
		failures  int
		cause     error
		status    refreshStatus
		nextAfter time.Duration // 0: not scheduled
	}{
		{"first failure backs off", 0, wrapped(stubFailure{}), refreshFailing, 30 * time.Second},
		{"second failure doubles", 1, wrapped(stubFailure{}), refreshFailing, time.Minute},
		{"max failures exhaust", 2, wrapped(stubFailure{}), refreshExhausted, 0},
		{"invalid grant needs reauthorization", 0, wrapped(stubFailure{invalidGrant: true}), refreshReauth, 0},
		{"no refresh token needs reauthorization", 0, &engineError{kind: errNotRefreshable, msg: "no"}, refreshReauth, 0},
		{"a later Retry-After is believed", 0, wrapped(stubFailure{retryAt: now.Add(10 * time.Minute)}), refreshFailing, 10 * time.Minute},
		{"an earlier Retry-After is not", 0, wrapped(stubFailure{retryAt: now.Add(time.Second)}), refreshFailing, 30 * time.Second},
		{"Retry-After is capped", 0, wrapped(stubFailure{retryAt: now.Add(24 * time.Hour)}), refreshFailing, refresh.BackoffMax},
		{"a plain error backs off", 0, errors.New("storage"), refreshFailing, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &connectionEntry{RefreshFailures: tc.failures}
			recordFailure(c, tc.cause, cfg, now)
			if c.RefreshStatus != tc.status || c.RefreshFailures != tc.failures+1 {
				t.Fatalf("status %s/%d, want %s/%d", c.RefreshStatus, c.RefreshFailures, tc.status, tc.failures+1)
			}
			if tc.nextAfter == 0 {
				if !c.NextRefreshAt.IsZero() {
					t.Fatalf("scheduled at %v, want not scheduled", c.NextRefreshAt)
				}
			} else if got := c.NextRefreshAt.Sub(now); got != tc.nextAfter {
				t.Fatalf("retry in %v, want %v", got, tc.nextAfter)
			}
			if c.LastRefreshError != tc.cause.Error() {
				t.Errorf("last_refresh_error = %q", c.LastRefreshError)
			}
		})
	}
}

func TestRefreshDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	conn := func(mode catalog.AuthMode, access string, exp time.Time) *connectionEntry {
		return &connectionEntry{AuthMode: mode, Credentials: credentials{AccessToken: access, ExpiresAt: exp}}
	}
	cases := []struct {
		name string
		c    *connectionEntry
		want bool
	}{
		{"api key", conn(catalog.APIKey, "", time.Time{}), false},
		{"no expiry", conn(catalog.OAuth2, "a", time.Time{}), false},
		{"outside margin", conn(catalog.OAuth2, "a", now.Add(16*time.Minute)), false},
		{"at margin", conn(catalog.OAuth2, "a", now.Add(15*time.Minute)), true},
		{"expired", conn(catalog.OAuth2, "a", now.Add(-time.Second)), true},
		{"cc without token", conn(catalog.OAuth2CC, "", time.Time{}), true},
	}
	for _, tc := range cases {
		if got := refreshDue(tc.c, 15*time.Minute, now); got != tc.want {
			t.Errorf("%s: refreshDue = %v, want %v", tc.name, got, tc.want)
		}
	}
}
