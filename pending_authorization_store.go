// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// Pending authorizations. Each is stored under the SHA-256 of its state, so
// storage never holds a usable state value, and indexed by its connection:
// a connection has at most one (a new authorize replaces it), and deleting
// the connection or its integration deletes it, so an old authorization URL
// cannot re-create what was deleted. Every change happens under the
// connection's state lock. An integration has at most config's
// max_pending_authorizations of them, counted without listing (see
// pendingCounts), and each has an expiry entry that the periodic sweep
// finds it by (pending_authorization_sweep.go).
//
// pendingAuthorizationStore holds the pending authorizations: their storage, the lock of
// each connection's one, the count of each integration's and the sweep of
// expired ones. The backend builds one in Factory; the authorize and
// callback flows and the deletes of connections and integrations use it.
type pendingAuthorizationStore struct {
	// locks serialise the changes of one connection's pending
	// authorization.
	locks *keyedLocks
	// pending counts each integration's pending authorizations.
	pending pendingCounts
	// expiry is the states' expiry entries by minute, which the sweep
	// lists (pending_authorization_sweep.go).
	expiry *expiryIndex
	// indexed is set once every stored state has an expiry entry.
	indexed atomic.Bool

	// dropHeld is given each pending completion the sweep deletes
	// expired, whose tokens no connection will hold: the authorizer
	// revokes them. Nil: they are dropped.
	dropHeld func(context.Context, logical.Storage, *pendingAuthorization)

	config func(context.Context, logical.Storage) (*configEntry, error)
	now    func() time.Time
	logger func() hclog.Logger
}

// newPendingAuthorizationStore returns a pendingAuthorizationStore that reads the mount's configuration
// through config, the time through now and logs through logger.
func newPendingAuthorizationStore(config func(context.Context, logical.Storage) (*configEntry, error), now func() time.Time, logger func() hclog.Logger) *pendingAuthorizationStore {
	return &pendingAuthorizationStore{
		locks:  newKeyedLocks(),
		expiry: newExpiryIndex(stateExpiryPrefix, "authorization states", stateSweepPage),
		config: config,
		now:    now,
		logger: logger,
	}
}

// stateKey is where a pending authorization is stored.
func stateKey(stateHash string) string { return statePrefix + stateHash }

func stateIndexKey(integration, id string) string {
	return stateIndexPrefix + integration + "/" + id
}

// stateIndexEntry names a connection's pending authorization.
type stateIndexEntry struct {
	entryFormat
	StateHash string `json:"state_hash"`
	// ExpiresAt finds the state's expiry entry; zero in entries of
	// earlier versions, whose states the sweep finds by listing.
	ExpiresAt time.Time `json:"expires_at,omitempty"`
}

// newState returns a state of 32 random bytes and the hash it is stored
// under.
func newState() (string, string, error) {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", "", fmt.Errorf("generating state: %w", err)
	}
	state := base64.RawURLEncoding.EncodeToString(buf)
	return state, hashState(state), nil
}

// stateLen is the length of every value newState returns: 32 bytes in
// unpadded base64url.
var stateLen = base64.RawURLEncoding.EncodedLen(32)

// wellFormedState says whether state could be one newState returned: of
// its length and in the base64url alphabet. The callback refuses any
// other before it looks in storage, so that no value it is given names an
// entry that is not a state (a pending completion is stored under the hash
// of a value no state can be).
func wellFormedState(state string) bool {
	if len(state) != stateLen {
		return false
	}
	for _, r := range state {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

func hashState(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// Put stores st as its connection's one pending authorization,
// deleting the one it replaces. A connection that has none yet takes a
// place among its integration's max_pending_authorizations, or is refused
// with a pendingLimitError: authorize accepts connection ids that do not
// exist yet, and each state may hold up to two documents, so without a cap
// one caller could fill storage for state_ttl.
func (ss *pendingAuthorizationStore) Put(ctx context.Context, s logical.Storage, stateHash string, st *pendingAuthorization) error {
	cfg, err := ss.config(ctx, s)
	if err != nil {
		return err
	}
	defer ss.locks.Lock(stateIndexKey(st.Integration, st.ConnectionID))()
	count := ss.pending.of(st.Integration)
	if err := count.load(ctx, s, stateIndexPrefix+st.Integration+"/", "pending authorizations"); err != nil {
		return err
	}
	defer count.changing()()
	var old stateIndexEntry
	replacing, err := getJSON(ctx, s, stateIndexKey(st.Integration, st.ConnectionID), &old)
	if err != nil {
		return err
	}
	if replacing {
		// The old URL stops working before the new one exists. The index
		// entry stays, to be overwritten, so the count does not change.
		if err := ss.deleteEntries(ctx, s, old); err != nil {
			return err
		}
	} else if !count.reserve(cfg.MaxPendingAuthorizations) {
		return &pendingLimitError{st.Integration, cfg.MaxPendingAuthorizations}
	}
	if err := ss.writePendingState(ctx, s, stateHash, st); err != nil {
		if !replacing {
			count.release()
		}
		return err
	}
	return nil
}

// writePendingState stores a state, its expiry entry and, last, the index
// entry that points at it, so that an index entry (what the count counts)
// never names a state that was not stored.
func (ss *pendingAuthorizationStore) writePendingState(ctx context.Context, s logical.Storage, stateHash string, st *pendingAuthorization) error {
	if err := putJSON(ctx, s, stateKey(stateHash), st); err != nil {
		return err
	}
	if err := ss.expiry.put(ctx, s, stateHash, st.ExpiresAt); err != nil {
		return err
	}
	return putJSON(ctx, s, stateIndexKey(st.Integration, st.ConnectionID), &stateIndexEntry{StateHash: stateHash, ExpiresAt: st.ExpiresAt})
}

// deleteEntries deletes the state an index entry names and its
// expiry entry, not the index entry itself.
func (ss *pendingAuthorizationStore) deleteEntries(ctx context.Context, s logical.Storage, idx stateIndexEntry) error {
	// A pending completion's tokens are revoked once it is gone: a new
	// authorize replaced it, or its connection or integration is deleted.
	var old pendingAuthorization
	found, err := getJSON(ctx, s, stateKey(idx.StateHash), &old)
	if err != nil {
		return err
	}
	if err := s.Delete(ctx, stateKey(idx.StateHash)); err != nil {
		return fmt.Errorf("deleting state: %w", err)
	}
	if found && old.Held != nil && ss.dropHeld != nil {
		ss.dropHeld(ctx, s, &old)
	}
	if idx.ExpiresAt.IsZero() {
		return nil // an earlier version's: the sweep finds its expiry entry orphaned
	}
	if err := ss.expiry.delete(ctx, s, idx.StateHash, idx.ExpiresAt); err != nil {
		return fmt.Errorf("deleting a state's expiry entry: %w", err)
	}
	return nil
}

// Peek reads a pending authorization without spending it. Nil when there
// is none.
func (ss *pendingAuthorizationStore) Peek(ctx context.Context, s logical.Storage, stateHash string) (*pendingAuthorization, error) {
	var st pendingAuthorization
	found, err := getJSON(ctx, s, stateKey(stateHash), &st)
	if err != nil || !found {
		return nil, err
	}
	return &st, nil
}

// Take reads and deletes a pending authorization or completion: a state
// is spent by its first use, whatever the outcome. Nil when there is none.
// The sweep uses it; the callback uses TakeAuthorization.
func (ss *pendingAuthorizationStore) Take(ctx context.Context, s logical.Storage, stateHash string) (*pendingAuthorization, error) {
	return ss.take(ctx, s, stateHash, false)
}

// TakeAuthorization is Take for the callback: it never takes a pending
// completion (an entry with Held tokens), which only complete may spend,
// since nothing would revoke its tokens. Nil when there is no pending
// authorization under stateHash; a completion found there is left as it is.
func (ss *pendingAuthorizationStore) TakeAuthorization(ctx context.Context, s logical.Storage, stateHash string) (*pendingAuthorization, error) {
	return ss.take(ctx, s, stateHash, true)
}

// take is Take; with unheldOnly it leaves a pending completion in place,
// checked under the connection's lock so that no racing write slips between
// the check and the delete.
func (ss *pendingAuthorizationStore) take(ctx context.Context, s logical.Storage, stateHash string, unheldOnly bool) (*pendingAuthorization, error) {
	var st pendingAuthorization
	found, err := getJSON(ctx, s, stateKey(stateHash), &st)
	if err != nil || !found {
		return nil, err
	}
	defer ss.locks.Lock(stateIndexKey(st.Integration, st.ConnectionID))()
	count := ss.pending.of(st.Integration)
	defer count.changing()()
	// Re-read under the lock: a racing callback or a deletion may have
	// taken it.
	st = pendingAuthorization{}
	found, err = getJSON(ctx, s, stateKey(stateHash), &st)
	if err != nil || !found {
		return nil, err
	}
	if unheldOnly && st.Held != nil {
		return nil, nil
	}
	// The index entry goes first: it holds a place under
	// max_pending_authorizations, and only it does. Were the state deleted
	// first and the index delete then failed, no sweep would ever find the
	// index entry again; this way a failure leaves the state usable and
	// swept at its expiry.
	var idx stateIndexEntry
	found, err = getJSON(ctx, s, stateIndexKey(st.Integration, st.ConnectionID), &idx)
	if err != nil {
		return nil, fmt.Errorf("reading state index: %w", err)
	}
	if found && idx.StateHash == stateHash {
		if err := s.Delete(ctx, stateIndexKey(st.Integration, st.ConnectionID)); err != nil {
			return nil, fmt.Errorf("deleting state index: %w", err)
		}
		count.removed()
	}
	if err := s.Delete(ctx, stateKey(stateHash)); err != nil {
		return nil, fmt.Errorf("deleting state: %w", err)
	}
	// The state is spent already: an expiry entry left behind by a failed
	// delete is swept as an orphan, which is no reason to fail its use.
	if err := ss.expiry.delete(ctx, s, stateHash, st.ExpiresAt); err != nil {
		ss.logger().Warn("deleting a spent state's expiry entry; the sweep removes it", "error", err)
	}
	return &st, nil
}

// DeleteOf deletes a connection's pending authorization, if any.
func (ss *pendingAuthorizationStore) DeleteOf(ctx context.Context, s logical.Storage, integration, id string) error {
	defer ss.locks.Lock(stateIndexKey(integration, id))()
	count := ss.pending.of(integration)
	defer count.changing()()
	var idx stateIndexEntry
	found, err := getJSON(ctx, s, stateIndexKey(integration, id), &idx)
	if err != nil || !found {
		return err
	}
	if err := ss.deleteEntries(ctx, s, idx); err != nil {
		return err
	}
	if err := s.Delete(ctx, stateIndexKey(integration, id)); err != nil {
		return err
	}
	count.removed()
	return nil
}

// DeleteOfIntegration deletes the pending authorizations of every
// connection of an integration.
func (ss *pendingAuthorizationStore) DeleteOfIntegration(ctx context.Context, s logical.Storage, integration string) error {
	ids, err := listSorted(ctx, s, stateIndexPrefix+integration+"/")
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := ss.DeleteOf(ctx, s, integration, id); err != nil {
			return err
		}
	}
	return nil
}

// pendingCounts are the integrations' numbers of pending authorizations
// (their index entries), which authorize checks against
// max_pending_authorizations without listing them: a listedCount each.
type pendingCounts struct {
	mu    sync.Mutex
	count map[string]*listedCount
}

// of is integration's count, created on first use.
func (pc *pendingCounts) of(integration string) *listedCount {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.count == nil {
		pc.count = map[string]*listedCount{}
	}
	c, ok := pc.count[integration]
	if !ok {
		c = &listedCount{}
		pc.count[integration] = c
	}
	return c
}
