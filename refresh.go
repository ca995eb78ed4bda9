package connect

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/queue"
)

// The refresh engine keeps tokens working without the application thinking
// about it, in two ways:
//
//   - on read: a read that finds its token within refresh_margin of expiry
//     refreshes it first (readConnection);
//   - in the background: Vault calls the backend's PeriodicFunc about once a
//     minute, and each tick refreshes the connections whose next_refresh_at
//     has come, on a bounded pool of workers (runRefreshTick).
//
// The background is driven by an in-memory priority queue of connection keys
// ordered by next_refresh_at, as Vault's database engine schedules static
// role rotations. It is built from storage when the plugin starts, in the
// background, and kept current by every save and delete of a connection.
// A tick pops only what is due, so with many connections and none due it
// does no storage operation for them at all.
//
// Whatever the trigger, one connection is refreshed by one request at a time:
// the refresh holds the connection's lock and re-reads the entry under it, and
// a waiter that then finds the token fresh returns it without asking the
// provider again.

// statusFailedDependency is returned when the provider is why a request
// cannot be served: the token has expired and the provider will not renew it.
const statusFailedDependency = http.StatusFailedDependency // 424

// errNotRefreshable is a connection without the means to renew its token.
var errNotRefreshable = errors.New("the connection has no refresh token; write new tokens to it or authorize it again")

// refreshStatus is a connection's standing with its provider.
type refreshStatus string

const (
	statusOK      refreshStatus = "ok"
	statusFailing refreshStatus = "failing" // retrying with backoff
	// statusExhausted: max_refresh_failures in a row; the background stops
	// until a forced refresh or a re-authorization succeeds.
	statusExhausted refreshStatus = "exhausted"
	// statusReauth: the provider refused the grant itself (invalid_grant);
	// only the customer can fix that, by authorizing again.
	statusReauth refreshStatus = "reauthorization_required"
)

var allRefreshStatuses = []refreshStatus{statusOK, statusFailing, statusExhausted, statusReauth}

// Backoff after failed refreshes: 30s, 1m, 2m, ... at most an hour.
const (
	backoffBase = 30 * time.Second
	backoffMax  = time.Hour
)

// trigger says why a refresh runs.
type trigger int

const (
	triggerRead       trigger = iota // a read found the token due
	triggerForced                    // the refresh path: whatever the expiry or state
	triggerBackground                // the queue said it is time
)

// rebuildWorkers bounds the storage reads in flight while the queue is
// rebuilt at start.
const rebuildWorkers = 16

// refreshEngine holds the background schedule and its counters.
type refreshEngine struct {
	queue *queue.PriorityQueue

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
		queue:    queue.New(),
		statuses: map[string]refreshStatus{},
		jitter: func(max time.Duration) time.Duration {
			if max <= 0 {
				return 0
			}
			return rand.N(max)
		},
	}
}

// refreshDue reports whether c's token should be renewed before a read
// returns it: it expires within margin, or there is none yet.
func refreshDue(c *connectionEntry, margin time.Duration, now time.Time) bool {
	if !c.AuthMode.hasTokens() {
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

// canRefresh reports whether the engine has the means to renew c's token.
func canRefresh(c *connectionEntry) bool {
	return c.AuthMode.hasTokens() && (c.AuthMode != authModeOAuth2 || c.Credentials.RefreshToken != "")
}

// refreshTokenExpires reports whether c's refresh token dies when unused,
// as the provider says in its token response.
func refreshTokenExpires(c *connectionEntry) bool {
	if c.AuthMode != authModeOAuth2 || c.Credentials.RefreshToken == "" {
		return false
	}
	for _, k := range []string{"refresh_token_expires_in", "refresh_expires_in", "x_refresh_token_expires_in"} {
		if _, ok := c.RawTokenResponse[k]; ok {
			return true
		}
	}
	return false
}

// refreshState is c's refresh status; entries that never failed say ok.
func (c *connectionEntry) refreshState() refreshStatus {
	if c.RefreshStatus == "" {
		return statusOK
	}
	return c.RefreshStatus
}

// blocked reports whether reads must not ask the provider for c now: it
// refused for good, or a retry is not due yet.
func blocked(c *connectionEntry, now time.Time) bool {
	switch c.RefreshStatus {
	case statusExhausted, statusReauth:
		return true
	case statusFailing:
		return now.Before(c.NextRefreshAt)
	}
	return false
}

// schedule sets c.NextRefreshAt. A failing connection keeps the retry time
// its failure set; one the background gave up on gets none.
func (e *refreshEngine) schedule(c *connectionEntry, cfg *configEntry, now time.Time) {
	switch {
	case !canRefresh(c), c.RefreshStatus == statusExhausted, c.RefreshStatus == statusReauth:
		c.NextRefreshAt = time.Time{}
		return
	case c.RefreshStatus == statusFailing:
		return
	case c.Credentials.AccessToken == "":
		c.NextRefreshAt = now
		return
	}
	var next time.Time
	if !c.Credentials.ExpiresAt.IsZero() {
		next = c.Credentials.ExpiresAt.Add(-cfg.RefreshMargin - e.jitter(cfg.RefreshMargin/4))
	}
	if refreshTokenExpires(c) && cfg.IdleRefreshInterval > 0 {
		last := c.LastRefreshedAt
		if last.IsZero() {
			last = c.UpdatedAt
		}
		if idle := last.Add(cfg.IdleRefreshInterval); next.IsZero() || idle.Before(next) {
			next = idle
		}
	}
	c.NextRefreshAt = next
}

// track puts c's next refresh in the queue (replacing any earlier one) and
// records its status.
func (e *refreshEngine) track(c *connectionEntry) {
	key := connectionKey(c.Integration, c.ConnectionID)
	e.queue.PopByKey(key)
	if !c.NextRefreshAt.IsZero() {
		// Only the key goes in; the entry is re-read under its lock when
		// due, so the queue never holds a secret or a stale copy. A save
		// wins over the start-up rebuild, which may have pushed an older
		// copy between the pop and this push.
		item := &queue.Item{Key: key, Priority: c.NextRefreshAt.UnixMilli()}
		if err := e.queue.Push(item); errors.Is(err, queue.ErrDuplicateItem) {
			e.queue.PopByKey(key)
			_ = e.queue.Push(item)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.AuthMode.hasTokens() {
		e.statuses[key] = c.refreshState()
	} else {
		delete(e.statuses, key)
	}
}

func (e *refreshEngine) untrack(key string) {
	e.queue.PopByKey(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.statuses, key)
}

// popDue removes and returns the keys whose time has come.
func (e *refreshEngine) popDue(now time.Time) []string {
	var due []string
	for {
		item, err := e.queue.Pop()
		if err != nil {
			return due // empty
		}
		if item.Priority > now.UnixMilli() {
			_ = e.queue.Push(item)
			return due
		}
		due = append(due, item.Key)
	}
}

// next returns the earliest scheduled refresh, zero when none.
func (e *refreshEngine) next() time.Time {
	item, err := e.queue.Pop()
	if err != nil {
		return time.Time{}
	}
	_ = e.queue.Push(item)
	return time.UnixMilli(item.Priority).UTC()
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

// recordFailure updates c's refresh state after a failed refresh.
func recordFailure(c *connectionEntry, err error, cfg *configEntry, now time.Time) {
	c.RefreshFailures++
	c.LastRefreshError = err.Error()
	var pe *providerError
	switch {
	case errors.As(err, &pe) && pe.Code == "invalid_grant", errors.Is(err, errNotRefreshable):
		c.RefreshStatus = statusReauth
		c.NextRefreshAt = time.Time{}
	case c.RefreshFailures >= cfg.MaxRefreshFailures:
		c.RefreshStatus = statusExhausted
		c.NextRefreshAt = time.Time{}
	default:
		c.RefreshStatus = statusFailing
		c.NextRefreshAt = now.Add(backoff(c.RefreshFailures))
	}
}

// readConnection returns a connection for a read, refreshing its token first
// when it is due. Warnings are for the response: the token works, but its
// renewal is failing. It returns nil, nil, nil when the connection does not
// exist.
func (b *backend) readConnection(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, []string, error) {
	c, err := b.connection(ctx, s, integration, id)
	if err != nil || c == nil {
		return nil, nil, err
	}
	cfg, err := b.config(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	now := b.now()
	if !refreshDue(c, cfg.RefreshMargin, now) {
		return c, refreshWarnings(c), nil
	}
	if !b.WriteSafeReplicationState() {
		// A performance standby cannot store a new token: Vault forwards
		// the read to the active node.
		return nil, nil, logical.ErrReadOnly
	}
	if blocked(c, now) {
		return servedWithoutRefresh(c, now)
	}
	return b.refreshConnection(ctx, s, integration, id, triggerRead)
}

// refreshWarnings says why a connection whose token still works needs
// attention.
func refreshWarnings(c *connectionEntry) []string {
	if c.refreshState() == statusOK {
		return nil
	}
	return []string{fmt.Sprintf("token refresh is %s after %d failure(s), returning the current token until it expires at %s: %s",
		c.RefreshStatus, c.RefreshFailures, formatTime(c.Credentials.ExpiresAt), c.LastRefreshError)}
}

// servedWithoutRefresh answers a read of a due connection that must not be
// refreshed now: its token while it works, else a 424 with the reason.
func servedWithoutRefresh(c *connectionEntry, now time.Time) (*connectionEntry, []string, error) {
	if !tokenExpired(c, now) {
		return c, refreshWarnings(c), nil
	}
	return nil, nil, logical.CodedError(statusFailedDependency, fmt.Sprintf(
		"token of connection %q has expired and refresh is %s after %d failure(s): %s; force a refresh at connections/%s/%s/refresh or authorize the connection again",
		c.ConnectionID, c.RefreshStatus, c.RefreshFailures, c.LastRefreshError, c.Integration, c.ConnectionID))
}

// refreshConnection renews a connection's token. It holds the connection's
// lock and re-reads the entry under it, so of many readers that find the same
// token due, one spends the refresh token and the others see its result.
func (b *backend) refreshConnection(ctx context.Context, s logical.Storage, integration, id string, why trigger) (*connectionEntry, []string, error) {
	// A provider that rotates refresh tokens has already spent the old one
	// when it answers, so the answer must be stored even if the caller has
	// gone away; only the provider timeout bounds the work.
	ctx = context.WithoutCancel(ctx)

	lock := b.connLock(integration, id)
	lock.Lock()
	defer lock.Unlock()

	c, err := b.loadConnection(ctx, s, integration, id)
	if err != nil || c == nil {
		return nil, nil, err
	}
	cfg, err := b.config(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	now := b.now()
	switch why {
	case triggerRead:
		if !refreshDue(c, cfg.RefreshMargin, now) {
			return c, refreshWarnings(c), nil // a concurrent reader refreshed it
		}
		if blocked(c, now) {
			return servedWithoutRefresh(c, now)
		}
	case triggerBackground:
		if c.NextRefreshAt.IsZero() || now.Before(c.NextRefreshAt) {
			b.engine.track(c) // rescheduled since it was queued
			return c, nil, nil
		}
	}
	if !c.AuthMode.hasTokens() {
		return nil, nil, logical.CodedError(http.StatusBadRequest, fmt.Sprintf("connection uses auth_mode %s, which has no token to refresh", c.AuthMode))
	}
	in, err := getIntegration(ctx, s, integration)
	if err != nil {
		return nil, nil, err
	}
	if in == nil {
		return nil, nil, fmt.Errorf("integration %q of connection %q no longer exists", integration, id)
	}

	start := time.Now()
	res, eff, err := b.obtainToken(ctx, s, in, c)
	labels := []metrics.Label{{Name: "integration", Value: integration}}
	metrics.MeasureSinceWithLabels([]string{"connect", "refresh", "latency"}, start, labels)
	if err != nil {
		return b.refreshFailed(ctx, s, c, cfg, err, why, labels)
	}
	applyToken(c, eff, res, b.now())
	if err := b.saveConnection(ctx, s, c); err != nil {
		return nil, nil, err
	}
	b.engine.refreshes.Add(1)
	metrics.IncrCounterWithLabels([]string{"connect", "refresh", "success"}, 1, labels)
	b.Logger().Debug("token refreshed", "integration", integration, "connection_id", id, "expires_at", formatTime(c.Credentials.ExpiresAt))
	return c, nil, nil
}

// refreshFailed records a failed refresh and answers the caller: the old
// token with a warning while it works (except to a forced refresh, which
// asked for a new one), else an error.
func (b *backend) refreshFailed(ctx context.Context, s logical.Storage, c *connectionEntry, cfg *configEntry, cause error, why trigger, labels []metrics.Label) (*connectionEntry, []string, error) {
	b.engine.failures.Add(1)
	metrics.IncrCounterWithLabels([]string{"connect", "refresh", "failure"}, 1, labels)
	now := b.now()
	recordFailure(c, cause, cfg, now)
	b.Logger().Warn("token refresh failed", "integration", c.Integration, "connection_id", c.ConnectionID,
		"refresh_status", c.RefreshStatus, "failures", c.RefreshFailures, "error", cause.Error())
	if err := b.saveConnection(ctx, s, c); err != nil {
		return nil, nil, err
	}
	if why != triggerForced && !tokenExpired(c, now) {
		return c, refreshWarnings(c), nil
	}
	// An explicit refresh of a connection that cannot be refreshed, or a
	// connection config that cannot fill the provider's URLs, is the
	// caller's to fix; otherwise the provider's side failed.
	status := statusFailedDependency
	var badCfg *badConfigError
	if (why == triggerForced && errors.Is(cause, errNotRefreshable)) || errors.As(cause, &badCfg) {
		status = http.StatusBadRequest
	}
	return nil, nil, logical.CodedError(status, fmt.Sprintf("token of connection %q could not be refreshed (%s): %s", c.ConnectionID, c.RefreshStatus, cause))
}

// runRefreshTick refreshes every connection whose time has come, at most
// refresh_concurrency at a time, and returns when all are done. A tick that
// finds the previous one still running leaves the work to it.
func (b *backend) runRefreshTick(ctx context.Context, s logical.Storage) error {
	if !b.engine.tickLock.TryLock() {
		return nil
	}
	defer b.engine.tickLock.Unlock()

	metrics.SetGauge([]string{"connect", "refresh", "queue_depth"}, float32(b.engine.queue.Len()))
	due := b.engine.popDue(b.now())
	if len(due) == 0 {
		return nil
	}
	cfg, err := b.config(ctx, s)
	if err != nil {
		return err
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(max(cfg.RefreshConcurrency, 1), len(due)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range work {
				b.backgroundRefresh(ctx, s, key)
			}
		}()
	}
	for _, key := range due {
		work <- key
	}
	close(work)
	wg.Wait()
	return nil
}

// backgroundRefresh refreshes one queued connection. Its outcome is in the
// connection's refresh state; errors are only logged.
func (b *backend) backgroundRefresh(ctx context.Context, s logical.Storage, key string) {
	integration, id, ok := strings.Cut(strings.TrimPrefix(key, connectionPrefix), "/")
	if !ok {
		return
	}
	if _, _, err := b.refreshConnection(ctx, s, integration, id, triggerBackground); err != nil {
		var coded logical.HTTPCodedError
		if !errors.As(err, &coded) { // provider failures were logged already
			b.Logger().Error("background refresh", "integration", integration, "connection_id", id, "error", err)
		}
	}
}

// initialize starts building the queue from storage in the background, so
// that the plugin serves reads at once.
func (b *backend) initialize(_ context.Context, req *logical.InitializationRequest) error {
	ctx, cancel := context.WithCancel(context.Background())
	b.engine.cancel = cancel
	go func() {
		start := time.Now()
		n, err := b.rebuildQueue(ctx, req.Storage)
		if err != nil {
			b.Logger().Error("building the refresh queue", "error", err, "connections", n)
			return
		}
		b.engine.ready.Store(true)
		b.Logger().Info("refresh queue built", "connections", n, "queued", b.engine.queue.Len(), "duration", time.Since(start))
	}()
	return nil
}

// rebuildQueue reads every connection and queues its next refresh. Saves that
// happen meanwhile queue themselves; a rebuilt item for the same key then
// fails to push as a duplicate, and the worker re-reads the entry anyway.
func (b *backend) rebuildQueue(ctx context.Context, s logical.Storage) (int, error) {
	integrations, err := listIntegrations(ctx, s)
	if err != nil {
		return 0, err
	}
	cfg, err := b.config(ctx, s)
	if err != nil {
		return 0, err
	}
	keys := make(chan [2]string)
	var (
		wg      sync.WaitGroup
		count   atomic.Int64
		errOnce sync.Once
		first   error
	)
	for range rebuildWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				c, err := getConnection(ctx, s, k[0], k[1])
				if err != nil {
					errOnce.Do(func() { first = err })
					continue
				}
				if c == nil {
					continue
				}
				if c.NextRefreshAt.IsZero() && c.RefreshStatus == "" {
					b.engine.schedule(c, cfg, b.now()) // stored before scheduling existed
				}
				b.engine.trackIfAbsent(c)
				count.Add(1)
			}
		}()
	}
	for _, in := range integrations {
		ids, err := listConnections(ctx, s, in)
		if err != nil {
			errOnce.Do(func() { first = err })
			break
		}
		for _, id := range ids {
			select {
			case keys <- [2]string{in, id}:
			case <-ctx.Done():
				close(keys)
				wg.Wait()
				return int(count.Load()), ctx.Err()
			}
		}
	}
	close(keys)
	wg.Wait()
	return int(count.Load()), first
}

// trackIfAbsent queues c unless a save has queued it already.
func (e *refreshEngine) trackIfAbsent(c *connectionEntry) {
	key := connectionKey(c.Integration, c.ConnectionID)
	if !c.NextRefreshAt.IsZero() {
		if err := e.queue.Push(&queue.Item{Key: key, Priority: c.NextRefreshAt.UnixMilli()}); errors.Is(err, queue.ErrDuplicateItem) {
			return
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, seen := e.statuses[key]; !seen && c.AuthMode.hasTokens() {
		e.statuses[key] = c.refreshState()
	}
}

// clean stops the queue build when the plugin shuts down.
func (b *backend) clean(context.Context) {
	if b.engine.cancel != nil {
		b.engine.cancel()
	}
}
