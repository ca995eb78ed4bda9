// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The sweep of abandoned authorizations: each pending authorization has an
// expiry entry, stateExpiryPrefix/<minute>/<hash>, in the pending authorization store's
// expiryIndex, which a sweep lists instead of every pending one.

// stateSweepPage bounds the states one periodic sweep deletes, so that a
// backlog of abandoned flows costs a bounded time per tick.
const stateSweepPage = 1000

// SweepExpired deletes a page of the pending authorizations whose
// browser never came back, oldest minute first. A callback would refuse
// them anyway; this keeps storage from growing with abandoned flows.
func (ss *pendingAuthorizationStore) SweepExpired(ctx context.Context, s logical.Storage) error {
	if err := ss.IndexEarlier(ctx, s); err != nil {
		return err
	}
	now := ss.now()
	return ss.expiry.sweep(ctx, s, now, func(ctx context.Context, s logical.Storage, expiryKey, stateHash string) error {
		return ss.sweepState(ctx, s, expiryKey, stateHash, now)
	})
}

// sweepState deletes one state of a past minute with its index and expiry
// entries, or only the expiry entry when the state was spent or replaced
// meanwhile.
func (ss *pendingAuthorizationStore) sweepState(ctx context.Context, s logical.Storage, expiryKey, stateHash string, now time.Time) error {
	var st pendingAuthorization
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
func (ss *pendingAuthorizationStore) IndexEarlier(ctx context.Context, s logical.Storage) error {
	if ss.indexed.Load() {
		return nil
	}
	done, err := s.Get(ctx, stateExpiryIndexedKey)
	if err != nil {
		return fmt.Errorf("reading %q: %w", stateExpiryIndexedKey, err)
	}
	if done == nil {
		if err := ss.indexStates(ctx, s); err != nil {
			return err
		}
		if err := putJSON(ctx, s, stateExpiryIndexedKey, expiryEntry{}); err != nil {
			return err
		}
	}
	ss.indexed.Store(true)
	return nil
}

// indexStates writes the expiry entry of every stored state.
func (ss *pendingAuthorizationStore) indexStates(ctx context.Context, s logical.Storage) error {
	hashes, err := listSorted(ctx, s, statePrefix)
	if err != nil {
		return fmt.Errorf("listing authorization pendingAuths: %w", err)
	}
	for _, h := range hashes {
		var st pendingAuthorization
		found, err := getJSON(ctx, s, stateKey(h), &st)
		if err != nil {
			return err
		}
		if found {
			if err := ss.expiry.put(ctx, s, h, st.ExpiresAt); err != nil {
				return err
			}
		}
	}
	return nil
}
