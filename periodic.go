package connect

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"
)

// periodic is the backend's PeriodicFunc, which Vault calls about once a
// minute. It runs only where storage is writable: not on performance
// standbys or secondaries, whose primaries do the work.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	if err := b.runRefreshTick(ctx, req.Storage); err != nil {
		return err
	}
	return b.cleanExpiredStates(ctx, req.Storage)
}

// cleanExpiredStates deletes pending authorizations whose browser never came
// back. A callback would refuse them anyway; this keeps storage from
// growing with abandoned flows.
func (b *backend) cleanExpiredStates(ctx context.Context, s logical.Storage) error {
	hashes, err := s.List(ctx, statePrefix)
	if err != nil {
		return fmt.Errorf("listing authorization states: %w", err)
	}
	now := b.now()
	for _, h := range hashes {
		var st oauthStateEntry
		found, err := getJSON(ctx, s, stateKey(h), &st)
		if err != nil {
			return err
		}
		if found && !now.Before(st.ExpiresAt) {
			if _, err := b.consumeStateHash(ctx, s, h); err != nil {
				return err
			}
		}
	}
	return nil
}
