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

// The sweep of abandoned authorizations. Vault's plugin storage lists a
// whole prefix and has no paged List, so a sweep that listed the states
// themselves would read every pending one each minute. Each state instead
// also has an expiry entry, stateExpiryPrefix/<minute>/<hash>, under the
// minute it has expired by: a sweep lists the minutes (at most a day's
// worth, state_ttl's maximum) and then only the minutes past, whose states
// are all expired.

// stateExpiryBucketLayout names a minute, sorting as time does.
const stateExpiryBucketLayout = "20060102T1504Z"

// stateExpiryBucket is the first minute boundary at or after expiresAt:
// every state under it has expired once that minute has come.
func stateExpiryBucket(expiresAt time.Time) string {
	end := expiresAt.UTC().Truncate(time.Minute)
	if end.Before(expiresAt) {
		end = end.Add(time.Minute)
	}
	return end.Format(stateExpiryBucketLayout)
}

func stateExpiryKey(stateHash string, expiresAt time.Time) string {
	return stateExpiryPrefix + stateExpiryBucket(expiresAt) + "/" + stateHash
}

// stateExpiryEntry is the value of an expiry entry; its key says it all.
type stateExpiryEntry struct{}

func putStateExpiry(ctx context.Context, s logical.Storage, stateHash string, expiresAt time.Time) error {
	return putJSON(ctx, s, stateExpiryKey(stateHash, expiresAt), stateExpiryEntry{})
}

func deleteStateExpiry(ctx context.Context, s logical.Storage, stateHash string, expiresAt time.Time) error {
	if err := s.Delete(ctx, stateExpiryKey(stateHash, expiresAt)); err != nil {
		return fmt.Errorf("deleting a state's expiry entry: %w", err)
	}
	return nil
}

// stateSweepPage bounds the states one periodic sweep deletes, so that a
// backlog of abandoned flows costs a bounded time per tick.
const stateSweepPage = 1000

// SweepExpired deletes a page of the pending authorizations whose
// browser never came back, oldest minute first. A callback would refuse
// them anyway; this keeps storage from growing with abandoned flows.
func (ss *stateStore) SweepExpired(ctx context.Context, s logical.Storage) error {
	if err := ss.IndexEarlier(ctx, s); err != nil {
		return err
	}
	buckets, err := listSorted(ctx, s, stateExpiryPrefix)
	if err != nil {
		return fmt.Errorf("listing authorization state expiries: %w", err)
	}
	now := ss.now()
	budget := stateSweepPage
	for _, bucket := range buckets {
		end, err := time.Parse(stateExpiryBucketLayout, strings.TrimSuffix(bucket, "/"))
		if err != nil || now.Before(end) {
			break // sorted: every later minute is still to come
		}
		swept, err := ss.sweepBucket(ctx, s, bucket, budget, now)
		if err != nil {
			return err
		}
		if budget -= swept; budget <= 0 {
			break
		}
	}
	return nil
}

// sweepBucket deletes up to budget of the states of one past minute and
// returns how many it went through. The rest of the minute's listing is
// kept for the next sweep, so that a large backlog is listed once, not
// once per page.
func (ss *stateStore) sweepBucket(ctx context.Context, s logical.Storage, bucket string, budget int, now time.Time) (int, error) {
	hashes, ok := ss.sweepCursor.take(bucket)
	if !ok {
		var err error
		if hashes, err = listSorted(ctx, s, stateExpiryPrefix+bucket); err != nil {
			return 0, fmt.Errorf("listing expired authorization states: %w", err)
		}
	}
	page := hashes[:min(budget, len(hashes))]
	for _, h := range page {
		if err := ss.sweepState(ctx, s, stateExpiryPrefix+bucket+h, h, now); err != nil {
			return 0, err
		}
	}
	ss.sweepCursor.keep(bucket, hashes[len(page):])
	return len(page), nil
}

// sweepState deletes one state of a past minute with its index and expiry
// entries, or only the expiry entry when the state was spent or replaced
// meanwhile.
func (ss *stateStore) sweepState(ctx context.Context, s logical.Storage, expiryKey, stateHash string, now time.Time) error {
	var st oauthStateEntry
	found, err := getJSON(ctx, s, stateKey(stateHash), &st)
	if err != nil {
		return err
	}
	if !found {
		return s.Delete(ctx, expiryKey)
	}
	if now.Before(st.ExpiresAt) {
		return nil // only if the clock went back; swept once it has expired
	}
	taken, err := ss.Take(ctx, s, stateHash)
	if err == nil && taken != nil && taken.Held != nil && ss.dropHeld != nil {
		ss.dropHeld(ctx, s, taken)
	}
	return err
}

// stateExpiryIndexedKey records that every state stored before expiry
// entries existed has been given one.
const stateExpiryIndexedKey = "oauth_state_expiry_indexed"

// IndexEarlier gives each state stored by an earlier version, which
// has no expiry entry, one: once per mount, the first time a sweep runs.
func (ss *stateStore) IndexEarlier(ctx context.Context, s logical.Storage) error {
	if ss.indexed.Load() {
		return nil
	}
	done, err := s.Get(ctx, stateExpiryIndexedKey)
	if err != nil {
		return fmt.Errorf("reading %q: %w", stateExpiryIndexedKey, err)
	}
	if done == nil {
		if err := indexStates(ctx, s); err != nil {
			return err
		}
		if err := putJSON(ctx, s, stateExpiryIndexedKey, stateExpiryEntry{}); err != nil {
			return err
		}
	}
	ss.indexed.Store(true)
	return nil
}

// indexStates writes the expiry entry of every stored state.
func indexStates(ctx context.Context, s logical.Storage) error {
	hashes, err := listSorted(ctx, s, statePrefix)
	if err != nil {
		return fmt.Errorf("listing authorization states: %w", err)
	}
	for _, h := range hashes {
		var st oauthStateEntry
		found, err := getJSON(ctx, s, stateKey(h), &st)
		if err != nil {
			return err
		}
		if found {
			if err := putStateExpiry(ctx, s, h, st.ExpiresAt); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweepCursor is the rest of the listing of the minute a sweep stopped in.
type sweepCursor struct {
	mu     sync.Mutex
	bucket string
	rest   []string
}

// take returns the rest of bucket's listing, if the last sweep stopped in
// it.
func (c *sweepCursor) take(bucket string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bucket != bucket || len(c.rest) == 0 {
		return nil, false
	}
	rest := c.rest
	c.bucket, c.rest = "", nil
	return rest, true
}

// keep records where a sweep stopped in bucket.
func (c *sweepCursor) keep(bucket string, rest []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bucket, c.rest = bucket, rest
}
