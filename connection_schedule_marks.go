// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

// Schedule marks let a starting plugin build its refresh queue from a few
// storage lists instead of a read of every connection: on integrated storage
// each read is a round trip through Vault, and 100,000 of them took ten
// seconds during which nothing was refreshed in the background.
//
// A mark is an empty entry whose key says it all: the connection, its
// refresh status and its next refresh (scheduleMarkKey), so that listing
// an integration's marks returns the schedule of all its connections. Every
// connection whose auth mode issues tokens has one; the others have none.
// A save whose mark changes writes the new mark before the entry and
// deletes the old one after it, and a delete removes the mark after the
// entry; so, whatever a crash interrupts, each stored token connection has
// its current mark, perhaps beside an older one or two. Where a connection
// has several, the start queues it by the earliest: a refresh that comes
// early finds its entry not due and only reschedules, where a late one
// might let a token lapse. A mark whose connection is gone (a crash after
// the entry's delete) queues a refresh that finds nothing.
//
// The marks are a copy, so the start still reads every connection after
// the queue is ready (CheckSchedule): it brings forward what a mark put
// off (a connection an earlier release changed after a rollback), queues
// what has no mark, and mends the marks that differ from their entry.
const scheduleMarkPrefix = "schedule/"

// scheduleMarksCompleteKey records that every stored token connection has
// its mark: written by the first start whose check found every entry and
// mended every mark, after an upgrade from a release that kept none. Until
// then the queue is ready only once every connection has been read.
const scheduleMarksCompleteKey = "schedule_marks_complete"

// scheduleMarkSep separates a mark key's parts: no connection id has it.
const scheduleMarkSep = "~"

// scheduleMark is one connection's schedule as its mark records it.
type scheduleMark struct {
	Status refreshStatus
	// Next is the Unix millisecond of the next refresh; zero for none.
	Next int64
}

// scheduleMarkOf is c's mark after c is scheduled; false when c's auth
// mode issues no token, and so has no mark.
func scheduleMarkOf(c *connectionEntry) (scheduleMark, bool) {
	if c == nil {
		return scheduleMark{}, false
	}
	return markOfSchedule(c.AuthMode, c.RefreshStatus, c.NextRefreshAt)
}

// scheduleMarkOfFields is scheduleMarkOf for the fields a scan decoded.
func scheduleMarkOfFields(f scheduleFields) (scheduleMark, bool) {
	return markOfSchedule(f.AuthMode, f.RefreshStatus, f.NextRefreshAt)
}

// markOfSchedule is the mark of a connection of mode whose refresh status
// (empty: ok) and next refresh are these; false for a mode without tokens.
func markOfSchedule(mode catalog.AuthMode, status refreshStatus, next time.Time) (scheduleMark, bool) {
	if !mode.HasTokens() {
		return scheduleMark{}, false
	}
	if status == "" {
		status = refreshOK
	}
	return scheduleMark{Status: status, Next: unixMilliOrZero(next)}, true
}

// scheduledBeforeMarks says whether a token connection was stored before
// scheduling existed (no next refresh, no status): its next refresh is
// drawn at each start, so its one mark is kept as the first check made it.
func scheduledBeforeMarks(mode catalog.AuthMode, status refreshStatus, next time.Time) bool {
	return mode.HasTokens() && status == "" && next.IsZero()
}

// unixMilliOrZero is t in Unix milliseconds, zero for the zero time: a time
// at the epoch itself is written a millisecond earlier (a refresh queued
// early only reschedules), and one before it (a token imported as expired
// in 1970) negative.
func unixMilliOrZero(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.UnixMilli() == 0:
		return -1
	}
	return t.UnixMilli()
}

// nextTime is when the mark queues its connection; zero for never.
func (m scheduleMark) nextTime() time.Time {
	if m.Next == 0 {
		return time.Time{}
	}
	return time.UnixMilli(m.Next).UTC()
}

// before orders marks by when they queue their connection, never last.
func (m scheduleMark) before(o scheduleMark) bool {
	switch {
	case m.Next == 0:
		return false
	case o.Next == 0:
		return true
	}
	return m.Next < o.Next
}

// scheduleMarksPrefix is where an integration's marks are.
func scheduleMarksPrefix(integration string) string {
	return scheduleMarkPrefix + integration + "/"
}

// scheduleMarkKey is the storage key of the mark m of connection id.
func scheduleMarkKey(integration, id string, m scheduleMark) string {
	return scheduleMarksPrefix(integration) + id + scheduleMarkSep + string(m.Status) + scheduleMarkSep + strconv.FormatInt(m.Next, 10)
}

// parseScheduleMark reads a name an integration's marks list holds; false
// for one that is no mark. Only the plugin writes under scheduleMarkPrefix,
// so the id is not validated again: a start parses every mark, twice.
func parseScheduleMark(name string) (id string, m scheduleMark, ok bool) {
	id, rest, ok1 := strings.Cut(name, scheduleMarkSep)
	status, nextText, ok2 := strings.Cut(rest, scheduleMarkSep)
	if !ok1 || !ok2 || id == "" || strings.Contains(id, "/") {
		return "", scheduleMark{}, false
	}
	next, err := strconv.ParseInt(nextText, 10, 64)
	if err != nil {
		return "", scheduleMark{}, false
	}
	st := refreshStatus(status)
	switch st {
	case refreshOK, refreshFailing, refreshExhausted, refreshReauth:
	default:
		return "", scheduleMark{}, false
	}
	return id, scheduleMark{Status: st, Next: next}, true
}

// scheduleMarkValue is every mark's value: the key says it all.
var scheduleMarkValue = []byte("{}")

// putScheduleMark writes c's mark before c is saved over previous, unless
// previous is stored (not held unsaved in place of what storage holds)
// with the same mark; false when there was nothing to write.
func putScheduleMark(ctx context.Context, s logical.Storage, c, previous *connectionEntry, held bool) (bool, error) {
	next, ok := scheduleMarkOf(c)
	if !ok {
		return false, nil
	}
	if was, had := scheduleMarkOf(previous); had && was == next && !held {
		return false, nil
	}
	return true, putEntry(ctx, s, &logical.StorageEntry{Key: scheduleMarkKey(c.Integration, c.ConnectionID, next), Value: scheduleMarkValue})
}

// errMarkRefused is a save's error when storage refused its mark.
var errMarkRefused = errors.New("storage refused the connection's schedule mark; nothing was saved")

// markBeforeSave writes c's mark before c is saved over previous (held: in
// place of the stored entry), and says whether the save may then drop
// earlier marks. When storage refuses the mark of issued tokens, which must
// be stored all the same, it withdraws the marks' completeness first, so
// that the next start reads every connection before its queue is ready;
// the save calls withdrawn once its entry's put is over, and until then no
// check records the marks complete. An error means storage refused the
// withdrawal too, and the tokens must wait.
func (cs *connectionStore) markBeforeSave(ctx context.Context, s logical.Storage, c, previous *connectionEntry, held bool) (marked bool, withdrawn func(), err error) {
	noop := func() {}
	_, err = putScheduleMark(ctx, s, c, previous, held)
	if err == nil {
		return true, noop, nil
	}
	if !c.issued {
		return false, noop, fmt.Errorf("%w: %w", errMarkRefused, err)
	}
	cs.marksMu.Lock()
	cs.withdrawing++
	cs.marksWithdrawn++
	derr := s.Delete(ctx, scheduleMarksCompleteKey)
	cs.marksMu.Unlock()
	withdrawn = func() {
		cs.marksMu.Lock()
		cs.withdrawing--
		cs.marksWithdrawn++
		cs.marksMu.Unlock()
	}
	if derr != nil {
		return false, withdrawn, fmt.Errorf("withdrawing %q: %w", scheduleMarksCompleteKey, derr)
	}
	cs.logger().Warn("writing a schedule mark; the next start reads every connection before its queue is ready",
		"key", connectionKey(c.Integration, c.ConnectionID), "error", err)
	return false, withdrawn, nil
}

// marksOf are the marks of the connection at key whose entry (stored, or
// held unsaved) is c: c's, and, where c is held, those written for each
// entry held in turn and for the stored one under them (unsavedMarks).
func (cs *connectionStore) marksOf(key string, c *connectionEntry) []scheduleMark {
	marks := cs.unsavedMarks(key)
	if m, ok := scheduleMarkOf(c); ok && !slices.Contains(marks, m) {
		marks = append(marks, m)
	}
	return marks
}

// dropMarks deletes a deleted connection's marks. One left behind queues a
// refresh that finds nothing, until a start's check deletes it.
func (cs *connectionStore) dropMarks(ctx context.Context, s logical.Storage, integration, id string, marks []scheduleMark) {
	for _, m := range marks {
		if err := s.Delete(ctx, scheduleMarkKey(integration, id, m)); err != nil {
			cs.logger().Warn("deleting a schedule mark", "key", connectionKey(integration, id), "error", err)
		}
	}
}

// dropEarlierMarks deletes, once c is stored at key, the marks of what it
// replaced: previous's, and those written for the entries held unsaved in
// turn before it (and the stored entry under them), unless c has the same.
// One left behind only brings a refresh forward until a check deletes it.
func (cs *connectionStore) dropEarlierMarks(ctx context.Context, s logical.Storage, key string, c, previous *connectionEntry) {
	current, has := scheduleMarkOf(c)
	earlier := slices.DeleteFunc(cs.marksOf(key, previous), func(m scheduleMark) bool { return has && m == current })
	cs.dropMarks(ctx, s, c.Integration, c.ConnectionID, earlier)
}

// scheduleMarks are the marks a start listed: each integration's names as
// storage listed them, sorted, so that a connection's marks are found by a
// binary search rather than kept in a map (a million connections' map
// would double the plugin's memory at start), and which of them the check
// found an entry for.
type scheduleMarks struct {
	byIntegration map[string]*listedMarks
	listed        bool // every integration's marks were listed
}

// listedMarks are one integration's mark names, sorted, and for each
// whether the check read its connection.
type listedMarks struct {
	names []string
	seen  []atomic.Bool
}

// of returns the range of l.names that are marks of connection id: the
// separator sorts after every character of an id, so they are adjacent.
func (l *listedMarks) of(id string) (first, end int) {
	prefix := id + scheduleMarkSep
	first = sort.SearchStrings(l.names, prefix)
	end = first
	for end < len(l.names) && strings.HasPrefix(l.names[end], prefix) {
		end++
	}
	return first, end
}

// listedMark is a mark as a start listed it: its name as stored (the one to
// delete: a name written otherwise than scheduleMarkKey writes it may still
// read as a mark) and what it says.
type listedMark struct {
	name string
	scheduleMark
}

// marks parses the names in [first, end).
func (l *listedMarks) marks(first, end int) []listedMark {
	ms := make([]listedMark, 0, end-first)
	for _, name := range l.names[first:end] {
		if _, m, ok := parseScheduleMark(name); ok {
			ms = append(ms, listedMark{name, m})
		}
	}
	return ms
}

// markedOf returns the marks listed for the connection at key and notes
// that the check read it.
func (m *scheduleMarks) markedOf(key string) []listedMark {
	integration, id, ok := splitConnectionKey(key)
	l := m.byIntegration[integration]
	if !ok || l == nil {
		return nil
	}
	first, end := l.of(id)
	for i := first; i < end; i++ {
		l.seen[i].Store(true)
	}
	return l.marks(first, end)
}

// unseen calls mend with each connection whose marks were listed but whose
// entry the check did not read, and its marks.
func (m *scheduleMarks) unseen(mend func(key string, listed []listedMark)) {
	for integration, l := range m.byIntegration {
		for i := 0; i < len(l.names); {
			if l.seen[i].Load() {
				i++
				continue
			}
			id, _, ok := parseScheduleMark(l.names[i])
			if !ok {
				i++
				continue
			}
			first, end := l.of(id)
			if first != i {
				end = i + 1 // not sorted as listed: this one alone
			}
			mend(connectionKey(integration, id), l.marks(i, end))
			i = end
		}
	}
}

// LoadScheduleMarks lists every mark and hands visit each connection's
// earliest; complete says whether every stored token connection has one
// (scheduleMarksCompleteKey), so that the queue they make is ready. The
// marks are returned for CheckSchedule to hold against the entries.
func (cs *connectionStore) LoadScheduleMarks(ctx context.Context, s logical.Storage, visit func(key string, status refreshStatus, next time.Time)) (marks *scheduleMarks, complete bool, err error) {
	marks = &scheduleMarks{byIntegration: map[string]*listedMarks{}}
	done, err := s.Get(ctx, scheduleMarksCompleteKey)
	if err != nil {
		return marks, false, fmt.Errorf("reading %q: %w", scheduleMarksCompleteKey, err)
	}
	folders, err := listSorted(ctx, s, scheduleMarkPrefix)
	if err != nil {
		return marks, false, err
	}
	for _, folder := range folders {
		integration, ok := strings.CutSuffix(folder, "/")
		if !ok {
			continue
		}
		names, err := listSorted(ctx, s, scheduleMarksPrefix(integration))
		if err != nil {
			return marks, false, err
		}
		marks.byIntegration[integration] = &listedMarks{names: names, seen: make([]atomic.Bool, len(names))}
		restoreEarliest(integration, names, visit)
	}
	marks.listed = true
	return marks, done != nil, nil
}

// restoreEarliest hands visit, for each connection of integration with
// marks among names (sorted), its earliest mark.
func restoreEarliest(integration string, names []string, visit func(key string, status refreshStatus, next time.Time)) {
	var (
		current  string
		earliest scheduleMark
	)
	flush := func() {
		if current != "" {
			visit(connectionKey(integration, current), earliest.Status, earliest.nextTime())
		}
	}
	for _, name := range names {
		id, m, ok := parseScheduleMark(name)
		switch {
		case !ok:
			continue
		case id != current:
			flush()
			current, earliest = id, m
		case m.before(earliest):
			earliest = m
		}
	}
	flush()
}

// CheckSchedule reads every stored connection, as EachSchedule does, and
// hands visit its scheduling fields; meanwhile it mends the marks listed at
// start (marks) that differ from what the connection's entry says, and
// deletes those of connections no longer stored. Once every entry was read
// and every mark mended, it records that the marks are complete. Storage
// may refuse writes for a while (Vault refuses them while it sets the mount
// up): what it refused is tried again, with pauses, until done or ctx ends.
func (cs *connectionStore) CheckSchedule(ctx context.Context, s logical.Storage, marks *scheduleMarks, visit func(key string, f scheduleFields)) (int, error) {
	cs.marksMu.Lock()
	withdrawn := cs.marksWithdrawn
	cs.marksMu.Unlock()
	var (
		mu      sync.Mutex
		refused []markedConnection
	)
	mend := func(key string, listed []listedMark) {
		if cs.mendScheduleMarks(ctx, s, key, listed) != nil {
			mu.Lock()
			refused = append(refused, markedConnection{key, listed})
			mu.Unlock()
		}
	}
	n, err := cs.EachSchedule(ctx, s, func(key string, f scheduleFields) {
		visit(key, f)
		m, has := scheduleMarkOfFields(f)
		listed := marks.markedOf(key)
		if markedAs(key, listed, m, has) || (scheduledBeforeMarks(f.AuthMode, f.RefreshStatus, f.NextRefreshAt) && len(listed) == 1) {
			// Its mark is its entry's; or an entry stored before
			// scheduling existed keeps the mark its first check gave it.
			return
		}
		mend(key, listed)
	}, func(key string, err error) {
		// Not queued, as reads of it fail too; its marks (a newer
		// release's) are left as they are, and the check goes on.
		marks.markedOf(key)
		cs.logger().Error("a stored connection does not decode: it is not refreshed in the background", "key", key, "error", err)
	})
	if err != nil {
		return n, err
	}
	marks.unseen(func(key string, listed []listedMark) {
		if ctx.Err() == nil {
			mend(key, listed)
		}
	})
	return n, cs.finishCheck(ctx, s, refused, marks.listed, withdrawn)
}

// markedConnection is a connection whose marks the check must mend: its
// key and the marks listed at start.
type markedConnection struct {
	key    string
	listed []listedMark
}

// finishCheck mends the marks storage refused to mend so far, then records
// the marks complete (where every integration's were listed, and no save
// withdrew them since the check began: withdrawn), trying again with
// growing pauses while storage refuses.
func (cs *connectionStore) finishCheck(ctx context.Context, s logical.Storage, refused []markedConnection, listed bool, withdrawn int64) error {
	pause := cs.walGate.retry
	for {
		var err error
		var still []markedConnection
		for _, m := range refused {
			if merr := cs.mendScheduleMarks(ctx, s, m.key, m.listed); merr != nil {
				still, err = append(still, m), merr
			}
		}
		refused = still
		if err == nil && listed {
			err = cs.recordMarksComplete(ctx, s, withdrawn)
		}
		if err == nil || ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
		cs.logger().Warn("mending schedule marks; trying again", "connections", len(refused), "in", pause, "error", err)
		if !sleepCtx(ctx, pause) {
			return ctx.Err()
		}
		pause = min(2*pause, walReplayRetryMax)
	}
}

// recordMarksComplete writes scheduleMarksCompleteKey unless a save withdrew
// it since the check began (withdrawn) or is withdrawing it: the check may
// have read that connection before its entry was stored without its mark.
func (cs *connectionStore) recordMarksComplete(ctx context.Context, s logical.Storage, withdrawn int64) error {
	cs.marksMu.Lock()
	defer cs.marksMu.Unlock()
	if cs.marksWithdrawn != withdrawn || cs.withdrawing > 0 {
		cs.logger().Warn("a connection was stored without its schedule mark during the check: the next start reads every connection before its queue is ready")
		return nil
	}
	return putEntry(ctx, s, &logical.StorageEntry{Key: scheduleMarksCompleteKey, Value: scheduleMarkValue})
}

// markedAs says whether listed is exactly the mark m of the connection at
// key, as scheduleMarkKey names it (has: there is one), or nothing where
// there is none.
func markedAs(key string, listed []listedMark, m scheduleMark, has bool) bool {
	if !has {
		return len(listed) == 0
	}
	integration, id, _ := splitConnectionKey(key)
	return len(listed) == 1 && scheduleMarksPrefix(integration)+listed[0].name == scheduleMarkKey(integration, id, m)
}

// mendScheduleMarks makes the connection at key marked as storage holds it,
// under its lock so that no save runs meanwhile: its stored entry's mark
// written (a connection stored before marks existed, or one whose mark a
// crash or an earlier release left behind), and that of an entry held
// unsaved in its place too (the one reads serve, stored once storage takes
// it); the marks listed that are neither deleted; the connection queued as
// the entry reads serve says.
func (cs *connectionStore) mendScheduleMarks(ctx context.Context, s logical.Storage, key string, listed []listedMark) error {
	integration, id, ok := splitConnectionKey(key)
	if !ok {
		return nil
	}
	defer cs.locks.Lock(key)()
	// A forced delete of the integration takes no connection's lock: its
	// lock, for reading, keeps it from running between the read and the
	// marks written (a mark and a queued refresh of a deleted connection).
	defer cs.integrationLocks.RLock(integration)()
	stored, _, err := readConnectionEntry(ctx, s, key)
	if err != nil {
		return err
	}
	held := cs.unsavedEntry(key)
	keep := map[string]bool{}
	for _, c := range []*connectionEntry{stored, held} {
		if c == nil {
			continue
		}
		if scheduledBeforeMarks(c.AuthMode, c.RefreshStatus, c.NextRefreshAt) {
			// Stored before scheduling existed: scheduled as a save
			// would, without saving it.
			cfg, err := cs.config(ctx, s)
			if err != nil {
				return err
			}
			cs.sched.schedule(c, cfg, cs.now())
		}
		if m, has := scheduleMarkOf(c); has {
			markKey := scheduleMarkKey(integration, id, m)
			if err := putEntry(ctx, s, &logical.StorageEntry{Key: markKey, Value: scheduleMarkValue}); err != nil {
				return err
			}
			keep[markKey] = true
		}
	}
	for _, m := range listed {
		if markKey := scheduleMarksPrefix(integration) + m.name; !keep[markKey] {
			if err := s.Delete(ctx, markKey); err != nil {
				return fmt.Errorf("deleting a schedule mark of %q: %w", key, err)
			}
		}
	}
	switch {
	case held != nil:
		cs.sched.track(held)
	case stored != nil:
		cs.sched.track(stored)
	default:
		cs.sched.untrack(key)
	}
	return nil
}
