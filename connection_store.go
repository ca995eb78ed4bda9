// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
// Lock order: an integration's lock, then a connection's. Connection
// writes hold their integration's lock for reading, so that a forced
// integration delete (which holds it for writing) cannot interleave with
// them and leave an orphan connection.
type connectionStore struct {
	locks            *keyedLocks // by connection key
	integrationLocks *keyedLocks // by integration name
	cache            *connectionCache
	sched            scheduler
	config           func(context.Context, logical.Storage) (*configEntry, error)
	now              func() time.Time

	// events records the lifecycle events of saved changes and deletes
	// (connection_store_events.go); nil records none.
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
}

func newConnectionStore(sched scheduler, config func(context.Context, logical.Storage) (*configEntry, error), now func() time.Time) *connectionStore {
	return &connectionStore{
		locks:            newKeyedLocks(),
		integrationLocks: newKeyedLocks(),
		cache:            newConnectionCache(),
		sched:            sched,
		config:           config,
		now:              now,
		unsaved:          map[string]*unsavedEntry{},
		supersededWALs:   map[string]bool{},
		logger:           hclog.NewNullLogger,
	}
}

// Get returns a connection for reading, from memory when it can: the
// caller's own copy, nil when the connection does not exist. It takes no
// lock; what it returns may be refreshed by someone else a moment later.
func (cs *connectionStore) Get(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, error) {
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
func (cs *connectionStore) Update(ctx context.Context, s logical.Storage, integration, id string, change func(*connectionEntry) (*connectionEntry, error)) (*connectionEntry, error) {
	defer cs.integrationLocks.RLock(integration)()
	key := connectionKey(integration, id)
	defer cs.locks.Lock(key)()

	current, unsaved, err := cs.loadLocked(ctx, s, key)
	if err != nil {
		return nil, err
	}
	var arg *connectionEntry
	if current != nil {
		arg = current.clone()
	}
	next, err := change(arg)
	if errors.Is(err, errUnchanged) {
		return current, nil
	}
	if err != nil {
		return nil, err
	}
	if current == nil || unsaved {
		// A create, or an entry storage has not taken yet: the integration
		// may have been deleted, or re-created, since the caller (or the
		// failed save) looked. Its deletion holds its lock for writing, so
		// it cannot happen between this check and the save.
		if err := cs.checkIntegration(ctx, s, integration, next); err != nil {
			if errors.Is(err, errIntegrationGone) && unsaved {
				return nil, errors.Join(err, cs.discardUnsaved(ctx, s, key))
			}
			return nil, err
		}
	}
	events := next.takeEvents()
	if err := cs.save(ctx, s, next, current); err != nil {
		return nil, err
	}
	if err := cs.recordEvents(ctx, s, next, events); err != nil {
		// Saved, and its events owed: the caller decides whether its
		// request fails (a write) or goes on (a refresh).
		return next.clone(), err
	}
	return next.clone(), nil
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
// held (nil: nothing). The caller holds c's lock. Credentials a provider
// just issued are never dropped: a failed save is retried, then kept in
// memory (and in a WAL entry if storage takes it) until stored.
func (cs *connectionStore) save(ctx context.Context, s logical.Storage, c, previous *connectionEntry) error {
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
// before, if given, sees the entry first (to revoke its tokens) and
// returns warnings for the response. Deleting a connection that does not
// exist is not an error.
func (cs *connectionStore) Delete(ctx context.Context, s logical.Storage, integration, id string, before func(*connectionEntry) []string) ([]string, error) {
	defer cs.integrationLocks.RLock(integration)()
	return cs.deleteLocked(ctx, s, integration, id, before, nil, true)
}

// deleteLocked deletes a connection's WAL records (walIDs and the one of
// its unsaved entry) and then the connection. A record that cannot be
// deleted fails the delete with nothing else changed: left behind, it
// could bring the connection back.
//
// listWAL has it list the WAL for the connection's records under its lock;
// a caller that listed the WAL under the integration's write lock (which no
// connection write passes) hands its list in walIDs instead.
func (cs *connectionStore) deleteLocked(ctx context.Context, s logical.Storage, integration, id string, before func(*connectionEntry) []string, walIDs []string, listWAL bool) ([]string, error) {
	key := connectionKey(integration, id)
	defer cs.locks.Lock(key)()
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
	var warnings []string
	if before != nil || cs.events != nil {
		c, _, err := cs.loadLocked(ctx, s, key)
		undecodable := err != nil && before == nil && errors.Is(err, errUndecodableEntry)
		if err != nil && !undecodable {
			// A revoking delete needs the entry's credentials; the
			// caller can still delete with revoke=false.
			return nil, err
		}
		event := c
		if undecodable {
			// An entry that no longer decodes must not keep its
			// integration from being deleted: its event says what the
			// key alone tells.
			event = &connectionEntry{Integration: integration, ConnectionID: id}
		}
		if event != nil {
			// Recorded first: a delete whose event cannot be recorded
			// changes nothing, so that its repetition records it.
			if err := cs.recordEvents(ctx, s, event, []pendingEvent{{typ: eventConnectionDeleted}}); err != nil {
				return nil, err
			}
		}
		if c != nil && before != nil {
			warnings = before(c)
		}
	}
	if walID := cs.unsavedWALID(key); walID != "" {
		walIDs = append(walIDs, walID)
	}
	if err := deleteWALs(ctx, s, walIDs); err != nil {
		return warnings, fmt.Errorf("deleting %q: %w", key, err)
	}
	if err := s.Delete(ctx, key); err != nil {
		// The connection stays; its unsaved tokens lost their record
		// above and need a new one.
		cs.rerecordUnsaved(ctx, s, key)
		return warnings, fmt.Errorf("deleting %q: %w", key, err)
	}
	cs.dropUnsaved(key)
	cs.cache.invalidate(key)
	cs.sched.untrack(key)
	return warnings, nil
}

// DeleteIntegration deletes an integration's connections, then runs
// deleteEntry to delete the integration itself, with the integration's lock
// held for writing throughout: no connection of it can be created or
// changed meanwhile. Without force, an integration with connections is left
// alone and the error is an *errHasConnections.
//
// Its connections are those in storage and those held unsaved in memory.
// Every WAL record of the integration goes first, those a previous process
// wrote included.
func (cs *connectionStore) DeleteIntegration(ctx context.Context, s logical.Storage, integration string, force bool, deleteEntry func() error) error {
	defer cs.integrationLocks.Lock(integration)()
	ids, err := cs.List(ctx, s, integration)
	if err != nil {
		return err
	}
	ids = cs.withUnsavedIDs(integration, ids)
	if len(ids) > 0 && !force {
		return &errHasConnections{len(ids)}
	}
	listed, err := framework.ListWAL(ctx, s)
	if err != nil {
		return fmt.Errorf("listing the WAL: %w", err)
	}
	walIDs := walIDsWithPrefix(listed, walIntegrationPrefix(integration))
	if err := refuseNewerWALs(ctx, s, walIDs); err != nil {
		return err
	}
	if err := deleteWALs(ctx, s, walIDs); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := cs.deleteLocked(ctx, s, integration, id, nil, nil, false); err != nil {
			return err
		}
	}
	return deleteEntry()
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
	var c connectionEntry
	if err := entry.DecodeJSON(&c); err != nil {
		if ferr := newerFormatOf(entry.Value); ferr != nil {
			return nil, 0, fmt.Errorf("reading %q: %w", key, ferr)
		}
		return nil, 0, fmt.Errorf("%w %q: %w", errUndecodableEntry, key, err)
	}
	if err := c.upgrade(); err != nil {
		return nil, 0, fmt.Errorf("reading %q: %w", key, err)
	}
	return &c, len(entry.Value), nil
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

// storeScanWorkers bounds the storage reads in flight during Each.
const storeScanWorkers = 16

// Each reads every stored connection and hands it to visit, from several
// goroutines at once; it stops early when ctx is cancelled. It returns the
// number of connections visited.
func (cs *connectionStore) Each(ctx context.Context, s logical.Storage, visit func(*connectionEntry)) (int, error) {
	integrations, err := listSorted(ctx, s, integrationPrefix)
	if err != nil {
		return 0, err
	}
	keys := make(chan string)
	var (
		wg      sync.WaitGroup
		count   atomic.Int64
		errOnce sync.Once
		first   error
	)
	for range storeScanWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for key := range keys {
				c, _, err := readConnectionEntry(ctx, s, key)
				if err != nil {
					errOnce.Do(func() { first = err })
					continue
				}
				if c == nil {
					continue
				}
				visit(c)
				count.Add(1)
			}
		}()
	}
	send := func() error {
		for _, in := range integrations {
			ids, err := cs.List(ctx, s, in)
			if err != nil {
				return err
			}
			for _, id := range ids {
				select {
				case keys <- connectionKey(in, id):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return nil
	}
	sendErr := send()
	close(keys)
	wg.Wait()
	if sendErr != nil {
		return int(count.Load()), sendErr
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
