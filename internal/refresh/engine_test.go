// SPDX-License-Identifier: MPL-2.0

package refresh

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var settings = Settings{Margin: 15 * time.Minute, IdleInterval: 24 * time.Hour}

// noJitter is an engine whose schedules are exact.
func noJitter() *Engine {
	e := NewEngine()
	e.SetJitter(func(time.Duration) time.Duration { return 0 })
	return e
}

func TestNextRefresh(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	token := Fields{IssuesTokens: true, OAuth2: true, HasAccessToken: true, HasRefreshToken: true, ExpiresAt: now.Add(time.Hour)}
	with := func(change func(*Fields)) Fields { f := token; change(&f); return f }
	for _, tc := range []struct {
		name string
		f    Fields
		want time.Time
	}{
		{"margin before expiry", token, now.Add(45 * time.Minute)},
		{"static credentials", Fields{HasAccessToken: true, ExpiresAt: now.Add(time.Hour)}, time.Time{}},
		{"no refresh token", with(func(f *Fields) { f.HasRefreshToken = false }), time.Time{}},
		{"client credentials need none", with(func(f *Fields) { f.OAuth2, f.HasRefreshToken = false, false }), now.Add(45 * time.Minute)},
		{"no expiry", with(func(f *Fields) { f.ExpiresAt = time.Time{} }), time.Time{}},
		{"no token yet", with(func(f *Fields) { f.HasAccessToken = false }), now},
		{"exhausted", with(func(f *Fields) { f.Status = Exhausted }), time.Time{}},
		{"reauthorization", with(func(f *Fields) { f.Status = Reauth }), time.Time{}},
		{"failing keeps its retry", with(func(f *Fields) { f.Status, f.NextRefreshAt = Failing, now.Add(time.Minute) }), now.Add(time.Minute)},
		{"idle refresh token, sooner", with(func(f *Fields) {
			f.RefreshTokenExpiry, f.ExpiresAt, f.LastRefreshedAt = true, time.Time{}, now.Add(-23*time.Hour)
		}), now.Add(time.Hour)},
		{"idle refresh token, last write counts when never refreshed", with(func(f *Fields) {
			f.RefreshTokenExpiry, f.ExpiresAt, f.UpdatedAt = true, now.Add(48*time.Hour), now
		}), now.Add(24 * time.Hour)},
	} {
		if got := noJitter().NextRefresh(&tc.f, settings, now); !got.Equal(tc.want) {
			t.Errorf("%s: next %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestTrackAndUntrack(t *testing.T) {
	e := NewEngine()
	at := time.UnixMilli(time.Now().UnixMilli()).UTC()
	e.Track("a", &Fields{IssuesTokens: true, NextRefreshAt: at})
	e.Track("a", &Fields{IssuesTokens: true, NextRefreshAt: at.Add(time.Minute), Status: Failing})
	if got, ok := e.Scheduled("a"); !ok || !got.Equal(at.Add(time.Minute)) || e.QueueLen() != 1 {
		t.Fatalf("scheduled %v %v, %d queued: want the later time, once", got, ok, e.QueueLen())
	}
	e.Track("b", &Fields{IssuesTokens: true}) // not scheduled, but counted
	e.Track("c", &Fields{})                   // static credentials: neither
	s := e.Stats()
	if s.QueueSize != 1 || s.StatusCounts["failing"] != 1 || s.StatusCounts["ok"] != 1 || len(s.StatusCounts) != len(allStatuses) {
		t.Fatalf("stats %+v", s)
	}
	e.Untrack("a")
	if _, ok := e.Scheduled("a"); ok || e.Stats().StatusCounts["failing"] != 0 {
		t.Fatal("an untracked connection is still queued or counted")
	}
}

// The check of every stored connection at start queues what the marks
// left out and brings forward what they put off, never later: a save that
// queued a connection meanwhile keeps its status, and its time unless the
// copy the check read is earlier (a refresh that finds itself early only
// reschedules).
func TestCheckBringsForwardAndNeverPutsOff(t *testing.T) {
	e := noJitter()
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	e.Restore("marked-late", OK, now.Add(3*time.Hour))
	e.Restore("marked-early", OK, now.Add(time.Minute))
	e.Restore("exhausted", Exhausted, time.Time{})
	saved := now.Add(2 * time.Hour)
	err := e.Check(func(visit func(string, Fields)) error {
		e.Track("k", &Fields{IssuesTokens: true, NextRefreshAt: saved})
		visit("k", Fields{IssuesTokens: true, Status: Failing, NextRefreshAt: now.Add(time.Minute)})
		visit("marked-late", Fields{IssuesTokens: true, NextRefreshAt: now.Add(time.Hour)})
		visit("marked-early", Fields{IssuesTokens: true, NextRefreshAt: now.Add(time.Hour)})
		visit("exhausted", Fields{IssuesTokens: true, NextRefreshAt: now.Add(10 * time.Minute)})
		visit("unmarked", Fields{IssuesTokens: true, NextRefreshAt: now.Add(20 * time.Minute)})
		// Stored before scheduling existed: no next time, no status.
		visit("old", Fields{IssuesTokens: true, HasAccessToken: true, ExpiresAt: now.Add(time.Hour)})
		return nil
	}, settings, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{
		"k":            now.Add(time.Minute), // the earlier copy: early, never late
		"marked-late":  now.Add(time.Hour),
		"marked-early": now.Add(time.Minute),
		"exhausted":    now.Add(10 * time.Minute),
		"unmarked":     now.Add(20 * time.Minute),
		"old":          now.Add(45 * time.Minute),
	}
	for key, at := range want {
		if got, ok := e.Scheduled(key); !ok || !got.Equal(at) {
			t.Errorf("%s queued at %v (%v), want %v", key, got, ok, at)
		}
	}
	if c := e.Stats().StatusCounts; c["failing"] != 0 || c["exhausted"] != 1 || c["ok"] != 5 {
		t.Fatalf("the check replaced a status it had: %v", c)
	}
}

// Restore queues a connection from its mark unless a save queued it.
func TestRestoreNeverUndoesASave(t *testing.T) {
	e := noJitter()
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	e.Track("k", &Fields{IssuesTokens: true, NextRefreshAt: now.Add(time.Hour)})
	e.Restore("k", Failing, now.Add(time.Minute))
	e.Restore("never", Reauth, time.Time{})
	if got, _ := e.Scheduled("k"); !got.Equal(now.Add(time.Hour)) {
		t.Fatalf("a mark moved a saved connection to %v", got)
	}
	if _, ok := e.Scheduled("never"); ok {
		t.Fatal("a mark with no next refresh was queued")
	}
	if c := e.Stats().StatusCounts; c["failing"] != 0 || c["reauthorization_required"] != 1 {
		t.Fatalf("statuses %v", c)
	}
}

func TestRunTickRefreshesWhatIsDueOnBoundedWorkers(t *testing.T) {
	e := NewEngine()
	now := time.Now()
	for i, key := range []string{"a", "b", "c", "d"} {
		e.Track(key, &Fields{IssuesTokens: true, NextRefreshAt: now.Add(time.Duration(i-2) * time.Minute)})
	}
	var (
		mu            sync.Mutex
		refreshed     []string
		inFlight, top atomic.Int64
	)
	e.RunTick(now, 2, func(key string) {
		if n := inFlight.Add(1); n > top.Load() {
			top.Store(n)
		}
		time.Sleep(5 * time.Millisecond)
		inFlight.Add(-1)
		mu.Lock()
		refreshed = append(refreshed, key)
		mu.Unlock()
	})
	slices.Sort(refreshed)
	if !slices.Equal(refreshed, []string{"a", "b", "c"}) || top.Load() > 2 {
		t.Fatalf("refreshed %v with up to %d at once, want a, b, c with at most 2", refreshed, top.Load())
	}
	if e.QueueLen() != 1 {
		t.Fatalf("%d queued after the tick, want the one not due", e.QueueLen())
	}
}

func TestStartIsReadyOnlyAfterABuild(t *testing.T) {
	e := NewEngine()
	release := make(chan struct{})
	done := make(chan struct{})
	marked := make(chan struct{})
	e.Start(func(ctx context.Context, ready func()) error {
		defer close(done)
		<-release
		ready() // from the marks
		marked <- struct{}{}
		<-release
		return nil
	})
	if e.Ready() {
		t.Fatal("ready before the build finished")
	}
	release <- struct{}{}
	<-marked
	if !e.Ready() || e.Stats().QueueChecked {
		t.Fatalf("after ready(): ready %v, checked %v; want ready, not checked", e.Ready(), e.Stats().QueueChecked)
	}
	close(release)
	<-done
	for deadline := time.Now().Add(5 * time.Second); !e.Stats().QueueChecked; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not checked after the build")
		}
	}

	failed := NewEngine()
	stopped := make(chan struct{})
	failed.Start(func(ctx context.Context, _ func()) error {
		defer close(stopped)
		<-ctx.Done()
		return errors.New("cancelled")
	})
	failed.Stop()
	<-stopped
	time.Sleep(10 * time.Millisecond)
	if failed.Ready() {
		t.Fatal("a stopped build made the engine ready")
	}
}

// A build that failed is run again by Recheck, once at a time, until it
// checks the queue; a stopped engine runs none.
func TestRecheckRunsAFailedBuildAgain(t *testing.T) {
	e := NewEngine()
	failed := make(chan struct{})
	e.Start(func(ctx context.Context, _ func()) error {
		defer close(failed)
		return errors.New("storage unavailable")
	})
	<-failed
	for deadline := time.Now().Add(5 * time.Second); e.building.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the failed build still runs")
		}
	}
	var runs atomic.Int32
	release := make(chan struct{})
	check := func(ctx context.Context, ready func()) error {
		runs.Add(1)
		<-release
		return nil
	}
	e.Recheck(time.Now(), check)
	e.Recheck(time.Now(), check) // one runs: no second
	close(release)
	for deadline := time.Now().Add(5 * time.Second); !e.Checked(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not checked after the recheck")
		}
	}
	e.Recheck(time.Now(), check) // checked: nothing to do
	time.Sleep(10 * time.Millisecond)
	if n := runs.Load(); n != 1 || !e.Ready() {
		t.Fatalf("%d checks ran, ready %v; want 1, ready", n, e.Ready())
	}

	stopped := NewEngine()
	stopped.Start(func(ctx context.Context, _ func()) error { return errors.New("failed") })
	stopped.Stop()
	for stopped.building.Load() {
		time.Sleep(time.Millisecond)
	}
	stopped.Recheck(time.Now(), func(context.Context, func()) error { t.Error("a stopped engine ran a check"); return nil })
	time.Sleep(10 * time.Millisecond)
}
