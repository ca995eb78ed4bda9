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

	"github.com/hashicorp/vault/sdk/logical"
)

// Pending authorizations. Each is stored under the SHA-256 of its state, so
// storage never holds a usable state value, and indexed by its connection:
// a connection has at most one (a new authorize replaces it), and deleting
// the connection or its integration deletes it, so an old authorization URL
// cannot re-create what was deleted. Every change happens under the
// connection's state lock.
//
// stateKey is where a pending authorization is stored.
func stateKey(stateHash string) string { return statePrefix + stateHash }

func stateIndexKey(integration, id string) string {
	return stateIndexPrefix + integration + "/" + id
}

// stateIndexEntry names a connection's pending authorization.
type stateIndexEntry struct {
	StateHash string `json:"state_hash"`
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

func hashState(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// putPendingState stores st as its connection's one pending authorization,
// deleting the one it replaces.
func (b *backend) putPendingState(ctx context.Context, s logical.Storage, stateHash string, st *oauthStateEntry) error {
	defer b.stateLocks.Lock(stateIndexKey(st.Integration, st.ConnectionID))()
	if err := b.deleteIndexedStateLocked(ctx, s, st.Integration, st.ConnectionID); err != nil {
		return err
	}
	if err := putJSON(ctx, s, stateKey(stateHash), st); err != nil {
		return err
	}
	return putJSON(ctx, s, stateIndexKey(st.Integration, st.ConnectionID), &stateIndexEntry{StateHash: stateHash})
}

// takeState reads and deletes a pending authorization: a state is spent by
// its first use, whatever the outcome. Nil when there is none.
func (b *backend) takeState(ctx context.Context, s logical.Storage, stateHash string) (*oauthStateEntry, error) {
	var st oauthStateEntry
	found, err := getJSON(ctx, s, stateKey(stateHash), &st)
	if err != nil || !found {
		return nil, err
	}
	defer b.stateLocks.Lock(stateIndexKey(st.Integration, st.ConnectionID))()
	// Re-read under the lock: a racing callback or a deletion may have
	// taken it.
	found, err = getJSON(ctx, s, stateKey(stateHash), &st)
	if err != nil || !found {
		return nil, err
	}
	if err := s.Delete(ctx, stateKey(stateHash)); err != nil {
		return nil, fmt.Errorf("deleting state: %w", err)
	}
	var idx stateIndexEntry
	if found, err := getJSON(ctx, s, stateIndexKey(st.Integration, st.ConnectionID), &idx); err == nil && found && idx.StateHash == stateHash {
		if err := s.Delete(ctx, stateIndexKey(st.Integration, st.ConnectionID)); err != nil {
			return nil, fmt.Errorf("deleting state index: %w", err)
		}
	}
	return &st, nil
}

// deleteStatesOf deletes a connection's pending authorization, if any.
func (b *backend) deleteStatesOf(ctx context.Context, s logical.Storage, integration, id string) error {
	defer b.stateLocks.Lock(stateIndexKey(integration, id))()
	return b.deleteIndexedStateLocked(ctx, s, integration, id)
}

func (b *backend) deleteIndexedStateLocked(ctx context.Context, s logical.Storage, integration, id string) error {
	var idx stateIndexEntry
	found, err := getJSON(ctx, s, stateIndexKey(integration, id), &idx)
	if err != nil || !found {
		return err
	}
	if err := s.Delete(ctx, stateKey(idx.StateHash)); err != nil {
		return fmt.Errorf("deleting state: %w", err)
	}
	return s.Delete(ctx, stateIndexKey(integration, id))
}

// deleteStatesOfIntegration deletes the pending authorizations of every
// connection of an integration.
func (b *backend) deleteStatesOfIntegration(ctx context.Context, s logical.Storage, integration string) error {
	ids, err := listSorted(ctx, s, stateIndexPrefix+integration+"/")
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := b.deleteStatesOf(ctx, s, integration, id); err != nil {
			return err
		}
	}
	return nil
}

// stateSweepPage bounds the states one periodic sweep reads.
const stateSweepPage = 1000

// cleanExpiredStates deletes pending authorizations whose browser never
// came back, a page per call, continuing where the previous call stopped. A
// callback would refuse them anyway; this keeps storage from growing with
// abandoned flows.
func (b *backend) cleanExpiredStates(ctx context.Context, s logical.Storage) error {
	hashes, err := listSorted(ctx, s, statePrefix)
	if err != nil {
		return fmt.Errorf("listing authorization states: %w", err)
	}
	page := pageAfter(hashes, b.stateSweepCursor.Load(), stateSweepPage)
	if len(page) < stateSweepPage {
		b.stateSweepCursor.Store("") // wrapped around: start over next time
	} else {
		b.stateSweepCursor.Store(page[len(page)-1])
	}
	now := b.now()
	for _, h := range page {
		var st oauthStateEntry
		found, err := getJSON(ctx, s, stateKey(h), &st)
		if err != nil {
			return err
		}
		if found && !now.Before(st.ExpiresAt) {
			if _, err := b.takeState(ctx, s, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweepCursor is where the next state sweep continues.
type sweepCursor struct {
	mu    sync.Mutex
	after string
}

func (c *sweepCursor) Load() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.after
}

func (c *sweepCursor) Store(after string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.after = after
}
