// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/armon/go-metrics"
)

// refreshEngine decides when connections are refreshed in the background.
// Vault calls the backend's PeriodicFunc about once a minute; each tick pops
// the connections whose next_refresh_at has come from an in-memory priority
// queue (as Vault's database engine schedules static-role rotations) and
// refreshes them on a bounded pool of workers. The queue holds only keys,
// never a secret: a worker re-reads the entry under its lock. It is rebuilt
// from storage at start, in the background, and kept current by every save
// and delete through the scheduler interface, so a tick with nothing due
// costs no storage operation.
type refreshEngine struct {
	queue *refreshQueue

	mu       sync.Mutex
	statuses map[string]refreshStatus // by connection key, token modes only

	ready     atomic.Bool // the queue holds every stored connection
	refreshes atomic.Int64
	failures  atomic.Int64
	tickLock  sync.Mutex
	cancel    context.CancelFunc

	// jitter returns a duration in [0, max): spreads the refreshes of
	// tokens issued together. Replaceable in tests.
	jitter func(max time.Duration) time.Duration
}

func newRefreshEngine() *refreshEngine {
	return &refreshEngine{
		queue:    newRefreshQueue(),
		statuses: map[string]refreshStatus{},
		jitter: func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return rand.N(max)
		},
	}
}

// refreshStats is the engine as the status path shows it.
type refreshStats struct {
	QueueSize     int
	QueueReady    bool
	NextRefreshAt time.Time
	StatusCounts  map[string]int
	Refreshes     int64
	Failures      int64
}

// Stats returns the engine's current figures.
func (e *refreshEngine) Stats() refreshStats {
	return refreshStats{
		QueueSize:     e.queue.Len(),
		QueueReady:    e.ready.Load(),
		NextRefreshAt: e.next(),
		StatusCounts:  e.statusCounts(),
		Refreshes:     e.refreshes.Load(),
		Failures:      e.failures.Load(),
	}
}

// schedule sets c.NextRefreshAt. A failing connection keeps the retry time
// its failure set; one the background gave up on gets none.
func (e *refreshEngine) schedule(c *connectionEntry, cfg *configEntry, now time.Time) {
	f := c.scheduleFields()
	c.NextRefreshAt = e.nextRefresh(&f, cfg, now)
}

// nextRefresh is when the background should refresh a connection with the
// fields f: schedule's rule, which the start-up rebuild applies to the
// fields it decoded alone.
func (e *refreshEngine) nextRefresh(f *scheduleFields, cfg *configEntry, now time.Time) time.Time {
	switch {
	case !f.canRefresh(), f.RefreshStatus == refreshExhausted, f.RefreshStatus == refreshReauth:
		return time.Time{}
	case f.RefreshStatus == refreshFailing:
		return f.NextRefreshAt
	case !f.HasAccessToken:
		return now
	}
	var next time.Time
	if !f.ExpiresAt.IsZero() {
		next = f.ExpiresAt.Add(-cfg.RefreshMargin - e.jitter(cfg.RefreshMargin/4))
	}
	if f.refreshTokenExpires() && cfg.IdleRefreshInterval > 0 {
		last := f.LastRefreshedAt
		if last.IsZero() {
			last = f.UpdatedAt
		}
		if idle := last.Add(cfg.IdleRefreshInterval); next.IsZero() || idle.Before(next) {
			next = idle
		}
	}
	return next
}

// track puts c's next refresh in the queue (replacing any earlier one) and
// records its status. A save wins over the start-up rebuild, which may
// queue an older copy only where no save has queued one (queueIfAbsent).
func (e *refreshEngine) track(c *connectionEntry) {
	key := connectionKey(c.Integration, c.ConnectionID)
	if c.NextRefreshAt.IsZero() {
		e.queue.remove(key)
	} else {
		e.queue.set(key, c.NextRefreshAt.UnixMilli())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.AuthMode.HasTokens() {
		e.statuses[key] = c.refreshState()
	} else {
		delete(e.statuses, key)
	}
}

// queueIfAbsent queues the connection at key, with the fields f the
// rebuild read, unless a save has queued it already: the start-up rebuild
// must not undo what a save did meanwhile.
func (e *refreshEngine) queueIfAbsent(key string, f *scheduleFields, next time.Time) {
	if !next.IsZero() && !e.queue.pushIfAbsent(key, next.UnixMilli()) {
		return
	}
	if !f.AuthMode.HasTokens() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, seen := e.statuses[key]; !seen {
		e.statuses[key] = f.refreshState()
	}
}

func (e *refreshEngine) untrack(key string) {
	e.queue.remove(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.statuses, key)
}

// popDue removes and returns the keys whose time has come.
func (e *refreshEngine) popDue(now time.Time) []string {
	return e.queue.popUntil(now.UnixMilli())
}

// next returns the earliest scheduled refresh, zero when none.
func (e *refreshEngine) next() time.Time {
	p, ok := e.queue.first()
	if !ok {
		return time.Time{}
	}
	return time.UnixMilli(p).UTC()
}

// statusCounts counts the token connections by refresh status.
func (e *refreshEngine) statusCounts() map[string]int {
	counts := make(map[string]int, len(allRefreshStatuses))
	for _, s := range allRefreshStatuses {
		counts[string(s)] = 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.statuses {
		counts[string(s)]++
	}
	return counts
}

// recordOutcome counts one refresh.
func (e *refreshEngine) recordOutcome(ok bool) {
	if ok {
		e.refreshes.Add(1)
	} else {
		e.failures.Add(1)
	}
}

// runTick refreshes every connection whose time has come, at most
// concurrency at a time, and returns when all are done. A tick that finds
// the previous one still running leaves the work to it.
func (e *refreshEngine) runTick(now time.Time, concurrency int, refresh func(key string)) {
	if !e.tickLock.TryLock() {
		return
	}
	defer e.tickLock.Unlock()

	metrics.SetGauge([]string{"connect", "refresh", "queue_depth"}, float32(e.queue.Len()))
	due := e.popDue(now)
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

// rebuild queues every stored connection from the scheduling fields each
// hands it (the store decodes no more of an entry); saves that happen
// meanwhile queue themselves and win (queueIfAbsent). each may call visit
// from several goroutines at once.
func (e *refreshEngine) rebuild(each func(visit func(key string, f scheduleFields)) error, cfg *configEntry, now func() time.Time) error {
	return each(func(key string, f scheduleFields) {
		next := f.NextRefreshAt
		if next.IsZero() && f.RefreshStatus == "" {
			next = e.nextRefresh(&f, cfg, now()) // stored before scheduling existed
		}
		e.queueIfAbsent(key, &f, next)
	})
}

// start builds the queue in the background, so that the plugin serves reads
// at once; stop cancels a build in progress.
func (e *refreshEngine) start(build func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() {
		if build(ctx) == nil {
			e.ready.Store(true)
		}
	}()
}

func (e *refreshEngine) stop() {
	if e.cancel != nil {
		e.cancel()
	}
}
