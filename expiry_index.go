// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// expiryIndex finds the entries of one kind that have expired (pending
// authorizations, connect sessions) without listing them all. Vault's
// plugin storage lists a whole prefix and has no paged List, so a sweep
// that listed the entries themselves would read every live one each
// minute. Each entry instead also has an expiry entry,
// <prefix><minute>/<id>, under the minute it has expired by: a sweep lists
// the minutes (at most as many as the longest lifetime spans) and then only
// the minutes past, whose entries have all expired, a page per sweep.
type expiryIndex struct {
	prefix string // ends in "/"
	what   string // the entries, as errors name them
	// page bounds the entries one sweep goes through, so that a backlog
	// costs a bounded time per periodic tick.
	page int
	// cursor is the rest of the listing of the minute a sweep stopped in.
	cursor expiryCursor
}

func newExpiryIndex(prefix, what string, page int) *expiryIndex {
	return &expiryIndex{prefix: prefix, what: what, page: page}
}

// expiryMinuteLayout names a minute, sorting as time does.
const expiryMinuteLayout = "20060102T1504Z"

// expiryMinute is the first minute boundary at or after expiresAt: every
// entry under it has expired once that minute has come.
func expiryMinute(expiresAt time.Time) string {
	end := expiresAt.UTC().Truncate(time.Minute)
	if end.Before(expiresAt) {
		end = end.Add(time.Minute)
	}
	return end.Format(expiryMinuteLayout)
}

// expiryEntry is the value of an expiry entry (its key says it all) and of
// other markers whose presence is all they say.
type expiryEntry struct{}

// key is the expiry entry of id, which expires at expiresAt.
func (x *expiryIndex) key(id string, expiresAt time.Time) string {
	return x.prefix + expiryMinute(expiresAt) + "/" + id
}

// put writes id's expiry entry.
func (x *expiryIndex) put(ctx context.Context, s logical.Storage, id string, expiresAt time.Time) error {
	return putJSON(ctx, s, x.key(id, expiresAt), expiryEntry{})
}

// delete deletes id's expiry entry, once id itself is deleted.
func (x *expiryIndex) delete(ctx context.Context, s logical.Storage, id string, expiresAt time.Time) error {
	return s.Delete(ctx, x.key(id, expiresAt))
}

// sweep hands expire up to a page of the ids of the minutes past, oldest
// minute first, each with its expiry entry's key: expire deletes the entry
// and its expiry entry, or only the expiry entry when the entry is gone
// already, or leaves both to a later sweep.
func (x *expiryIndex) sweep(ctx context.Context, s logical.Storage, now time.Time,
	expire func(ctx context.Context, s logical.Storage, expiryKey, id string) error) error {
	minutes, err := listSorted(ctx, s, x.prefix)
	if err != nil {
		return fmt.Errorf("listing the expiries of %s: %w", x.what, err)
	}
	budget := x.page
	for _, minute := range minutes {
		end, err := time.Parse(expiryMinuteLayout, strings.TrimSuffix(minute, "/"))
		if err != nil || now.Before(end) {
			break // sorted: every later minute is still to come
		}
		swept, err := x.sweepMinute(ctx, s, minute, budget, expire)
		if err != nil {
			return err
		}
		if budget -= swept; budget <= 0 {
			break
		}
	}
	return nil
}

// sweepMinute hands expire up to budget of the ids of one past minute and
// returns how many it went through. The rest of the minute's listing is
// kept for the next sweep, so that a large backlog is listed once, not
// once per page.
func (x *expiryIndex) sweepMinute(ctx context.Context, s logical.Storage, minute string, budget int,
	expire func(ctx context.Context, s logical.Storage, expiryKey, id string) error) (int, error) {
	ids, ok := x.cursor.take(minute)
	if !ok {
		var err error
		if ids, err = listSorted(ctx, s, x.prefix+minute); err != nil {
			return 0, fmt.Errorf("listing expired %s: %w", x.what, err)
		}
	}
	page := ids[:min(budget, len(ids))]
	for _, id := range page {
		if err := expire(ctx, s, x.prefix+minute+id, id); err != nil {
			return 0, err
		}
	}
	x.cursor.keep(minute, ids[len(page):])
	return len(page), nil
}

// expiryCursor is the rest of the listing of the minute a sweep stopped
// in.
type expiryCursor struct {
	mu     sync.Mutex
	minute string
	rest   []string
}

// take returns the rest of minute's listing, if the last sweep stopped in
// it.
func (c *expiryCursor) take(minute string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.minute != minute || len(c.rest) == 0 {
		return nil, false
	}
	rest := c.rest
	c.minute, c.rest = "", nil
	return rest, true
}

// keep records where a sweep stopped in minute.
func (c *expiryCursor) keep(minute string, rest []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.minute, c.rest = minute, rest
}
