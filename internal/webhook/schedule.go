// SPDX-License-Identifier: MPL-2.0

package webhook

import (
	"math/rand/v2"
	"time"
)

// Schedule says when a failed delivery is tried again and when it is given
// up ("dead").
type Schedule struct {
	// Delays are the waits after the first, second, … failed attempt.
	Delays []time.Duration
	// Every is the wait after each failure beyond Delays.
	Every time.Duration
	// GiveUpAfter is how long after the first attempt a delivery may still
	// be tried; a retry that would come later is not made.
	GiveUpAfter time.Duration
	// Jitter spreads each wait by up to this fraction either way, so that
	// the retries of many events failing together do not arrive together.
	Jitter float64
}

// DefaultSchedule is about 5 s, 30 s, 2 min, 10 min, 30 min and 1 h, then
// hourly until 24 h after the first attempt, with 10% jitter.
var DefaultSchedule = Schedule{
	Delays: []time.Duration{
		5 * time.Second, 30 * time.Second, 2 * time.Minute,
		10 * time.Minute, 30 * time.Minute, time.Hour,
	},
	Every:       time.Hour,
	GiveUpAfter: 24 * time.Hour,
	Jitter:      0.1,
}

// Next returns when to try again after failures failed attempts (1 after
// the first), the last of them at lastAttempt, the first at firstAttempt;
// ok is false when the delivery is dead. rnd returns a number in [0, 1);
// nil means math/rand.
func (s Schedule) Next(firstAttempt, lastAttempt time.Time, failures int, rnd func() float64) (at time.Time, ok bool) {
	if failures < 1 {
		return lastAttempt, true
	}
	wait := s.Every
	if failures <= len(s.Delays) {
		wait = s.Delays[failures-1]
	}
	if s.Jitter > 0 {
		if rnd == nil {
			rnd = rand.Float64
		}
		wait += time.Duration((rnd()*2 - 1) * s.Jitter * float64(wait))
	}
	at = lastAttempt.Add(wait)
	if at.Sub(firstAttempt) > s.GiveUpAfter {
		return time.Time{}, false
	}
	return at, true
}
