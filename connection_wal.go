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
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

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

	// Base is the stored entry the unsaved change started from: the
	// record applies only while storage still holds its credentials, and
	// then all of it (config, client, installation, metadata and tags
	// with the tokens), so that a token never lands beside a config it
	// was not issued for. Nil when storage held nothing, and in records of
	// earlier versions.
	Base *walBase `json:"base,omitempty"`

	// Records of earlier versions, which have no WALID, named the refresh
	// token storage held when the provider answered instead.
	Existed              bool   `json:"existed,omitempty"`
	PreviousRefreshToken string `json:"previous_refresh_token_sha256,omitempty"`
}

// walBase is what a record knows of the stored entry its change started
// from: the stamp of its credentials, and its refresh state, so that an
// applied record whose status storage no longer holds emits the event of
// that change (its own process recorded those of the change it made).
type walBase struct {
	CredentialsIssuedAt time.Time     `json:"credentials_issued_at"`
	Status              refreshStatus `json:"refresh_status"`
	Failures            int           `json:"refresh_failures,omitempty"`
}

// walBaseOf is the base of a change that started from stored (nil: none).
func walBaseOf(stored *connectionEntry) *walBase {
	if stored == nil {
		return nil
	}
	return &walBase{CredentialsIssuedAt: stored.CredentialsIssuedAt, Status: stored.refreshState(), Failures: stored.RefreshFailures}
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
// record and returns its id; created says storage holds no entry for it,
// base what it held. It writes the record as framework.PutWAL does, but
// under an id chosen first, which the record carries.
func putIssuedTokensWAL(ctx context.Context, s logical.Storage, c *connectionEntry, created bool, base *walBase) (string, error) {
	id := walIDPrefix(c.Integration, c.ConnectionID) + rand.Text()
	value, err := encodeEntry(&framework.WALEntry{
		Kind:      walKindIssuedTokens,
		Data:      &issuedTokensWAL{WALID: id, Entry: c, Created: created, Base: base},
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

// errStillUnsaved keeps the WAL record of an entry this process still holds
// in memory because storage refuses it.
var errStillUnsaved = errors.New("still waiting for storage; its WAL record is kept")

// RollForward stores the entry of a WAL record, all of it, if the record
// applies to the connection as stored (recordApplies). While this process
// still holds the connection unsaved, it tries to store that entry (the
// latest) instead and fails, which keeps the record, until storage takes it.
func (cs *connectionStore) RollForward(ctx context.Context, s logical.Storage, rec *issuedTokensWAL) error {
	issued := rec.Entry
	key := connectionKey(issued.Integration, issued.ConnectionID)
	_, err := cs.update(ctx, s, issued.Integration, issued.ConnectionID, func(c *connectionEntry) (*connectionEntry, error) {
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
		// All of the record or nothing: the token with what it was issued
		// for (config, client, installation) and the rest of the change.
		fresh := issued.clone()
		fresh.events = nil
		fresh.issued = true
		if c != nil && rec.Base != nil {
			noteStatusApplied(c, fresh, rec.Base)
		}
		return fresh, nil
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
	case !c.CreatedAt.Equal(issued.CreatedAt):
		return false, nil
	case rec.Base != nil:
		// Storage still holds the credentials the change started from:
		// nothing has stored newer ones since, whatever the clocks say.
		return c.CredentialsIssuedAt.Equal(rec.Base.CredentialsIssuedAt) && sameIntegration(issued, c), nil
	}
	return issued.CredentialsIssuedAt.After(c.CredentialsIssuedAt) && sameIssuance(issued, c), nil
}

// sameIssuance says, for a record without a base (one that created its
// connection, or an earlier version's), that the token it holds was issued
// for what c names now: the same APP installation, client and, where both
// know it, the same integration. Issue times come from the clocks of
// different nodes, so a newer time alone cannot tell an old installation's
// token from a current one. (A record with a base needs none of this: it
// applies only over the very credentials its change started from.)
func sameIssuance(issued, c *connectionEntry) bool {
	if issued.InstallationID != c.InstallationID || !sameClient(c, issued) {
		return false // another installation, or a client the customer may have revoked
	}
	return sameIntegration(issued, c)
}

// sameIntegration says that two entries of one connection belong to the
// same integration, where both know it (not one deleted and re-created
// under the same name).
func sameIntegration(issued, c *connectionEntry) bool {
	return issued.IntegrationCreatedAt.IsZero() || c.IntegrationCreatedAt.IsZero() || issued.IntegrationCreatedAt.Equal(c.IntegrationCreatedAt)
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
		return fmt.Errorf("%w: %w", errUndecodableWAL, err)
	}
	if err := out.checkFormat(); err != nil {
		return err
	}
	if out.Entry != nil {
		return out.Entry.upgrade()
	}
	return nil
}

// errUndecodableWAL marks a record that no longer decodes: it can never be
// applied, so the start does not hold its connection back for it (the
// rollback keeps it, for an operator to look at).
var errUndecodableWAL = errors.New("decoding WAL data")

// walReplayWait bounds how long a use of a connection waits, at start, for
// the WAL records a previous process left for it; past it the use answers
// 503 (errWALPending).
const walReplayWait = 10 * time.Second

// walReplayRetry is the first pause before the start's replay tries a
// record again; it doubles up to walReplayRetryMax.
const (
	walReplayRetry    = 250 * time.Millisecond
	walReplayRetryMax = 10 * time.Second
)

// walGate holds back, from the moment the plugin starts, every use of a
// connection (read, refresh, write) whose WAL records a previous process
// left are not applied yet: until they are, storage may hold a refresh
// token the provider has spent, and a refresh with it would have a
// provider that revokes a token family on reuse kill the valid one too.
// A plugin that never armed it (a standby, a test without initialize)
// holds nothing back.
type walGate struct {
	// open is set while nothing is held back: the hot path reads only it.
	open atomic.Bool
	mu   sync.Mutex
	// listed is closed once the WAL's records are known; until then every
	// connection is held back.
	listed chan struct{}
	// pending are the unapplied records by connection (walIDPrefix), each
	// with the channel closed once all of them are applied.
	pending map[string]*walPendingRecords
	// wait and retry are walReplayWait and walReplayRetry, shorter in tests.
	wait, retry time.Duration
}

// walPendingRecords are one connection's unapplied records.
type walPendingRecords struct {
	ids     map[string]bool
	applied chan struct{}
}

func newWALGate() *walGate {
	g := &walGate{pending: map[string]*walPendingRecords{}, wait: walReplayWait, retry: walReplayRetry}
	g.open.Store(true)
	return g
}

// arm holds back every connection until the WAL is listed.
func (g *walGate) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.listed = make(chan struct{})
	g.open.Store(false)
}

// holdOnly holds back the connections of records (record id → connection
// prefix), the WAL as one listing found it, and no other: a hold of an
// earlier, failed listing whose record is gone by now would otherwise
// never be released, since the replay applies only the records listed.
func (g *walGate) holdOnly(records map[string]string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	pending := make(map[string]*walPendingRecords, len(records))
	for id, prefix := range records {
		p := pending[prefix]
		if p == nil {
			p = g.pending[prefix] // one a waiter may already wait on
			if p == nil {
				p = &walPendingRecords{applied: make(chan struct{})}
			}
			p.ids = map[string]bool{}
			pending[prefix] = p
		}
		p.ids[id] = true
	}
	for prefix, p := range g.pending {
		if pending[prefix] == nil {
			close(p.applied) // its records are gone
		}
	}
	g.pending = pending
}

// listedAll lets through every connection without a record.
func (g *walGate) listedAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.listed != nil {
		close(g.listed)
		g.listed = nil
	}
	g.open.Store(len(g.pending) == 0)
}

// release lets connection prefix through once its record id is applied
// (or held unsaved in memory, which reads see first).
func (g *walGate) release(prefix, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pending[prefix]
	if p == nil {
		return
	}
	delete(p.ids, id)
	if len(p.ids) == 0 {
		close(p.applied)
		delete(g.pending, prefix)
	}
	g.open.Store(g.listed == nil && len(g.pending) == 0)
}

// await returns once connection id of integration may be used, or
// errWALPending when the bound passes first.
func (g *walGate) await(ctx context.Context, integration, id string) error {
	if g.open.Load() {
		return nil
	}
	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	pending := func() error {
		return &engineError{kind: errWALPending, msg: fmt.Sprintf(
			"connection %q of integration %q has tokens a previous process left in the write-ahead log that are not stored yet; retry in a few seconds", id, integration)}
	}
	g.mu.Lock()
	listed := g.listed
	g.mu.Unlock()
	if listed != nil {
		select {
		case <-listed:
		case <-timer.C:
			return pending()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	g.mu.Lock()
	p := g.pending[walIDPrefix(integration, id)]
	g.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.applied:
		return nil
	case <-timer.C:
		return pending()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// awaitIntegration returns once no connection of integration is held back,
// or errWALPending when the bound passes first (an integration delete at
// start: until its records are applied, the connections only they hold
// are not in storage).
func (g *walGate) awaitIntegration(ctx context.Context, integration string) error {
	if g.open.Load() {
		return nil
	}
	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	pending := &engineError{kind: errWALPending, msg: fmt.Sprintf(
		"integration %q has connections whose tokens a previous process left in the write-ahead log are not stored yet; retry in a few seconds", integration)}
	wait := func(ch <-chan struct{}) error {
		select {
		case <-ch:
			return nil
		case <-timer.C:
			return pending
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	g.mu.Lock()
	listed := g.listed
	g.mu.Unlock()
	if listed != nil {
		if err := wait(listed); err != nil {
			return err
		}
	}
	prefix := walIntegrationPrefix(integration)
	for {
		var next *walPendingRecords
		g.mu.Lock()
		for p, recs := range g.pending {
			if strings.HasPrefix(p, prefix) {
				next = recs
				break
			}
		}
		g.mu.Unlock()
		if next == nil {
			return nil
		}
		if err := wait(next.applied); err != nil {
			return err
		}
	}
}

// walConnectionPrefix is the part of a record's id that names its
// connection, false for the random ids of earlier versions' records.
func walConnectionPrefix(id string) (string, bool) {
	const n = 16 + 1 + 16 + 1
	if len(id) <= n || id[16] != '.' || id[33] != '.' {
		return "", false
	}
	for i, r := range id[:n] {
		if i == 16 || i == 33 {
			continue
		}
		if !strings.ContainsRune("0123456789abcdef", r) {
			return "", false
		}
	}
	return id[:n], true
}

// HoldForReplay holds back every connection until ReplayAtStart has
// listed the WAL, and those with a record until it is applied. initialize
// calls it before the plugin serves a request.
func (cs *connectionStore) HoldForReplay() {
	cs.walGate.arm()
}

// ReplayAtStart applies the WAL records a previous process left, without
// waiting for the rollback's minimum age, while the gate (HoldForReplay)
// holds back every connection that has one. It retries what fails
// (storage that refuses it for a while) until every record is applied or
// ctx ends. firstPass is called once every record was tried once, so that
// the refresh queue's build need not wait for a record that keeps failing.
func (cs *connectionStore) ReplayAtStart(ctx context.Context, s logical.Storage, logger func() hclog.Logger, firstPass func()) {
	ids := cs.listWALForReplay(ctx, s, logger)
	cs.walGate.listedAll()
	pause := cs.walGate.retry
	for pass := 0; ; pass++ {
		ids = cs.replayOnce(ctx, s, ids)
		if pass == 0 {
			firstPass()
		}
		if len(ids) == 0 || ctx.Err() != nil {
			return
		}
		logger().Warn("storing the credentials a previous process left in the WAL; trying again", "records", len(ids), "in", pause)
		if !sleepCtx(ctx, pause) {
			return
		}
		pause = min(2*pause, walReplayRetryMax)
	}
}

// listWALForReplay lists the WAL, retrying until storage answers, and
// holds back the connection of each record; it returns the records' ids.
// An earlier version's record, whose id names no connection, is read to
// find its connection.
func (cs *connectionStore) listWALForReplay(ctx context.Context, s logical.Storage, logger func() hclog.Logger) []string {
	pause := cs.walGate.retry
	for {
		ids, err := cs.holdWALRecords(ctx, s)
		if err == nil || ctx.Err() != nil {
			return ids
		}
		logger().Warn("listing the WAL at start; trying again", "error", err, "in", pause)
		if !sleepCtx(ctx, pause) {
			return nil
		}
		pause = min(2*pause, walReplayRetryMax)
	}
}

func (cs *connectionStore) holdWALRecords(ctx context.Context, s logical.Storage) ([]string, error) {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("listing the WAL: %w", err)
	}
	held := make(map[string]string, len(ids))
	for _, id := range ids {
		prefix, ok := walConnectionPrefix(id)
		if !ok {
			entry, err := framework.GetWAL(ctx, s, id)
			if err != nil {
				return nil, fmt.Errorf("reading WAL record %q: %w", id, err)
			}
			var rec issuedTokensWAL
			if entry == nil || entry.Kind != walKindIssuedTokens || decodeWAL(entry.Data, &rec) != nil || rec.Entry == nil {
				continue // gone, or not one a connection waits for
			}
			prefix = walIDPrefix(rec.Entry.Integration, rec.Entry.ConnectionID)
		}
		held[id] = prefix
	}
	cs.walGate.holdOnly(held)
	return ids, nil
}

// walReplayWorkers bounds the records the start's replay applies at once:
// a save storage refuses is retried within its request (saveRetryDelays),
// so one at a time would keep the last connections waiting for all.
const walReplayWorkers = 8

// replayOnce applies each record once and returns those that failed. A
// record whose entry storage still refuses is held unsaved in memory,
// where reads find it: its connection is let through. Two records of one
// connection are applied one after the other, under its lock.
func (cs *connectionStore) replayOnce(ctx context.Context, s logical.Storage, ids []string) []string {
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
	)
	work := make(chan string)
	for range min(walReplayWorkers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				err := cs.replayRecord(ctx, s, id)
				if errors.Is(err, errUndecodableWAL) {
					cs.logger().Error("a WAL record does not decode and cannot be applied; its connection is served as stored", "wal_id", id, "error", err)
					err = nil
				}
				if err != nil && !errors.Is(err, errStillUnsaved) {
					mu.Lock()
					failed = append(failed, id)
					mu.Unlock()
					continue
				}
				if prefix, ok := walConnectionPrefix(id); ok {
					cs.walGate.release(prefix, id)
				} else {
					cs.walGate.releaseID(id)
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	sort.Strings(failed)
	return failed
}

// replayRecord applies one record and deletes it.
func (cs *connectionStore) replayRecord(ctx context.Context, s logical.Storage, id string) error {
	entry, err := framework.GetWAL(ctx, s, id)
	if err != nil {
		return fmt.Errorf("WAL record %q: %w", id, err)
	}
	if entry == nil {
		return nil // applied (and deleted) by the rollback meanwhile
	}
	if err := cs.WALRollback(ctx, &logical.Request{Storage: s}, entry.Kind, entry.Data); err != nil {
		return fmt.Errorf("WAL record %q: %w", id, err)
	}
	if err := framework.DeleteWAL(ctx, s, id); err != nil {
		return fmt.Errorf("WAL record %q: %w", id, err)
	}
	return nil
}

// releaseID releases record id wherever it was held (an earlier version's
// record, whose id names no connection).
func (g *walGate) releaseID(id string) {
	g.mu.Lock()
	var prefix string
	for p, recs := range g.pending {
		if recs.ids[id] {
			prefix = p
		}
	}
	g.mu.Unlock()
	if prefix != "" {
		g.release(prefix, id)
	}
}

// sleepCtx sleeps d, false when ctx ends first (the WAL replay's pauses
// between tries, the proxy's Retry-After waits).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
