// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// walKindIssuedTokens is the kind of the WAL entries that hold credentials
// a provider issued but storage refused to save with their connection. The
// provider has spent the old refresh token by then, so the new one must
// survive a restart too: the framework's rollback (every minute, for
// entries older than walRollbackMinAge) stores it if the process that
// kept it in memory did not.
const walKindIssuedTokens = "issued_tokens"

// walRollbackMinAge leaves a running plugin a few periodic ticks to store
// its unsaved entries itself before the rollback does.
const walRollbackMinAge = 3 * time.Minute

// issuedTokensWAL is the WAL record: the entry to store, and the refresh
// token storage held when the provider answered (hashed), so that the
// rollback never overwrites credentials stored since.
type issuedTokensWAL struct {
	Entry                *connectionEntry `json:"entry"`
	Existed              bool             `json:"existed"`
	PreviousRefreshToken string           `json:"previous_refresh_token_sha256"`
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// putIssuedTokensWAL records c as issued but unsaved; previous is what
// storage holds. It returns the WAL id, empty if storage refused that too.
func putIssuedTokensWAL(ctx context.Context, s logical.Storage, c, previous *connectionEntry) string {
	rec := issuedTokensWAL{Entry: c, Existed: previous != nil}
	if previous != nil {
		rec.PreviousRefreshToken = sha256Hex(previous.Credentials.RefreshToken)
	}
	id, err := framework.PutWAL(ctx, s, walKindIssuedTokens, &rec)
	if err != nil {
		return ""
	}
	return id
}

// walRollback is the backend's WALRollback: it stores the credentials of an
// issued-tokens record unless the connection has moved on (deleted, or
// holding other credentials than when the provider answered).
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data any) error {
	if kind != walKindIssuedTokens {
		return nil // unknown kinds are dropped
	}
	var rec issuedTokensWAL
	if err := decodeWAL(data, &rec); err != nil {
		return err
	}
	if rec.Entry == nil {
		return nil
	}
	issued := rec.Entry
	_, err := b.store.Update(ctx, req.Storage, issued.Integration, issued.ConnectionID, func(c *connectionEntry) (*connectionEntry, error) {
		switch {
		case c == nil && rec.Existed:
			return nil, errUnchanged // deleted since
		case c == nil:
			fresh := issued.clone()
			fresh.issued = true
			return fresh, nil
		case sha256Hex(c.Credentials.RefreshToken) != rec.PreviousRefreshToken || !rec.Existed:
			return nil, errUnchanged // stored already, or replaced since
		case !sameClient(c, issued):
			// Given another client since: the record's token and client
			// are both stale, and its client may be one the customer
			// has revoked.
			return nil, errUnchanged
		}
		c.Credentials = issued.Credentials
		c.RawTokenResponse = issued.RawTokenResponse
		c.LastRefreshedAt = issued.LastRefreshedAt
		c.RefreshStatus, c.RefreshFailures, c.LastRefreshError = issued.RefreshStatus, issued.RefreshFailures, issued.LastRefreshError
		c.issued = true
		return c, nil
	})
	if err != nil && !errors.Is(err, errIntegrationGone) {
		return err
	}
	return nil
}

// decodeWAL decodes a WAL record, which the framework hands over as decoded
// JSON (map[string]any), back into its struct through JSON, so that times
// and nested structs come back as they were written.
func decodeWAL(data any, out *issuedTokensWAL) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encoding WAL data: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding WAL data: %w", err)
	}
	return nil
}
