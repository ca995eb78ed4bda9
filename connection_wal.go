// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// walKindIssuedTokens is the kind of the WAL entries that hold credentials
// a provider issued but storage refused to save with their connection. The
// provider has spent the old refresh token by then, so the new one must
// survive a restart too: the framework's rollback (every minute, for
// entries older than walRollbackMinAge) and a restarted plugin's
// initialisation store it if the process that kept it in memory did not.
const walKindIssuedTokens = "issued_tokens"

// walRollbackMinAge leaves a running plugin a few periodic ticks to store
// its unsaved entries itself before the rollback does.
const walRollbackMinAge = 3 * time.Minute

// issuedTokensWAL is the WAL record of one unsaved entry: always its latest
// credentials, since each failed save writes a new record and drops the
// one before.
type issuedTokensWAL struct {
	entryFormat
	// WALID is the record's own id, so that the rollback can check, under
	// the connection's lock, that nobody deleted the record meanwhile.
	WALID string           `json:"wal_id,omitempty"`
	Entry *connectionEntry `json:"entry"`
	// Created says storage held no entry for the connection when the
	// provider issued: only such a record may create the connection.
	Created bool `json:"created,omitempty"`

	// Records of earlier versions, which have no WALID, named the refresh
	// token storage held when the provider answered instead.
	Existed              bool   `json:"existed,omitempty"`
	PreviousRefreshToken string `json:"previous_refresh_token_sha256,omitempty"`
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// walIDPrefix starts the id of every WAL record of one connection, and its
// first part (walIntegrationPrefix) that of every record of one
// integration, so that a delete finds them by listing the WAL alone, even
// those a previous process wrote.
func walIDPrefix(integration, id string) string {
	return walIntegrationPrefix(integration) + sha256Hex(id)[:16] + "."
}

func walIntegrationPrefix(integration string) string {
	return sha256Hex(integration)[:16] + "."
}

// putIssuedTokensWAL records c, an entry storage refused, in a new WAL
// record and returns its id; created says storage holds no entry for it.
// It writes the record as framework.PutWAL does, but under an id chosen
// first, which the record carries.
func putIssuedTokensWAL(ctx context.Context, s logical.Storage, c *connectionEntry, created bool) (string, error) {
	id := walIDPrefix(c.Integration, c.ConnectionID) + rand.Text()
	value, err := encodeEntry(&framework.WALEntry{
		Kind:      walKindIssuedTokens,
		Data:      &issuedTokensWAL{WALID: id, Entry: c, Created: created},
		CreatedAt: time.Now().UTC().Unix(),
	})
	if err != nil {
		return "", err
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: framework.WALPrefix + id, Value: value}); err != nil {
		return "", err
	}
	return id, nil
}

// refuseNewerWALs returns the errNewerFormat of the first of the WAL records
// that a newer version wrote: its issued tokens are that version's to
// store, and a delete must not drop them. Records that are gone or do not
// decode are no reason to refuse.
func refuseNewerWALs(ctx context.Context, s logical.Storage, ids []string) error {
	for _, id := range ids {
		entry, err := framework.GetWAL(ctx, s, id)
		if err != nil || entry == nil {
			continue
		}
		var rec issuedTokensWAL
		if err := decodeWAL(entry.Data, &rec); errors.Is(err, errNewerFormat) {
			return fmt.Errorf("WAL record %q: %w", id, err)
		}
	}
	return nil
}

// deleteWALs deletes WAL records by id, stopping at the first failure.
func deleteWALs(ctx context.Context, s logical.Storage, ids []string) error {
	for _, id := range ids {
		if err := framework.DeleteWAL(ctx, s, id); err != nil {
			return fmt.Errorf("deleting WAL record %q: %w", id, err)
		}
	}
	return nil
}

// walIDsWithPrefix are the listed WAL ids that start with prefix.
func walIDsWithPrefix(listed []string, prefix string) []string {
	var out []string
	for _, id := range listed {
		if strings.HasPrefix(id, prefix) {
			out = append(out, id)
		}
	}
	return out
}

// WALRollback is the backend's WALRollback. Returning an error keeps the
// record: the framework deletes it otherwise.
func (cs *connectionStore) WALRollback(ctx context.Context, req *logical.Request, kind string, data any) error {
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
	return cs.RollForward(ctx, req.Storage, &rec)
}

// RollForwardAtStart applies the WAL records a previous process left,
// without waiting for the rollback's minimum age: until they are applied,
// storage holds refresh tokens the provider has spent. Nothing in this
// process can be waiting for them yet, and a record this process writes
// meanwhile is kept while its entry is unsaved.
func (cs *connectionStore) RollForwardAtStart(ctx context.Context, s logical.Storage) error {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return fmt.Errorf("listing the WAL: %w", err)
	}
	var errs []error
	for _, id := range ids {
		entry, err := framework.GetWAL(ctx, s, id)
		if err == nil && entry != nil {
			err = cs.WALRollback(ctx, &logical.Request{Storage: s}, entry.Kind, entry.Data)
			if err == nil {
				err = framework.DeleteWAL(ctx, s, id)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("WAL record %q: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// errStillUnsaved keeps the WAL record of an entry this process still holds
// in memory because storage refuses it.
var errStillUnsaved = errors.New("still waiting for storage; its WAL record is kept")

// RollForward stores the credentials of a WAL record if they are newer
// than those of the connection it was written for. While this process
// still holds the connection unsaved, it tries to store that entry (the
// latest) instead and fails, which keeps the record, until storage takes it.
func (cs *connectionStore) RollForward(ctx context.Context, s logical.Storage, rec *issuedTokensWAL) error {
	issued := rec.Entry
	key := connectionKey(issued.Integration, issued.ConnectionID)
	_, err := cs.Update(ctx, s, issued.Integration, issued.ConnectionID, func(c *connectionEntry) (*connectionEntry, error) {
		if cs.unsavedEntry(key) != nil {
			c.issued = true
			return c, nil
		}
		applies, err := recordApplies(ctx, s, rec, c)
		if err != nil {
			return nil, err
		}
		if !applies {
			return nil, errUnchanged
		}
		if c == nil {
			fresh := issued.clone()
			fresh.issued = true
			return fresh, nil
		}
		c.Credentials = issued.Credentials
		c.CredentialsIssuedAt = issued.CredentialsIssuedAt
		c.RawTokenResponse = issued.RawTokenResponse
		c.RawTokenResponseNote = issued.RawTokenResponseNote
		c.LastRefreshedAt = issued.LastRefreshedAt
		c.RefreshStatus, c.RefreshFailures, c.LastRefreshError = issued.RefreshStatus, issued.RefreshFailures, issued.LastRefreshError
		c.issued = true
		return c, nil
	})
	switch {
	case errors.Is(err, errIntegrationGone):
		return nil // the record went with its integration
	case err != nil:
		return err
	case cs.unsavedEntry(key) != nil:
		return fmt.Errorf("connection %q: %w", key, errStillUnsaved)
	}
	return nil
}

// recordApplies says whether rec's credentials go into c, the connection as
// stored (nil: none), under the connection's lock: only into the connection
// the record was written for, only over older credentials, and a
// connection is created only by a record written when it was new, which
// nobody has deleted since (deleting a connection deletes its records
// first).
func recordApplies(ctx context.Context, s logical.Storage, rec *issuedTokensWAL, c *connectionEntry) (bool, error) {
	issued := rec.Entry
	if rec.WALID == "" {
		// An earlier version's record: it applies only while storage
		// still holds the refresh token it replaced.
		return c != nil && rec.Existed && c.CreatedAt.Equal(issued.CreatedAt) &&
			sha256Hex(c.Credentials.RefreshToken) == rec.PreviousRefreshToken, nil
	}
	live, err := framework.GetWAL(ctx, s, rec.WALID)
	if err != nil {
		return false, fmt.Errorf("reading WAL record %q: %w", rec.WALID, err)
	}
	switch {
	case live == nil:
		return false, nil
	case c == nil:
		return rec.Created, nil
	}
	return c.CreatedAt.Equal(issued.CreatedAt) && issued.CredentialsIssuedAt.After(c.CredentialsIssuedAt) &&
		sameIssuance(issued, c), nil
}

// sameIssuance says that credentials issued for one entry may stand in for
// c's: the same APP installation and, where both know it, the same
// integration. Issue times come from the clocks of different nodes, so a
// newer time alone cannot tell an old installation's token from a current
// one.
func sameIssuance(issued, c *connectionEntry) bool {
	if issued.InstallationID != c.InstallationID || !sameClient(c, issued) {
		return false // another installation, or a client the customer may have revoked
	}
	if !issued.IntegrationCreatedAt.IsZero() && !c.IntegrationCreatedAt.IsZero() && !issued.IntegrationCreatedAt.Equal(c.IntegrationCreatedAt) {
		return false
	}
	return true
}

// decodeWAL decodes a WAL record, which the framework hands over as decoded
// JSON (map[string]any), back into its struct through JSON, so that times
// and nested structs come back as they were written, and upgrades its
// entry as a stored one is. A record of a newer format is refused (and so
// kept for the version that wrote it).
func decodeWAL(data any, out *issuedTokensWAL) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encoding WAL data: %w", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		if ferr := newerFormatOf(b); ferr != nil {
			return ferr
		}
		return fmt.Errorf("decoding WAL data: %w", err)
	}
	if err := out.checkFormat(); err != nil {
		return err
	}
	if out.Entry != nil {
		return out.Entry.upgrade()
	}
	return nil
}
