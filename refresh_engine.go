// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"encoding/binary"
	"hash/fnv"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/refresh"
)

// refreshEngine is the background refresh engine (internal/refresh) as the
// plugin reaches it: a connection entry becomes its key and its scheduling
// fields, the mount's configuration the engine's settings. It is the
// connection store's scheduler; the backend starts, ticks and stops the
// engine it embeds.
type refreshEngine struct {
	*refresh.Engine
}

func newRefreshEngine() *refreshEngine {
	return &refreshEngine{Engine: refresh.NewEngine()}
}

// schedule sets c.NextRefreshAt. A failing connection keeps the retry time
// its failure set; one the background gave up on gets none.
func (e *refreshEngine) schedule(c *connectionEntry, cfg *configEntry, now time.Time) {
	f := c.scheduleFields().forEngine()
	f.Seed = jitterSeed(c)
	c.NextRefreshAt = e.NextRefresh(&f, cfg.refreshSettings(), now)
}

// jitterSeed is c's seed for the engine's jitter: the same for as long as
// c's token expires at the same time, so that saves of everything else
// (metadata, configuration, proxied-call counts) keep its next refresh and
// its schedule mark; different between connections, so that tokens issued
// together are refreshed apart.
func jitterSeed(c *connectionEntry) uint64 {
	h := fnv.New64a()
	h.Write([]byte(connectionKey(c.Integration, c.ConnectionID)))
	binary.Write(h, binary.BigEndian, c.Credentials.ExpiresAt.UnixNano())
	return h.Sum64() | 1 // never zero, which draws at random
}

// track puts c's next refresh in the queue (replacing any earlier one) and
// records its status, once c is saved.
func (e *refreshEngine) track(c *connectionEntry) {
	// What Track reads, without the token response's members
	// scheduleFields looks up: every save calls this.
	f := refresh.Fields{IssuesTokens: c.AuthMode.HasTokens(), Status: c.RefreshStatus, NextRefreshAt: c.NextRefreshAt}
	e.Track(connectionKey(c.Integration, c.ConnectionID), &f)
}

// untrack forgets a deleted connection.
func (e *refreshEngine) untrack(key string) {
	e.Untrack(key)
}

// recordOutcome counts one refresh.
func (e *refreshEngine) recordOutcome(ok bool) {
	e.RecordOutcome(ok)
}

// restore queues the connection at key from its schedule mark: its status
// and next refresh (zero: none).
func (e *refreshEngine) restore(key string, status refreshStatus, next time.Time) {
	e.Restore(key, refresh.Status(status), next)
}

// check queues every stored connection from the fields each hands it, and
// brings forward any queued later than they say (Engine.Check).
func (e *refreshEngine) check(each func(visit func(key string, f scheduleFields)) error, cfg *configEntry, now func() time.Time) error {
	return e.Check(func(visit func(key string, f refresh.Fields)) error {
		return each(func(key string, f scheduleFields) { visit(key, f.forEngine()) })
	}, cfg.refreshSettings(), now)
}

// refreshSettings are cfg as the engine's scheduling reads it.
func (cfg *configEntry) refreshSettings() refresh.Settings {
	return refresh.Settings{Margin: cfg.RefreshMargin, IdleInterval: cfg.IdleRefreshInterval}
}
