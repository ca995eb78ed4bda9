// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"sync"
	"time"
)

// proxyCallCounts are the proxied calls of each connection since its entry
// was last saved: counted in memory, so a call costs no storage write, and
// added to the entry by the store's next save of it (a refresh, a write).
// A connection's reads show the stored count plus these.
type proxyCallCounts struct {
	mu sync.Mutex
	m  map[string]pendingProxyCalls
}

// pendingProxyCalls are one connection's calls not yet stored.
type pendingProxyCalls struct {
	n    int64
	last time.Time
}

// maxPendingProxyCounts bounds the connections counted in memory: past it
// a new connection's calls are not counted until a save makes room (the
// counts are figures, not a ledger).
const maxPendingProxyCounts = 100000

// note counts one call of key at at.
func (p *proxyCallCounts) note(key string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]pendingProxyCalls{}
	}
	cur, ok := p.m[key]
	if !ok && len(p.m) >= maxPendingProxyCounts {
		return
	}
	cur.n++
	if at.After(cur.last) {
		cur.last = at
	}
	p.m[key] = cur
}

// pending returns key's calls not yet stored.
func (p *proxyCallCounts) pending(key string) pendingProxyCalls {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[key]
}

// take removes and returns key's calls not yet stored, for a save to add
// to the entry; giveBack returns them when the save failed.
func (p *proxyCallCounts) take(key string) pendingProxyCalls {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := p.m[key]
	delete(p.m, key)
	return cur
}

func (p *proxyCallCounts) giveBack(key string, calls pendingProxyCalls) {
	if calls.n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]pendingProxyCalls{}
	}
	cur := p.m[key]
	cur.n += calls.n
	if calls.last.After(cur.last) {
		cur.last = calls.last
	}
	p.m[key] = cur
}

// keys are the connections with calls not yet stored, at most max.
func (p *proxyCallCounts) keys(max int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, min(len(p.m), max))
	for k := range p.m {
		if len(out) == max {
			break
		}
		out = append(out, k)
	}
	return out
}

// drop forgets key's calls: its connection is deleted.
func (p *proxyCallCounts) drop(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, key)
}

// addTo adds calls to c's stored counts.
func (calls pendingProxyCalls) addTo(c *connectionEntry) {
	c.ProxyCalls += calls.n
	if calls.last.After(c.LastProxyCallAt) {
		c.LastProxyCallAt = calls.last
	}
}
