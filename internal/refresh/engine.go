// SPDX-License-Identifier: MPL-2.0

// Package refresh decides when connections are refreshed in the background:
// the queue of their next refreshes, the rules that set them and the
// states a failure leaves. It takes plain values (a connection's key, the
// fields scheduling reads, the mount's settings) and knows nothing of Vault
// or of how connections are stored; the plugin's connection store tells it
// of every save and delete.
package refresh

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/armon/go-metrics"
)

// Engine decides when connections are refreshed in the background. Vault
// calls the plugin's PeriodicFunc about once a minute; each tick pops
// the connections whose next_refresh_at has come from an in-memory priority
// queue (as Vault's database engine schedules static-role rotations) and
// refreshes them on a bounded pool of workers. The queue holds only keys,
// never a secret: a worker re-reads the entry under its lock. It is rebuilt
// at start, in the background (from the connections' schedule marks when
// the store keeps them, then checked against every stored connection), and
// kept current by every save and delete (Track, Untrack), so a tick with
// nothing due costs no storage operation.
type Engine struct {
	queue *refreshQueue

	mu       sync.Mutex
	statuses map[string]Status // by connection key, token modes only

	ready     atomic.Bool // the queue holds every stored connection
	checked   atomic.Bool // and every stored connection was read since start
	refreshes atomic.Int64
	failures  atomic.Int64
	tickLock  sync.Mutex
	cancel    context.CancelFunc
	// building: a build (Start) or a check (Recheck) runs; buildCtx is
	// Start's, cancelled by Stop (under mu).
	building atomic.Bool
	buildCtx context.Context
	// buildFailures counts the builds and checks that failed in a row;
	// recheckAt is when Recheck may run the next (under mu).
	buildFailures int
	recheckAt     time.Time

	// jitter returns a duration in [0, max) drawn from seed (a random one
	// where seed is zero): spreads the refreshes of tokens issued
	// together. Replaceable in tests.
	jitter func(seed uint64, max time.Duration) time.Duration
}

// NewEngine returns an engine with an empty queue, not ready until a
// build started by Start has queued every stored connection.
func NewEngine() *Engine {
	return &Engine{
		queue:    newRefreshQueue(),
		statuses: map[string]Status{},
		jitter: func(seed uint64, max time.Duration) time.Duration {
			switch {
			case max <= 0:
				return 0
			case seed == 0:
				return rand.N(max)
			}
			return time.Duration(seed % uint64(max))
		},
	}
}

// SetJitter replaces the jitter (tests make schedules exact with it). Call
// it before the engine is used.
func (e *Engine) SetJitter(jitter func(max time.Duration) time.Duration) {
	e.jitter = func(_ uint64, max time.Duration) time.Duration { return jitter(max) }
}

// Stats is the engine as the status path shows it.
type Stats struct {
	QueueSize     int
	QueueReady    bool
	QueueChecked  bool
	NextRefreshAt time.Time
	StatusCounts  map[string]int
	Refreshes     int64
	Failures      int64
}

// Stats returns the engine's current figures.
func (e *Engine) Stats() Stats {
	return Stats{
		QueueSize:     e.queue.Len(),
		QueueReady:    e.ready.Load(),
		QueueChecked:  e.checked.Load(),
		NextRefreshAt: e.next(),
		StatusCounts:  e.statusCounts(),
		Refreshes:     e.refreshes.Load(),
		Failures:      e.failures.Load(),
	}
}

// Ready reports whether the queue holds every stored connection: the
// build Start began has finished.
func (e *Engine) Ready() bool {
	return e.ready.Load()
}

// Checked reports whether every stored connection was read since start,
// the queue checked against it: the build Start began has finished.
func (e *Engine) Checked() bool {
	return e.checked.Load()
}

// QueueLen is the number of queued connections.
func (e *Engine) QueueLen() int {
	return e.queue.Len()
}

// Scheduled is when the connection at key is queued to be refreshed;
// false when it is not queued.
func (e *Engine) Scheduled(key string) (time.Time, bool) {
	e.queue.mu.Lock()
	defer e.queue.mu.Unlock()
	it, ok := e.queue.byKey[key]
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(it.Priority).UTC(), true
}

// NextRefresh is when the background should refresh a connection with the
// fields f: zero for one it cannot or must not refresh; a failing one keeps
// the retry time its failure set. Every save applies it, and the start-up
// start-up check to the fields it decoded of entries stored before scheduling
// existed.
func (e *Engine) NextRefresh(f *Fields, s Settings, now time.Time) time.Time {
	switch {
	case !f.canRefresh(), f.Status == Exhausted, f.Status == Reauth:
		return time.Time{}
	case f.Status == Failing:
		return f.NextRefreshAt
	case !f.HasAccessToken:
		return now
	}
	var next time.Time
	if !f.ExpiresAt.IsZero() {
		next = f.ExpiresAt.Add(-s.Margin - e.jitter(f.Seed, s.Margin/4))
	}
	if f.refreshTokenExpires() && s.IdleInterval > 0 {
		last := f.LastRefreshedAt
		if last.IsZero() {
			last = f.UpdatedAt
		}
		if idle := last.Add(s.IdleInterval); next.IsZero() || idle.Before(next) {
			next = idle
		}
	}
	return next
}

// Track puts the next refresh (f.NextRefreshAt) of the connection at key in
// the queue, replacing any earlier one, and records its status: the store
// calls it once the connection is saved. A save wins over the start-up
// restore from marks, which may queue an older copy only where no save has
// queued one (queueIfAbsent), and over the start-up check, which may only
// bring it forward (Check). It reads only f's IssuesTokens, Status and
// NextRefreshAt.
func (e *Engine) Track(key string, f *Fields) {
	if f.NextRefreshAt.IsZero() {
		e.queue.remove(key)
	} else {
		e.queue.set(key, f.NextRefreshAt.UnixMilli())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if f.IssuesTokens {
		e.statuses[key] = f.State()
	} else {
		delete(e.statuses, key)
	}
}

// queueIfAbsent queues the connection at key, with the fields f the
// start read, unless a save has queued it already: the start must not undo
// what a save did meanwhile.
func (e *Engine) queueIfAbsent(key string, f *Fields, next time.Time) {
	if !next.IsZero() && !e.queue.pushIfAbsent(key, next.UnixMilli()) {
		return
	}
	if !f.IssuesTokens {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, seen := e.statuses[key]; !seen {
		e.statuses[key] = f.State()
	}
}

// Untrack forgets a deleted connection.
func (e *Engine) Untrack(key string) {
	e.queue.remove(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.statuses, key)
}

// PopDue removes and returns, earliest first, the keys whose time has
// come: what a tick refreshes.
func (e *Engine) PopDue(now time.Time) []string {
	return e.queue.popUntil(now.UnixMilli())
}

// next returns the earliest scheduled refresh, zero when none.
func (e *Engine) next() time.Time {
	p, ok := e.queue.first()
	if !ok {
		return time.Time{}
	}
	return time.UnixMilli(p).UTC()
}

// statusCounts counts the token connections by refresh status.
func (e *Engine) statusCounts() map[string]int {
	counts := make(map[string]int, len(allStatuses))
	for _, s := range allStatuses {
		counts[string(s)] = 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.statuses {
		counts[string(s)]++
	}
	return counts
}

// RecordOutcome counts one refresh.
func (e *Engine) RecordOutcome(ok bool) {
	if ok {
		e.refreshes.Add(1)
	} else {
		e.failures.Add(1)
	}
}

// RunTick refreshes every connection whose time has come, at most
// concurrency at a time, and returns when all are done. A tick that finds
// the previous one still running leaves the work to it.
func (e *Engine) RunTick(now time.Time, concurrency int, refresh func(key string)) {
	if !e.tickLock.TryLock() {
		return
	}
	defer e.tickLock.Unlock()

	metrics.SetGauge([]string{"connect", "refresh", "queue_depth"}, float32(e.queue.Len()))
	due := e.PopDue(now)
	if len(due) == 0 {
		return
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(max(concurrency, 1), len(due)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range work {
				refresh(key)
			}
		}()
	}
	for _, key := range due {
		work <- key
	}
	close(work)
	wg.Wait()
}

// Restore queues the connection at key from what its schedule mark
// recorded (its status and next refresh, zero for none), unless a save has
// queued it already.
func (e *Engine) Restore(key string, status Status, next time.Time) {
	e.queueIfAbsent(key, &Fields{IssuesTokens: true, Status: status}, next)
}

// Check queues every stored connection from the scheduling fields each
// hands it (the store decodes no more of an entry), and brings forward a
// connection queued later than its fields say: a refresh that finds itself
// early only reschedules, one queued late may let a token lapse. So it
// corrects a queue restored from marks an earlier release did not keep,
// and a save meanwhile keeps its status. each may call visit from several
// goroutines at once.
func (e *Engine) Check(each func(visit func(key string, f Fields)) error, s Settings, now func() time.Time) error {
	return each(func(key string, f Fields) {
		next := f.NextRefreshAt
		if next.IsZero() && f.Status == "" {
			next = e.NextRefresh(&f, s, now())
		}
		if !next.IsZero() {
			e.queue.lower(key, next.UnixMilli())
		}
		e.queueIfAbsent(key, &f, time.Time{})
	})
}

// Start builds the queue in the background, so that the plugin serves
// reads at once. build calls ready once the queue holds every stored
// connection (from their marks, before it has read them all); the engine
// is ready then, or once build returns nil, and checked once build
// returns nil. Stop cancels a build in progress.
func (e *Engine) Start(build func(ctx context.Context, ready func()) error) {
	ctx, cancel := context.WithCancel(context.Background())
	e.mu.Lock()
	e.cancel, e.buildCtx = cancel, ctx
	e.mu.Unlock()
	e.building.Store(true)
	go e.build(ctx, time.Now(), build)
}

// Recheck runs check as Start ran its build, where that build (or the last
// check) ended without checking the queue, unless one runs or the engine
// was stopped: the periodic hook calls it, so that a check storage failed
// is tried again rather than never. The first is tried again at once, the
// next ones after pauses that double from recheckPause to recheckPauseMax:
// each reads every connection.
func (e *Engine) Recheck(now time.Time, check func(ctx context.Context, ready func()) error) {
	if e.checked.Load() {
		return
	}
	e.mu.Lock()
	ctx, due := e.buildCtx, !now.Before(e.recheckAt)
	e.mu.Unlock()
	if ctx == nil || ctx.Err() != nil || !due || !e.building.CompareAndSwap(false, true) {
		return
	}
	go e.build(ctx, now, check)
}

// Pauses between the checks Recheck runs after the second failure.
const (
	recheckPause    = time.Minute
	recheckPauseMax = time.Hour
)

// build runs a build or a check and records what it achieved; a failure's
// pause runs from began, by the clock of the Recheck that started it.
func (e *Engine) build(ctx context.Context, began time.Time, build func(ctx context.Context, ready func()) error) {
	defer e.building.Store(false)
	if build(ctx, func() { e.ready.Store(true) }) == nil {
		e.ready.Store(true)
		e.checked.Store(true)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.buildFailures++
	if e.buildFailures > 1 {
		e.recheckAt = began.Add(min(recheckPause<<min(e.buildFailures-2, 10), recheckPauseMax))
	}
}

// Stop cancels a queue build in progress.
func (e *Engine) Stop() {
	e.mu.Lock()
	cancel := e.cancel
	e.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
