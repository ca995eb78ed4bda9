// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// refreshHeldUnsaved imports github/c1 expiring in 3 h and refreshes it to a
// token expiring in expiresIn while storage refuses connection entries, so
// that the refreshed entry is held unsaved; it returns the refusing storage
// (refusing nothing more once the caller says so).
func refreshHeldUnsaved(t *testing.T, expiresIn int) (*testEnv, *oauthtest.Server, *refusePrefixes) {
	t.Helper()
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", 3*time.Hour)
	refusing := &refusePrefixes{Storage: e.storage}
	e.storage = refusing
	srv.SetExpiresIn(expiresIn)
	refusing.refuse(connectionPrefix)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	if e.b.store.Unsaved() != 1 {
		t.Fatal("the refreshed entry is not held unsaved")
	}
	return e, srv, refusing
}

// restartQueuesAsStored starts a plugin on base with every read of a
// connection entry held: if it is ready from the marks alone, key must be
// queued as its entry says then; otherwise once it has checked every entry.
func restartQueuesAsStored(t *testing.T, base logical.Storage, key string) {
	t.Helper()
	gate := newGatedStorage(base)
	restarted := startOn(t, gate)
	time.Sleep(100 * time.Millisecond)
	if restarted.b.engine.Ready() {
		queuedAsStored(t, restarted, base, key)
		close(gate.release)
		return
	}
	close(gate.release)
	waitFor(t, "queue checked", restarted.b.engine.Checked)
	queuedAsStored(t, restarted, base, key)
}

// storedMarks lists every schedule mark in s, as integration/name.
func storedMarks(t *testing.T, s logical.Storage) []string {
	t.Helper()
	ctx := context.Background()
	folders, err := s.List(ctx, scheduleMarkPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var marks []string
	for _, folder := range folders {
		names, err := s.List(ctx, scheduleMarkPrefix+folder)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			marks = append(marks, folder+name)
		}
	}
	slices.Sort(marks)
	return marks
}

// markOfStored is the mark the stored entry of integration/id should have,
// as storedMarks names it.
func markOfStored(t *testing.T, s logical.Storage, integration, id string) string {
	t.Helper()
	c, err := getConnection(context.Background(), s, integration, id)
	if err != nil || c == nil {
		t.Fatalf("reading %s/%s: %v", integration, id, err)
	}
	m, ok := scheduleMarkOf(c)
	if !ok {
		t.Fatalf("%s/%s has no mark", integration, id)
	}
	return strings.TrimPrefix(scheduleMarkKey(integration, id, m), scheduleMarkPrefix)
}

// entryReadGate holds every read of a connection entry until release is
// closed: a start that needs one is seen waiting.
type entryReadGate struct {
	logical.Storage
	release chan struct{}
}

func newGatedStorage(s logical.Storage) *entryReadGate {
	return &entryReadGate{Storage: s, release: make(chan struct{})}
}

func (g *entryReadGate) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if strings.HasPrefix(key, connectionPrefix) {
		<-g.release
	}
	return g.Storage.Get(ctx, key)
}

// startOn starts a new plugin process on s and returns it, its queue being
// built in the background.
func startOn(t *testing.T, s logical.Storage) *testEnv {
	t.Helper()
	e := newTestEnvOn(t, s)
	if err := e.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: s}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.b.Cleanup(context.Background()) })
	return e
}

// checkedStart starts a plugin process on s, waits for its check of every
// connection (which records the marks complete) and stops it.
func checkedStart(t *testing.T, s logical.Storage) {
	t.Helper()
	e := startOn(t, s)
	waitFor(t, "queue checked", func() bool { return e.b.engine.Checked() })
	e.b.Cleanup(context.Background())
}

// queuedAsStored fails unless every connection of keys is queued at the
// next refresh its stored entry says.
func queuedAsStored(t *testing.T, e *testEnv, s logical.Storage, keys ...string) {
	t.Helper()
	for _, key := range keys {
		in, id, _ := splitConnectionKey(key)
		c, err := getConnection(context.Background(), s, in, id)
		if err != nil || c == nil {
			t.Fatalf("reading %s: %v", key, err)
		}
		at, queued := e.b.engine.Scheduled(key)
		if !queued || at.UnixMilli() != c.NextRefreshAt.UnixMilli() {
			t.Errorf("%s queued %v at %v, its entry says %v", key, queued, at, c.NextRefreshAt)
		}
	}
}

// Every save of a token connection leaves exactly its one current mark, a
// connection without tokens none, and a delete none.
func TestSavesKeepOneScheduleMarkPerTokenConnection(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", time.Hour)
	if got, want := storedMarks(t, e.storage), []string{markOfStored(t, e.storage, "github", "c1")}; !slices.Equal(got, want) {
		t.Fatalf("marks after a create %v, want %v", got, want)
	}
	e.mustDo(logical.UpdateOperation, "connections/github/c1", map[string]any{"access_token": "x", "expires_in": 7200})
	if got, want := storedMarks(t, e.storage), []string{markOfStored(t, e.storage, "github", "c1")}; !slices.Equal(got, want) {
		t.Fatalf("marks after a new expiry %v, want %v", got, want)
	}
	// A token without expiry is queued never: its mark says so.
	e.mustDo(logical.UpdateOperation, "connections/github/c1", map[string]any{"access_token": "y"})
	if got := storedMarks(t, e.storage); len(got) != 1 || !strings.HasSuffix(got[0], "~ok~0") {
		t.Fatalf("marks of a token without expiry %v", got)
	}
	// A refresh (the background's) moves it.
	importExpiring(e, srv, "c2", time.Minute)
	before := markOfStored(t, e.storage, "github", "c2")
	e.b.now = func() time.Time { return time.Now().Add(time.Hour) }
	e.tick()
	after := markOfStored(t, e.storage, "github", "c2")
	if after == before {
		t.Fatal("the background refresh did not move c2's mark")
	}
	if got := storedMarks(t, e.storage); !slices.Contains(got, after) || slices.Contains(got, before) || len(got) != 2 {
		t.Fatalf("marks after a refresh %v, want c1's and %s", got, after)
	}
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	e.mustDo(logical.CreateOperation, "connections/stripe/s1", map[string]any{"api_key": "k"})
	e.mustDo(logical.DeleteOperation, "connections/github/c1", nil)
	if got := storedMarks(t, e.storage); !slices.Equal(got, []string{after}) {
		t.Fatalf("marks %v, want c2's alone (none for an API key, none for a deleted connection)", got)
	}
	e.mustDo(logical.DeleteOperation, "integrations/github", map[string]any{"force": true})
	if got := storedMarks(t, e.storage); len(got) != 0 {
		t.Fatalf("marks %v after the integration's forced delete", got)
	}
}

// A start queues every token connection from its mark before it has read a
// single connection entry, at the time each entry says; the check that
// reads them all comes after.
func TestQueueReadyFromMarksBeforeReadingConnections(t *testing.T) {
	e, srv := oauthEnv(t)
	queueFixture(e, srv)
	checkedStart(t, e.storage) // the first start records the marks complete

	gate := newGatedStorage(e.storage)
	defer close(gate.release)
	restarted := startOn(t, gate)
	waitFor(t, "queue ready from marks", restarted.b.engine.Ready)
	keys := []string{"connections/github/a", "connections/github/b", "connections/github/c", "connections/machine/m1"}
	if n := restarted.b.engine.QueueLen(); n != 4 {
		t.Fatalf("queue holds %d, want 4 (the API key is not refreshed)", n)
	}
	queuedAsStored(t, restarted, e.storage, keys...)
	if restarted.b.engine.Checked() {
		t.Fatal("checked before any connection was read")
	}
	if counts := restarted.mustDo(logical.ReadOperation, "status", nil)["refresh_status_counts"].(map[string]int); counts["ok"] != 4 {
		t.Fatalf("status counts from marks %v", counts)
	}
}

// Storage written by a release that kept no marks: the queue is ready only
// once every connection was read, which gives each its mark and records
// them complete; the start after that is ready from the marks.
func TestMarksOfAnEarlierReleaseAreWrittenByTheFirstCheck(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "a", time.Hour)
	importExpiring(e, srv, "b", 2*time.Hour)
	ctx := context.Background()
	for _, m := range storedMarks(t, e.storage) {
		if err := e.storage.Delete(ctx, scheduleMarkPrefix+m); err != nil {
			t.Fatal(err)
		}
	}

	gate := newGatedStorage(e.storage)
	first := startOn(t, gate)
	time.Sleep(100 * time.Millisecond)
	if first.b.engine.Ready() {
		t.Fatal("ready before reading any connection, with no mark stored")
	}
	close(gate.release)
	waitFor(t, "queue checked", func() bool { return first.b.engine.Checked() })
	want := []string{markOfStored(t, e.storage, "github", "a"), markOfStored(t, e.storage, "github", "b")}
	if got := storedMarks(t, e.storage); !slices.Equal(got, want) {
		t.Fatalf("marks after the first check %v, want %v", got, want)
	}
	first.b.Cleanup(ctx)

	gate = newGatedStorage(e.storage)
	defer close(gate.release)
	second := startOn(t, gate)
	waitFor(t, "queue ready from marks", second.b.engine.Ready)
	queuedAsStored(t, second, e.storage, "connections/github/a", "connections/github/b")
}

// A save that storage refused after its new mark was written leaves two
// marks: the start queues the connection by the earlier, and the check
// leaves the entry's alone. A delete whose mark storage kept leaves a mark
// without a connection: the check deletes it and unqueues it.
func TestMarksLeftByInterruptedWritesAreMendedByTheCheck(t *testing.T) {
	reliabilityCase(t, "storage refuses a connection's save after its new schedule mark, and the delete of a deleted connection's mark; the plugin restarts",
		"the start queues the connection by its earlier mark and the deleted one too; the check leaves each stored connection its one mark and unqueues the deleted one")
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "a", time.Hour)
	importExpiring(e, srv, "gone", 2*time.Hour)
	checkedStart(t, e.storage)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/github/a", failDeletePrefix: scheduleMarkPrefix}
	e.storage = flaky
	was := markOfStored(t, flaky, "github", "a")
	flaky.failPuts.Store(1)
	if _, status := e.do(logical.UpdateOperation, "connections/github/a", map[string]any{"access_token": "x", "expires_in": 7200}); status != 500 {
		t.Fatalf("the refused save answered %d", status)
	}
	flaky.failDeletes.Store(1)
	e.mustDo(logical.DeleteOperation, "connections/github/gone", nil)
	if n := len(storedMarks(t, e.storage)); n != 3 {
		t.Fatalf("%d marks stored, want 3 (a's two, gone's)", n)
	}

	gate := newGatedStorage(flaky.Storage)
	restarted := startOn(t, gate)
	waitFor(t, "queue ready from marks", restarted.b.engine.Ready)
	queuedAsStored(t, restarted, flaky.Storage, "connections/github/a") // the earlier mark, its entry's
	if _, queued := restarted.b.engine.Scheduled("connections/github/gone"); !queued {
		t.Fatal("the deleted connection's mark was not queued (the start reads no entry to know)")
	}
	close(gate.release)
	waitFor(t, "queue checked", func() bool { return restarted.b.engine.Checked() })
	if got, want := storedMarks(t, flaky.Storage), []string{was}; !slices.Equal(got, want) {
		t.Fatalf("marks after the check %v, want %v", got, want)
	}
	if _, queued := restarted.b.engine.Scheduled("connections/github/gone"); queued {
		t.Fatal("the deleted connection is still queued after the check")
	}
	queuedAsStored(t, restarted, flaky.Storage, "connections/github/a")
}

// An earlier release that ran meanwhile (a rollback) changed a connection
// without moving its mark: the start queues it late or not at all by the
// mark, and the check brings it forward to its entry's time and mends the
// mark.
func TestCheckBringsForwardWhatAStaleMarkPutOff(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "late", 3*time.Hour)
	importExpiring(e, srv, "revived", 3*time.Hour)
	checkedStart(t, e.storage)
	soon := time.Now().Add(10 * time.Minute).UTC().Truncate(time.Millisecond)
	e.rewriteStoredConnection("github", "late", func(c *connectionEntry) { c.NextRefreshAt = soon })
	// Marked exhausted (never queued), its entry healthy again.
	e.rewriteStoredConnection("github", "revived", func(c *connectionEntry) { c.NextRefreshAt = soon.Add(time.Minute) })
	ctx := context.Background()
	revived := markOfStored(t, e.storage, "github", "revived")
	for _, m := range storedMarks(t, e.storage) {
		if strings.HasPrefix(m, "github/revived~") {
			if err := e.storage.Delete(ctx, scheduleMarkPrefix+m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := e.storage.Put(ctx, &logical.StorageEntry{Key: scheduleMarkKey("github", "revived", scheduleMark{Status: refreshExhausted}), Value: scheduleMarkValue}); err != nil {
		t.Fatal(err)
	}

	gate := newGatedStorage(e.storage)
	restarted := startOn(t, gate)
	waitFor(t, "queue ready from marks", restarted.b.engine.Ready)
	if at, _ := restarted.b.engine.Scheduled("connections/github/late"); !at.After(soon) {
		t.Fatalf("the stale mark queued at %v: the test needs it later than the entry's %v", at, soon)
	}
	if _, queued := restarted.b.engine.Scheduled("connections/github/revived"); queued {
		t.Fatal("a mark that says exhausted was queued")
	}
	close(gate.release)
	waitFor(t, "queue checked", func() bool { return restarted.b.engine.Checked() })
	queuedAsStored(t, restarted, e.storage, "connections/github/late", "connections/github/revived")
	want := []string{markOfStored(t, e.storage, "github", "late"), revived}
	slices.Sort(want)
	if got := storedMarks(t, e.storage); !slices.Equal(got, want) {
		t.Fatalf("marks after the check %v, want %v", got, want)
	}
	if counts := restarted.mustDo(logical.ReadOperation, "status", nil)["refresh_status_counts"].(map[string]int); counts["ok"] != 2 || counts["exhausted"] != 0 {
		t.Fatalf("status counts after the check %v", counts)
	}
}

// Vault refuses writes while it sets a mount up, when the start's check
// already runs: the marks it could not mend are mended once storage takes
// writes, and only then is the queue checked and the marks complete.
func TestCheckMendsMarksStorageRefusedAtFirst(t *testing.T) {
	reliabilityCase(t, "storage refuses the start's mark writes and deletes for a while (Vault setting the mount up)",
		"the check tries them again until storage takes them; only then is the queue checked and the marks recorded complete")
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "a", time.Hour)
	importExpiring(e, srv, "b", 2*time.Hour)
	ctx := context.Background()
	for _, m := range storedMarks(t, e.storage) { // as an earlier release left them: none
		if err := e.storage.Delete(ctx, scheduleMarkPrefix+m); err != nil {
			t.Fatal(err)
		}
	}
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "schedule"}
	flaky.failPuts.Store(5)
	started := newTestEnvOn(t, flaky)
	started.b.store.walGate.retry = 10 * time.Millisecond
	if err := started.b.Initialize(ctx, &logical.InitializationRequest{Storage: flaky}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { started.b.Cleanup(ctx) })
	waitFor(t, "queue checked", func() bool { return started.b.engine.Checked() })
	if flaky.failPuts.Load() != 0 {
		t.Fatalf("checked with %d refusals to come: the test refused too few writes", flaky.failPuts.Load())
	}
	want := []string{markOfStored(t, e.storage, "github", "a"), markOfStored(t, e.storage, "github", "b")}
	if got := storedMarks(t, e.storage); !slices.Equal(got, want) {
		t.Fatalf("marks after the check %v, want %v", got, want)
	}
	if done, err := e.storage.Get(ctx, scheduleMarksCompleteKey); err != nil || done == nil {
		t.Fatalf("marks not recorded complete: %v", err)
	}
}

// A mark's name reads back as written, names that are no mark are refused,
// and a connection's marks are found among those of ids it prefixes or
// that prefix it.
func TestMarkNamesReadBackAndAreFoundById(t *testing.T) {
	ids := []string{"a", "a.b", "a-b", "ab", "a@x:y+z=w", "a_"}
	var names []string
	for i, id := range ids {
		for _, m := range []scheduleMark{{Status: refreshOK, Next: int64(1000 + i)}, {Status: refreshExhausted}} {
			key := scheduleMarkKey("in", id, m)
			name := strings.TrimPrefix(key, scheduleMarksPrefix("in"))
			gotID, got, ok := parseScheduleMark(name)
			if !ok || gotID != id || got != m {
				t.Fatalf("%q read back as %q %+v %v", name, gotID, got, ok)
			}
			names = append(names, name)
		}
	}
	for _, bad := range []string{"", "a", "a~ok", "a~ok~x", "a~ok~1.5", "a~bogus~1", "a~ok~1~2", "~ok~1", "a/~ok~1", "folder/"} {
		if _, _, ok := parseScheduleMark(bad); ok {
			t.Errorf("%q read as a mark", bad)
		}
	}
	slices.Sort(names)
	l := &listedMarks{names: names}
	for i, id := range ids {
		first, end := l.of(id)
		got := l.marks(first, end)
		if len(got) != 2 || got[0].Next != 0 && got[0].Next != int64(1000+i) {
			t.Errorf("marks of %q: %+v", id, got)
		}
		for _, name := range names[first:end] {
			if gotID, _, _ := parseScheduleMark(name); gotID != id {
				t.Errorf("marks of %q include %q", id, name)
			}
		}
	}
}

// An entry held unsaved for many retries remembers each mark written for it
// once: what the save that stores it must drop stays bounded.
func TestHeldEntryRemembersEachMarkOnce(t *testing.T) {
	e, _, refusing := refreshHeldUnsaved(t, 5*3600)
	for range 5 {
		if err := e.b.store.SaveUnsaved(context.Background(), refusing); err == nil {
			t.Fatal("storage refusing connections stored the held entry")
		}
	}
	if n := len(e.b.store.unsavedMarks(connectionKey("github", "c1"))); n != 2 {
		t.Fatalf("%d marks remembered after five retries, want 2 (the stored entry's and the held one's)", n)
	}
}
