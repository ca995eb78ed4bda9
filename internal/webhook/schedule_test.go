// SPDX-License-Identifier: MPL-2.0

package webhook

import (
	"testing"
	"time"
)

func TestScheduleDefault(t *testing.T) {
	first := time.Unix(1_800_000_000, 0)
	noJitter := func() float64 { return 0.5 } // (0.5*2-1) = 0: no jitter
	want := []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}
	last := first
	for i, w := range want {
		at, ok := DefaultSchedule.Next(first, last, i+1, noJitter)
		if !ok || at.Sub(last) != w {
			t.Fatalf("after failure %d: wait %v ok=%v, want %v", i+1, at.Sub(last), ok, w)
		}
		last = at
	}
	failures := len(want)
	for {
		failures++
		at, ok := DefaultSchedule.Next(first, last, failures, noJitter)
		if !ok {
			break
		}
		if at.Sub(last) != time.Hour {
			t.Fatalf("after failure %d: wait %v, want 1h", failures, at.Sub(last))
		}
		last = at
	}
	if last.Sub(first) > 24*time.Hour || last.Sub(first) < 23*time.Hour {
		t.Fatalf("last retry %v after the first attempt, want within the last hour of 24h", last.Sub(first))
	}
	// 6 listed retries reach 1h42m35s; hourly ones then fill to 24h.
	if attempts := failures; attempts != 29 {
		t.Fatalf("%d attempts before dead, want 29", attempts)
	}
	// Jitter spreads the wait by at most 10% either way.
	lo, _ := DefaultSchedule.Next(first, first, 2, func() float64 { return 0 })
	hi, _ := DefaultSchedule.Next(first, first, 2, func() float64 { return 0.999999 })
	if lo.Sub(first) != 27*time.Second || hi.Sub(first) < 32*time.Second || hi.Sub(first) > 33*time.Second {
		t.Fatalf("jittered 30s wait spans %v..%v", lo.Sub(first), hi.Sub(first))
	}
}
