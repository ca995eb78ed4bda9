// SPDX-License-Identifier: MPL-2.0

package refresh

import (
	"strings"
	"testing"
	"time"
)

func TestBackoffSequence(t *testing.T) {
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour, time.Hour}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if backoff(100) != time.Hour {
		t.Error("Backoff does not cap at an hour")
	}
}

// The failure rules on plain values; the plugin's side (which error is a
// reauthorization, where a Retry-After comes from) is tested in the root
// package's TestRecordFailureStates.
func TestAfterFailure(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		failures  int
		f         Failure
		status    Status
		nextAfter time.Duration // 0: not scheduled
	}{
		{"first failure backs off", 0, Failure{}, Failing, 30 * time.Second},
		{"third failure backs off longer", 2, Failure{}, Failing, 2 * time.Minute},
		{"max failures exhaust", 4, Failure{}, Exhausted, 0},
		{"reauthorization before exhaustion", 4, Failure{Reauthorize: true}, Reauth, 0},
		{"a later Retry-After is believed", 0, Failure{RetryAt: now.Add(10 * time.Minute)}, Failing, 10 * time.Minute},
		{"an earlier Retry-After is not", 0, Failure{RetryAt: now.Add(time.Second)}, Failing, 30 * time.Second},
		{"Retry-After is capped", 0, Failure{RetryAt: now.Add(24 * time.Hour)}, Failing, BackoffMax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.Message = "token request failed"
			s := AfterFailure(tc.failures, tc.f, 5, now)
			if s.Status != tc.status || s.Failures != tc.failures+1 || s.LastError != tc.f.Message {
				t.Fatalf("standing %+v, want %s after %d failures", s, tc.status, tc.failures+1)
			}
			if tc.nextAfter == 0 {
				if !s.NextRefreshAt.IsZero() {
					t.Fatalf("scheduled at %v, want not scheduled", s.NextRefreshAt)
				}
			} else if got := s.NextRefreshAt.Sub(now); got != tc.nextAfter {
				t.Fatalf("retry in %v, want %v", got, tc.nextAfter)
			}
		})
	}
}

func TestAfterFailureBoundsTheError(t *testing.T) {
	long := strings.Repeat("é", MaxErrorLen+10)
	s := AfterFailure(0, Failure{Message: long}, 5, time.Now())
	if got := []rune(s.LastError); len(got) != MaxErrorLen+1 || got[MaxErrorLen] != '…' {
		t.Fatalf("last error of %d runes, want %d and an ellipsis", len(got), MaxErrorLen+1)
	}
	if s := AfterFailure(0, Failure{Message: "short"}, 5, time.Now()); s.LastError != "short" {
		t.Fatalf("short error %q changed", s.LastError)
	}
}

func TestFieldsState(t *testing.T) {
	if (&Fields{}).State() != OK {
		t.Fatal("a connection that never failed is not ok")
	}
	if (&Fields{Status: Failing}).State() != Failing {
		t.Fatal("a failing connection's status is lost")
	}
}
