// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// scheduler is what the connection store tells the refresh engine: the
// engine implements it, the store knows nothing else of it.
type scheduler interface {
	// schedule sets c.NextRefreshAt; it runs before c is saved.
	schedule(c *connectionEntry, cfg *configEntry, now time.Time)
	// track queues c's next refresh once c is saved.
	track(c *connectionEntry)
	// untrack forgets a deleted connection.
	untrack(key string)
}

// Retries of a save that must not fail, within the request that made it.
var saveRetryDelays = []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 400 * time.Millisecond}

// connectionStore is the only code that reads and writes connection entries
// in storage. It owns their per-connection locks, the cache and the
// notification of the refresh scheduler, so every change to a connection
// goes the same way: lock, load fresh, apply, save, cache, reschedule.
//
// Lock order: a connection's lock, then its integration's. A change holds
// the connection's lock throughout, across a provider call too, and its
// integration's lock for reading only around its load and its save, so
// that a forced integration delete (which holds it for writing, and takes
// no connection's lock) cannot interleave with either and leave an orphan
// connection, and no integration write waits on a provider.
type connectionStore struct {
	locks            *keyedLocks // by connection key
	integrationLocks *keyedLocks // by integration name
	// eventLocks order one connection's event recordings (by connection
	// key): taken last, around recording alone, so that a forced
	// integration delete, which takes no connection lock, records a
	// connection's deletion after the events it still owes.
	eventLocks *keyedLocks
	cache      *connectionCache
	sched      scheduler
	config     func(context.Context, logical.Storage) (*configEntry, error)
	now        func() time.Time

	// events records the lifecycle events of saved changes and deletes
	// (event_recording.go).
	events eventRecorder
	// owed are events of saved changes whose recording failed, recorded
	// again by RecordOwed; owedDropped counts those dropped beyond
	// maxOwedEvents since the plugin started.
	owedMu      sync.Mutex
	owed        []owedEvent
	owedDropped atomic.Int64
	// logger says what is lost when an owed event is dropped.
	logger func() hclog.Logger

	// unsaved holds entries with provider-issued credentials whose save
	// failed: the provider has spent the old refresh token, so the new one
	// is kept, served to reads, and saved again until it is stored.
	unsavedMu    sync.Mutex
	unsaved      map[string]*unsavedEntry
	unsavedCount atomic.Int64 // len(unsaved), read without the lock
	// supersededWALs are records of earlier credentials whose deletion
	// failed, deleted again by SaveUnsaved. Until then they are harmless:
	// a record applies only over older credentials than its own.
	supersededWALs map[string]bool

	// changing holds the connections a change is under way for (its
	// connection lock held, its integration's lock let go across the
	// provider call), each true once a forced delete of its integration has
	// deleted it meanwhile: the change's save then stores nothing of it. A
	// key is there only while its one change runs, so nothing lingers.
	changingMu sync.Mutex
	changing   map[string]bool
	// revokeUnstored revokes, at in's provider, tokens issued for a write
	// that the store refused (the integration changed or went meanwhile);
	// nil revokes nothing. The backend sets it to the issuer's.
	revokeUnstored func(ctx context.Context, in *integrationEntry, c *connectionEntry)

	// walGate holds back, at start, the connections whose WAL records a
	// previous process left are not applied yet (connection_wal.go).
	walGate *walGate

	// proxyCalls are the proxied calls of each connection since its last
	// save, added to it by the next one.
	proxyCalls proxyCallCounts

	// marksMu orders the withdrawals of scheduleMarksCompleteKey by saves
	// that store a connection without its schedule mark (storage refused
	// the mark, not the entry) and a check's write of that key: a check
	// records the marks complete only if no withdrawal began since it
	// began (marksWithdrawn, bumped at a withdrawal's start and end) and
	// none is under way (withdrawing) (connection_schedule_marks.go).
	marksMu        sync.Mutex
	marksWithdrawn int64
	withdrawing    int
}

// newConnectionStore returns the store that schedules its saves in sched
// by the mount's configuration (its last one seen when storage cannot be
// read: a save of issued tokens must not fail for it) and records their
// events into events. All are built first and handed to it.
func newConnectionStore(sched scheduler, mountConfig *mountConfigStore, events eventRecorder, logger func() hclog.Logger, now func() time.Time) *connectionStore {
	return &connectionStore{
		locks:            newKeyedLocks(),
		integrationLocks: newKeyedLocks(),
		eventLocks:       newKeyedLocks(),
		changing:         map[string]bool{},
		cache:            newConnectionCache(),
		sched:            sched,
		config:           mountConfig.getOrLast,
		events:           events,
		now:              now,
		unsaved:          map[string]*unsavedEntry{},
		supersededWALs:   map[string]bool{},
		walGate:          newWALGate(),
		logger:           logger,
	}
}

// NoteProxyCall counts one proxied call of a connection, in memory: the
// next save of its entry stores it.
func (cs *connectionStore) NoteProxyCall(integration, id string, at time.Time) {
	cs.proxyCalls.note(connectionKey(integration, id), at)
}

// maxProxyCountFlushes bounds the connections whose call counts one
// periodic flush stores.
const maxProxyCountFlushes = 1000

// FlushProxyCalls stores the proxied calls of connections that no save
// has stored yet (an API key's connection is saved only when written): one
// save per connection with calls since, at most maxProxyCountFlushes a
// run, from the periodic hook. The calls of a connection deleted meanwhile
// are dropped.
func (cs *connectionStore) FlushProxyCalls(ctx context.Context, s logical.Storage) error {
	var errs []error
	for _, key := range cs.proxyCalls.keys(maxProxyCountFlushes) {
		integration, id, ok := splitConnectionKey(key)
		if !ok {
			cs.proxyCalls.drop(key)
			continue
		}
		_, err := cs.Update(ctx, s, integration, id, func(c *connectionEntry) (*connectionEntry, error) {
			if c == nil {
				cs.proxyCalls.drop(key)
				return nil, errUnchanged
			}
			return c, nil // Update adds the pending calls as it saves
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ProxyCalls are a connection's proxied calls: c's stored count with the
// calls since its last save added.
func (cs *connectionStore) ProxyCalls(c *connectionEntry) (int64, time.Time) {
	cp := connectionEntry{ProxyCalls: c.ProxyCalls, LastProxyCallAt: c.LastProxyCallAt}
	cs.proxyCalls.pending(connectionKey(c.Integration, c.ConnectionID)).addTo(&cp)
	return cp.ProxyCalls, cp.LastProxyCallAt
}

// Get returns a connection for reading, from memory when it can: the
// caller's own copy, nil when the connection does not exist. It takes no
// lock; what it returns may be refreshed by someone else a moment later.
func (cs *connectionStore) Get(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, error) {
	if err := cs.walGate.await(ctx, integration, id); err != nil {
		return nil, err
	}
	key := connectionKey(integration, id)
	if c := cs.unsavedEntry(key); c != nil {
		return c, nil
	}
	if c, ok := cs.cache.get(key); ok {
		return c, nil
	}
	gen := cs.cache.generation(key)
	c, size, err := readConnectionEntry(ctx, s, key)
	if err != nil || c == nil {
		return nil, err
	}
	cs.cache.fill(key, c, size, gen)
	return c, nil
}

// Exists reports whether a connection is stored, without caching it.
func (cs *connectionStore) Exists(ctx context.Context, s logical.Storage, integration, id string) (bool, error) {
	if err := cs.walGate.await(ctx, integration, id); err != nil {
		return false, err
	}
	key := connectionKey(integration, id)
	if c := cs.unsavedEntry(key); c != nil {
		return true, nil
	}
	if _, ok := cs.cache.entries.Peek(key); ok {
		return true, nil
	}
	c, _, err := readConnectionEntry(ctx, s, key)
	return c != nil, err
}

// Update changes one connection under its lock. change gets the entry as
// stored now (nil when there is none) and returns the entry to save, or
// errUnchanged, or an error that leaves everything as it was. Creating a
// connection re-checks its integration under the integration's lock.
//
// At start it first waits for the connection's WAL records (walGate): a
// change must not start from storage's spent tokens.
func (cs *connectionStore) Update(ctx context.Context, s logical.Storage, integration, id string, change func(*connectionEntry) (*connectionEntry, error)) (*connectionEntry, error) {
	if err := cs.walGate.await(ctx, integration, id); err != nil {
		return nil, err
	}
	return cs.update(ctx, s, integration, id, change)
}

// update is Update without the wait for the connection's WAL records: the
// replay of those records, and the retry of entries held unsaved (newer
// than any record), use it.
//
// Only the connection's own lock is held across change, which may wait on a
// provider: its integration's lock is taken for reading around the load and
// around the save alone, so that an integration write waiting for it never
// holds up, behind a slow provider, the other connections of the
// integration. A forced delete of the integration may therefore run while
// change does; the save finds out (changing) and stores nothing of a
// connection it deleted.
func (cs *connectionStore) update(ctx context.Context, s logical.Storage, integration, id string, change func(*connectionEntry) (*connectionEntry, error)) (*connectionEntry, error) {
	key := connectionKey(integration, id)
	defer cs.locks.Lock(key)()
	defer cs.endChange(key)

	loaded, err := cs.loadForChange(ctx, s, integration, key)
	if err != nil {
		return nil, err
	}
	current := loaded.entry
	var arg *connectionEntry
	if current != nil {
		arg = current.clone()
		// Only a change that got credentials from a provider (or stores
		// such an entry again) marks what it returns issued: a caller's
		// edit of an entry held unsaved is not kept unsaved with it, but
		// fails if storage refuses it, as for a stored entry, since the
		// WAL record of the held entry would not carry it.
		arg.issued = false
		arg.issuedBy = nil
	}
	next, err := change(arg)
	if errors.Is(err, errUnchanged) {
		return current, nil
	}
	if err != nil {
		return nil, err
	}
	if loaded.unsaved && !next.issued && sameCallerFields(current, next) {
		// Only the engine's own state moved (a refresh that failed): it
		// stays with the held entry, whose record keeps its tokens.
		next.issued = true
	}
	saved, err := cs.saveChange(ctx, s, integration, key, loaded, next)
	if err != nil && !eventOwed(err) && next.issuedBy != nil && cs.revokeUnstored != nil {
		// Tokens a provider issued for this write that nothing will hold:
		// revoked at the integration that issued them, outside its lock.
		cs.revokeUnstored(ctx, next.issuedBy, next)
	}
	return saved, err
}

// loadedEntry is a connection as a change found it under its integration's
// read lock: the entry (nil: none) and whether it is held unsaved.
type loadedEntry struct {
	entry   *connectionEntry
	unsaved bool
}

// loadForChange loads key for a change under its integration's read lock,
// and marks the change under way (changing) before that lock is let go, so
// that a forced delete of the integration that runs from then on is seen
// by the save. The caller holds the connection's lock.
func (cs *connectionStore) loadForChange(ctx context.Context, s logical.Storage, integration, key string) (loadedEntry, error) {
	defer cs.integrationLocks.RLock(integration)()
	cs.changingMu.Lock()
	cs.changing[key] = false
	cs.changingMu.Unlock()
	c, unsaved, err := cs.loadLocked(ctx, s, key)
	return loadedEntry{entry: c, unsaved: unsaved}, err
}

// endChange ends key's change under way.
func (cs *connectionStore) endChange(key string) {
	cs.changingMu.Lock()
	delete(cs.changing, key)
	cs.changingMu.Unlock()
}

// deletedWhileChanging notes that key was deleted (by a forced delete of
// its integration, without its lock) while a change of it is under way.
func (cs *connectionStore) deletedWhileChanging(key string) {
	cs.changingMu.Lock()
	if _, ok := cs.changing[key]; ok {
		cs.changing[key] = true
	}
	cs.changingMu.Unlock()
}

// saveChange saves next, the change of loaded, under its integration's read
// lock, which an integration delete holds for writing: it checks first that
// the connection was not deleted with its integration since it was loaded,
// that a token issued for this write was issued by the integration as it
// is stored, and that a new connection's (or an unsaved entry's)
// integration is still the one it belongs to. The caller holds the
// connection's lock.
func (cs *connectionStore) saveChange(ctx context.Context, s logical.Storage, integration, key string, loaded loadedEntry, next *connectionEntry) (*connectionEntry, error) {
	defer cs.integrationLocks.RLock(integration)()
	current, unsaved := loaded.entry, loaded.unsaved
	if err := cs.checkNotDeleted(integration, key, loaded); err != nil {
		if unsaved {
			// Deleted with its integration: the held entry goes too.
			return nil, errors.Join(err, cs.discardUnsaved(ctx, s, key))
		}
		return nil, err
	}
	var err error
	if next.issuedBy != nil {
		// A refusal here is the write's alone: whatever is held for the
		// connection (perhaps of a re-created integration) stays.
		err = cs.checkIssuerUnchanged(ctx, s, next.issuedBy)
	}
	if err == nil && current == nil {
		// A create: the integration may have been deleted, or re-created,
		// since the caller looked. Its deletion holds its lock for
		// writing, so it cannot happen between this check and the save.
		// (An entry held unsaved needs no storage read for it: a delete of
		// its integration drops it, and one that ran since it was loaded
		// is checkNotDeleted's.)
		err = cs.checkIntegration(ctx, s, integration, next)
	}
	if err != nil {
		return nil, err
	}
	events := next.takeEvents()
	calls := cs.proxyCalls.take(key)
	calls.addTo(next)
	if err := cs.save(ctx, s, next, current, unsaved); err != nil {
		cs.proxyCalls.giveBack(key, calls)
		return nil, err
	}
	if err := cs.recordEvents(ctx, s, next, events); err != nil {
		// Saved, and its events owed: the caller decides whether its
		// request fails (a write) or goes on (a refresh).
		return next.clone(), err
	}
	return next.clone(), nil
}

// checkNotDeleted says, under the integration's read lock, whether the
// connection loaded was deleted since by a forced delete of its
// integration, the only delete that runs without the connection's lock:
// then nothing of the change may be stored, not even in a re-created
// integration. The delete says so itself for each connection it deleted
// (deletedWhileChanging), so no storage read, which could fail, decides;
// a delete that failed before reaching this connection leaves the change
// to store its tokens.
func (cs *connectionStore) checkNotDeleted(integration, key string, loaded loadedEntry) error {
	cs.changingMu.Lock()
	deleted := cs.changing[key]
	cs.changingMu.Unlock()
	if loaded.entry == nil || !deleted {
		return nil
	}
	// Not found to its caller (a read that refreshed answers 404), and
	// errIntegrationGone to the store's own retries, which drop the entry.
	return &engineError{kind: errConnectionNotFound, cause: errIntegrationGone, msg: fmt.Sprintf(
		"connection %q was deleted with integration %q while it changed; nothing of the change was stored", key, integration)}
}

// checkIssuerUnchanged says whether the integration that issued a write's
// token (issuer, as the write read it, its provider's settings filled in)
// is still stored as it was, and its provider's settings too: one written
// meanwhile may have another token URL or client, and one deleted or
// re-created is another provider. The write then stores nothing.
func (cs *connectionStore) checkIssuerUnchanged(ctx context.Context, s logical.Storage, issuer *integrationEntry) error {
	in, err := getIntegration(ctx, s, issuer.Name)
	if err != nil {
		return err
	}
	if in == nil || !in.CreatedAt.Equal(issuer.CreatedAt) {
		return fmt.Errorf("%w: %q was deleted while its provider issued the token; nothing was stored", errIntegrationGone, issuer.Name)
	}
	changed := !in.UpdatedAt.Equal(issuer.UpdatedAt)
	if !changed && in.Provider != "" {
		// The settings it takes from its provider (a token URL, token
		// parameters) may have been written meanwhile too.
		effective, err := effectiveIntegration(ctx, s, in)
		if err != nil {
			return err
		}
		changed = !sameJSON(effective.EndpointSettings, issuer.EndpointSettings)
	}
	if changed {
		return &engineError{kind: errIntegrationChanged, msg: fmt.Sprintf(
			"integration %q (or its provider) was changed while the connection's token was issued; nothing was stored and the token was revoked where the integration can revoke it: write the connection again", issuer.Name)}
	}
	return nil
}

// checkIntegration checks that integration exists and is the one next was
// created in, and stamps a new entry with it.
func (cs *connectionStore) checkIntegration(ctx context.Context, s logical.Storage, integration string, next *connectionEntry) error {
	in, err := getIntegration(ctx, s, integration)
	if err != nil {
		return err
	}
	if in == nil || (!next.IntegrationCreatedAt.IsZero() && !next.IntegrationCreatedAt.Equal(in.CreatedAt)) {
		return fmt.Errorf("%w: %q was deleted", errIntegrationGone, integration)
	}
	if next.IntegrationCreatedAt.IsZero() {
		next.IntegrationCreatedAt = in.CreatedAt
	}
	return nil
}

// loadLocked reads a connection for a change: an unsaved entry first, then
// storage; unsaved says which. The caller holds the connection's lock.
func (cs *connectionStore) loadLocked(ctx context.Context, s logical.Storage, key string) (c *connectionEntry, unsaved bool, err error) {
	if c := cs.unsavedEntry(key); c != nil {
		return c, true, nil
	}
	c, _, err = readConnectionEntry(ctx, s, key)
	return c, false, err
}

// save stores c, reschedules it and caches it; previous is what storage
// held (nil: nothing), or the entry held unsaved in its place (held). The
// caller holds c's lock. Credentials a provider just issued are never
// dropped: a failed save is retried, then kept in memory (and in a WAL
// entry if storage takes it) until stored.
func (cs *connectionStore) save(ctx context.Context, s logical.Storage, c, previous *connectionEntry, held bool) error {
	cfg, err := cs.config(ctx, s)
	if err != nil {
		return err
	}
	cs.sched.schedule(c, cfg, cs.now())
	cs.stampCredentials(c, previous)
	key := connectionKey(c.Integration, c.ConnectionID)
	value, err := encodeEntry(c)
	if err != nil {
		return fmt.Errorf("encoding %q: %w", key, err)
	}
	entry := &logical.StorageEntry{Key: key, Value: value}
	// Issued credentials are stored whatever their size: refusing them
	// would lose them. Everything else stays under the cap, so that the
	// entry can always take its next tokens.
	if !c.issued && len(entry.Value) > maxConnectionEntryBytes {
		return &userError{fmt.Sprintf("the connection would be %d bytes stored; the limit is %d", len(entry.Value), maxConnectionEntryBytes)}
	}
	// The new schedule mark goes first, so that no crash leaves a stored
	// connection without its current mark (connection_schedule_marks.go).
	marked, withdrawn, err := cs.markBeforeSave(ctx, s, c, previous, held)
	defer withdrawn()
	if err != nil {
		if !c.issued {
			return err
		}
		// Storage took neither the mark nor the withdrawal of the marks'
		// completeness: the issued tokens wait in memory and the WAL,
		// their mark is written with them when storage takes writes.
		cs.keepUnsaved(ctx, s, key, c, previous)
		return nil
	}
	err = putEntry(ctx, s, entry)
	for i := 0; err != nil && c.issued && i < len(saveRetryDelays); i++ {
		time.Sleep(saveRetryDelays[i])
		err = putEntry(ctx, s, entry)
	}
	size := len(entry.Value)
	if err != nil {
		if c.issued {
			cs.keepUnsaved(ctx, s, key, c, previous)
			return nil
		}
		// What storage holds now is unknown; let the next read find out.
		cs.cache.invalidate(key)
		return err
	}
	if marked {
		cs.dropEarlierMarks(ctx, s, key, c, previous)
	}
	cs.forgetUnsaved(ctx, s, key)
	cs.cache.put(key, c, size)
	cs.sched.track(c)
	return nil
}

// stampCredentials sets c.CredentialsIssuedAt when c's credentials differ
// from previous's: later than now and than previous's, so that the stamps
// of one connection only grow. A stamp already later than previous's (a
// WAL record's) is kept.
func (cs *connectionStore) stampCredentials(c, previous *connectionEntry) {
	var before time.Time
	if previous != nil {
		before = previous.CredentialsIssuedAt
		if c.CredentialsIssuedAt.After(before) || sameCredentials(c.Credentials, previous.Credentials) {
			return
		}
	} else if !c.CredentialsIssuedAt.IsZero() {
		return
	}
	c.CredentialsIssuedAt = cs.now().UTC()
	if !c.CredentialsIssuedAt.After(before) {
		c.CredentialsIssuedAt = before.Add(time.Nanosecond)
	}
}

// sameCredentials compares two credentials as they are stored.
func sameCredentials(a, b credentials) bool {
	return sameJSON(a, b)
}

// Delete removes a connection under its lock, its WAL records first.
// before, if given, sees the entry as it was once it is deleted (to revoke
// its tokens) and returns warnings for the response. Deleting a connection
// that does not exist is not an error. At start it waits for the
// connection's WAL records (walGate), so that it revokes the tokens the
// provider honours, not the spent ones storage held.
func (cs *connectionStore) Delete(ctx context.Context, s logical.Storage, integration, id string, before func(*connectionEntry) []string) ([]string, error) {
	if err := cs.walGate.await(ctx, integration, id); err != nil {
		return nil, err
	}
	defer cs.locks.Lock(connectionKey(integration, id))()
	unlockIntegration := cs.integrationLocks.RLock(integration)
	c, err := cs.deleteLocked(ctx, s, integration, id, before != nil, nil, true)
	unlockIntegration()
	if err != nil {
		return nil, err
	}
	// The revocation may wait on the provider: only the connection's own
	// lock is held across it.
	return cs.afterDelete(ctx, s, c, before), nil
}

// deleteLocked deletes a connection's WAL records (walIDs and the one of
// its unsaved entry) and then the connection, and returns the entry as it
// was (nil when neither revoking nor events need it) for afterDelete. A
// record that cannot be deleted fails the delete with nothing else
// changed: left behind, it could bring the connection back.
//
// The caller holds the connection's lock and the integration's for
// reading, or the integration's for writing (a forced integration delete,
// which takes no connection's lock: a change holds that across its provider
// call, and stores nothing once it finds its connection deleted, see
// checkNotDeleted). listWAL has it list the WAL for the connection's
// records; a caller that listed the WAL under the integration's write lock
// hands its list in walIDs instead. revoking says the entry's credentials
// are needed.
func (cs *connectionStore) deleteLocked(ctx context.Context, s logical.Storage, integration, id string, revoking bool, walIDs []string, listWAL bool) (*connectionEntry, error) {
	key := connectionKey(integration, id)
	defer cs.proxyCalls.drop(key)
	// The WAL may hold records a previous process wrote, of a connection
	// storage never held: they would create it again. Listed under the
	// connection's lock, so that no refresh adds one between the list and
	// the delete.
	if listWAL {
		listed, err := framework.ListWAL(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("listing the WAL: %w", err)
		}
		walIDs = walIDsWithPrefix(listed, walIDPrefix(integration, id))
	}
	var c *connectionEntry
	if revoking || cs.events != nil {
		var err error
		c, _, err = cs.loadLocked(ctx, s, key)
		undecodable := err != nil && !revoking && errors.Is(err, errUndecodableEntry)
		if err != nil && !undecodable {
			// A revoking delete needs the entry's credentials; the
			// caller can still delete with revoke=false.
			return nil, err
		}
		if undecodable {
			// An entry that no longer decodes must not keep its
			// integration from being deleted: its event says what the
			// key alone tells.
			c = &connectionEntry{Integration: integration, ConnectionID: id}
		}
	}
	if walID := cs.unsavedWALID(key); walID != "" && !slices.Contains(walIDs, walID) {
		walIDs = append(walIDs, walID)
	}
	marks := cs.marksOf(key, c) // taken before the held entry is dropped
	err := deleteWALs(ctx, s, walIDs)
	if err == nil {
		err = s.Delete(ctx, key)
	}
	if err != nil {
		// The connection stays as it was, usable: nothing was recorded
		// or revoked yet. Its unsaved tokens may have lost their record
		// above (a failure part way through the records, or at the entry)
		// and get a new one.
		cs.rerecordUnsaved(ctx, s, key)
		return nil, fmt.Errorf("deleting %q: %w", key, err)
	}
	cs.dropMarks(ctx, s, integration, id, marks)
	cs.dropUnsaved(key)
	cs.cache.invalidate(key)
	cs.sched.untrack(key)
	return c, nil
}

// afterDelete records the connection.deleted event of c, which is gone
// from storage, and then runs before (the revocation of its tokens): both
// only once the entry is gone, so that a delete storage refuses leaves the
// connection as every receiver and provider knows it. An event whose
// recording fails is owed (recorded by the periodic hook) and said in a
// warning: the delete itself is done, a repetition would record nothing.
func (cs *connectionStore) afterDelete(ctx context.Context, s logical.Storage, c *connectionEntry, before func(*connectionEntry) []string) []string {
	if c == nil {
		return nil
	}
	var warnings []string
	if err := cs.recordEvents(ctx, s, c, []pendingEvent{{typ: eventConnectionDeleted}}); err != nil {
		warnings = append(warnings, fmt.Sprintf("the connection is deleted; its %s event could not be recorded yet and is recorded within minutes", eventConnectionDeleted))
	}
	if before != nil {
		warnings = append(warnings, before(c)...)
	}
	return warnings
}

// DeleteIntegration deletes an integration's connections, then runs
// deleteEntry to delete the integration itself, with the integration's lock
// held for writing throughout: no connection of it can be created or
// changed meanwhile. Without force, an integration with connections is left
// alone and the error is an *errHasConnections.
//
// Its connections are those in storage, those held unsaved in memory and
// those only a WAL record holds (a previous process's, not applied yet):
// each is the customer's connection, whose tokens a delete without force
// must not drop. At start, a delete without force first waits (bounded, as
// a read does) for the integration's records to be applied. Every WAL
// record of the integration goes first, those a previous process wrote
// included.
func (cs *connectionStore) DeleteIntegration(ctx context.Context, s logical.Storage, integration string, force bool, deleteEntry func() error) error {
	if !force {
		if err := cs.walGate.awaitIntegration(ctx, integration); err != nil {
			return err
		}
	}
	defer cs.integrationLocks.Lock(integration)()
	ids, err := cs.List(ctx, s, integration)
	if err != nil {
		return err
	}
	ids = cs.withUnsavedIDs(integration, ids)
	listed, err := framework.ListWAL(ctx, s)
	if err != nil {
		return fmt.Errorf("listing the WAL: %w", err)
	}
	walIDs := walIDsWithPrefix(listed, walIntegrationPrefix(integration))
	if n := len(ids) + walOnlyConnections(integration, ids, walIDs); n > 0 && !force {
		return &errHasConnections{n}
	}
	if err := refuseNewerWALs(ctx, s, walIDs); err != nil {
		return err
	}
	if err := deleteWALs(ctx, s, walIDs); err != nil {
		cs.rerecordHeld(ctx, s, integration)
		return err
	}
	for _, id := range ids {
		c, err := cs.deleteLocked(ctx, s, integration, id, false, nil, false)
		if err != nil {
			// The integration and its connections not deleted yet stay:
			// their held tokens get back the WAL records deleted above.
			cs.rerecordHeld(ctx, s, integration)
			return err
		}
		// A change of it running its provider call stores nothing of it
		// (checkNotDeleted).
		cs.deletedWhileChanging(connectionKey(integration, id))
		cs.afterDelete(ctx, s, c, nil)
	}
	return deleteEntry()
}

// rerecordHeld writes again the WAL record of every entry of integration
// held unsaved, after a delete that removed the integration's records
// failed before removing those entries.
func (cs *connectionStore) rerecordHeld(ctx context.Context, s logical.Storage, integration string) {
	for _, id := range cs.withUnsavedIDs(integration, nil) {
		cs.rerecordUnsaved(ctx, s, connectionKey(integration, id))
	}
}

// walOnlyConnections counts the connections of integration that only WAL
// records hold: those of walIDs (the integration's records) whose
// connection is none of ids.
func walOnlyConnections(integration string, ids, walIDs []string) int {
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[walIDPrefix(integration, id)] = true
	}
	n := 0
	for _, walID := range walIDs {
		if prefix, ok := walConnectionPrefix(walID); ok && !known[prefix] {
			known[prefix] = true
			n++
		}
	}
	return n
}

// withUnsavedIDs adds to ids (sorted) the ids of integration's connections
// held unsaved, storage may never have held them.
func (cs *connectionStore) withUnsavedIDs(integration string, ids []string) []string {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	cs.unsavedMu.Lock()
	for key := range cs.unsaved {
		in, id, ok := splitConnectionKey(key)
		if ok && in == integration && !seen[id] {
			ids = append(ids, id)
			seen[id] = true
		}
	}
	cs.unsavedMu.Unlock()
	sort.Strings(ids)
	return ids
}

// RLockIntegration holds an integration's lock for reading while a flow
// keeps something that only stands with the integration (the callback's
// tokens held for the application): a delete of the integration, which
// holds it for writing, runs before or after, never between the check that
// it stands and the write.
func (cs *connectionStore) RLockIntegration(integration string) (unlock func()) {
	return cs.integrationLocks.RLock(integration)
}

// LockIntegration holds an integration's lock for writing while an
// integration write runs.
func (cs *connectionStore) LockIntegration(integration string) (unlock func()) {
	return cs.integrationLocks.Lock(integration)
}

// List returns the connection ids of one integration, sorted.
func (cs *connectionStore) List(ctx context.Context, s logical.Storage, integration string) ([]string, error) {
	return listSorted(ctx, s, connectionsPrefix(integration))
}

// Invalidate forgets a connection that another node changed.
func (cs *connectionStore) Invalidate(key string) {
	cs.cache.invalidate(key)
}

// splitConnectionKey is connectionKey's inverse.
func splitConnectionKey(key string) (integration, id string, ok bool) {
	rest := key[min(len(connectionPrefix), len(key)):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			return rest[:i], rest[i+1:], true
		}
	}
	return "", "", false
}

// readConnectionEntry (only the store calls it) returns nil when the connection does not exist, and
// the stored size of the entry.
func readConnectionEntry(ctx context.Context, s logical.Storage, key string) (*connectionEntry, int, error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("reading %q: %w", key, err)
	}
	if entry == nil {
		return nil, 0, nil
	}
	c, err := decodeConnectionEntry(key, entry.Value)
	if err != nil {
		return nil, 0, err
	}
	return c, len(entry.Value), nil
}

// decodeConnectionEntry decodes the stored entry at key whole and brings it
// up to date.
func decodeConnectionEntry(key string, value []byte) (*connectionEntry, error) {
	var c connectionEntry
	if err := (&logical.StorageEntry{Key: key, Value: value}).DecodeJSON(&c); err != nil {
		if ferr := newerFormatOf(value); ferr != nil {
			return nil, fmt.Errorf("reading %q: %w", key, ferr)
		}
		return nil, fmt.Errorf("%w %q: %w", errUndecodableEntry, key, err)
	}
	if err := c.upgrade(); err != nil {
		return nil, fmt.Errorf("reading %q: %w", key, err)
	}
	return &c, nil
}

// errUndecodableEntry marks a stored connection entry that does not decode.
var errUndecodableEntry = errors.New("decoding")

// putEntry writes one encoded storage entry.
func putEntry(ctx context.Context, s logical.Storage, entry *logical.StorageEntry) error {
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing %q: %w", entry.Key, err)
	}
	return nil
}

// storeScanWorkers bounds the storage reads in flight during
// EachSchedule: on integrated storage each read is a round trip to Vault,
// so many are kept in flight; in memory they cost little more than the
// goroutines.
const storeScanWorkers = 16

// storeScanBatch is how many keys EachSchedule hands a worker at once, so
// that handing them over costs little beside reading them.
const storeScanBatch = 64

// EachSchedule reads every stored connection and hands its key and its
// scheduling fields (decodeScheduleFields: only those are decoded) to
// visit, from several goroutines at once; it stops early when ctx is
// cancelled. It returns the number of connections visited. An entry that
// does not decode (damaged, or of a newer release's format) is counted out
// and handed to undecodable.
func (cs *connectionStore) EachSchedule(ctx context.Context, s logical.Storage, visit func(key string, f scheduleFields), undecodable func(key string, err error)) (int, error) {
	integrations, err := listSorted(ctx, s, integrationPrefix)
	if err != nil {
		return 0, err
	}
	batches := make(chan []string, storeScanWorkers)
	var (
		wg      sync.WaitGroup
		count   atomic.Int64
		errOnce sync.Once
		first   error
	)
	fail := func(err error) { errOnce.Do(func() { first = err }) }
	for range storeScanWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				for _, key := range batch {
					if ctx.Err() != nil {
						break
					}
					entry, err := s.Get(ctx, key)
					if err != nil {
						fail(fmt.Errorf("reading %q: %w", key, err))
						continue
					}
					if entry == nil {
						continue
					}
					f, err := decodeScheduleFields(key, entry.Value)
					if err != nil {
						undecodable(key, err)
						continue
					}
					visit(key, f)
					count.Add(1)
				}
			}
		}()
	}
	send := func() error {
		for _, in := range integrations {
			ids, err := cs.List(ctx, s, in)
			if err != nil {
				return err
			}
			for batch := range slices.Chunk(ids, storeScanBatch) {
				keys := make([]string, len(batch))
				for i, id := range batch {
					keys[i] = connectionKey(in, id)
				}
				select {
				case batches <- keys:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return nil
	}
	sendErr := send()
	close(batches)
	wg.Wait()
	if sendErr != nil {
		return int(count.Load()), sendErr
	}
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return int(count.Load()), first
}

// encodeEntry is a connection or WAL record as JSON, without the HTML
// escaping json.Marshal adds: it writes <, > and & as six bytes each, so a
// provider's answer of such characters, well under the response cap, would
// make an entry over storage's size limit that no save ever gets in.
func encodeEntry(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// storeStats is the store as the status path shows it.
type storeStats struct {
	// Cached is the number of connection entries held in memory.
	Cached int
	// Unsaved is the number of connections whose newly issued tokens
	// storage refused so far.
	Unsaved int
	// Owed is the number of events of saved changes waiting in memory to
	// be recorded again; OwedDropped those dropped beyond maxOwedEvents.
	Owed        int
	OwedDropped int64
}

// Stats reports the store's figures; it takes no connection lock.
func (cs *connectionStore) Stats() storeStats {
	cs.owedMu.Lock()
	owed := len(cs.owed)
	cs.owedMu.Unlock()
	return storeStats{Cached: cs.cache.len(), Unsaved: cs.Unsaved(), Owed: owed, OwedDropped: cs.owedDropped.Load()}
}

// sameCallerFields says that next changes nothing of current's that a
// caller writes (credentials, metadata, config, tags, installation).
func sameCallerFields(current, next *connectionEntry) bool {
	return sameCredentials(current.Credentials, next.Credentials) && sameJSON(current.Metadata, next.Metadata) &&
		sameJSON(current.ConnectionConfig, next.ConnectionConfig) && sameJSON(current.Tags, next.Tags) &&
		current.InstallationID == next.InstallationID
}
