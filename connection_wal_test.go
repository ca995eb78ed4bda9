// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// failForever is a failPuts count no test exhausts: storage stays down
// until the test sets it back to zero.
const failForever = 1 << 40

// rollBack runs the WAL rollback on e's backend the way Vault's rollback
// manager does every minute, with every record older than the backend's
// minimum age, as after an outage that lasted longer than it. It returns
// the rollback's error text, empty when there is none.
func rollBack(e *testEnv) string {
	e.t.Helper()
	e.b.Backend.WALRollbackMinAge = time.Nanosecond
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation, Storage: e.storage})
	if err != nil {
		return err.Error()
	}
	if resp != nil && resp.IsError() {
		return errorText(resp)
	}
	return ""
}

// restartOn is a new plugin process on the same storage: nothing in memory.
func restartOn(t *testing.T, s logical.Storage) *testEnv {
	t.Helper()
	return newTestEnvOn(t, s)
}

// walRecords lists the WAL records in storage.
func walRecords(t *testing.T, s logical.Storage) []string {
	t.Helper()
	ids, err := framework.ListWAL(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestWALOutlivesAnOutageLongerThanTheRollbackAge: the provider rotates the
// refresh token and storage refuses the connection for longer than the
// rollback's minimum age. The rollback in the same process must not drop
// the record of an entry that is still only in memory; after a restart the
// stored refresh token is the one the provider accepts.
func TestWALOutlivesAnOutageLongerThanTheRollbackAge(t *testing.T) {
	reliabilityCase(t, "storage refuses the connection for longer than the WAL rollback age, then the plugin restarts",
		"the WAL record is kept while the entry is unsaved; after the restart the rotated refresh token is stored")
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	_, spent := importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	rotated := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)["refresh_token"].(string)
	if srv.RefreshTokenValid(spent) || !srv.RefreshTokenValid(rotated) {
		t.Fatal("the forced refresh did not rotate the refresh token")
	}

	// Vault's rollback manager runs every minute in the same process.
	for range 2 {
		rollBack(e)
	}
	if len(walRecords(t, flaky)) == 0 {
		t.Fatal("the rollback deleted the WAL record of an entry still waiting for storage")
	}

	flaky.failPuts.Store(0)
	restarted := restartOn(t, flaky)
	if msg := rollBack(restarted); msg != "" {
		t.Fatalf("rollback after the restart: %s", msg)
	}
	stored, err := getConnection(t.Context(), flaky, "github", "c1")
	if err != nil || stored == nil {
		t.Fatalf("connection not stored: %v", err)
	}
	if stored.Credentials.RefreshToken != rotated {
		t.Fatal("after the restart storage holds the spent refresh token, not the rotated one")
	}
	if n := len(walRecords(t, flaky)); n != 0 {
		t.Fatalf("%d WAL records left once the tokens were stored", n)
	}
}

// TestSecondFailedSaveRecordsTheLatestRotation: two refreshes rotate the
// refresh token twice while storage refuses the connection; after a
// restart storage holds the second, live refresh token, not the first,
// which the second refresh spent.
func TestSecondFailedSaveRecordsTheLatestRotation(t *testing.T) {
	reliabilityCase(t, "two rotations while storage refuses the connection, then a restart",
		"the WAL rollback stores the latest rotation")
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	first := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)["refresh_token"].(string)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	latest := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)
	if latest["refresh_token"] == first || srv.RefreshTokenValid(first) {
		t.Fatal("the second refresh did not rotate the refresh token")
	}

	flaky.failPuts.Store(0)
	restarted := restartOn(t, flaky)
	if msg := rollBack(restarted); msg != "" {
		t.Fatalf("rollback after the restart: %s", msg)
	}
	stored, _ := getConnection(t.Context(), flaky, "github", "c1")
	if stored == nil || stored.Credentials.RefreshToken != latest["refresh_token"] || stored.Credentials.AccessToken != latest["access_token"] {
		t.Fatal("after the restart storage does not hold the latest rotation")
	}
	if !srv.RefreshTokenValid(stored.Credentials.RefreshToken) {
		t.Fatal("the stored refresh token is spent")
	}
}

// TestStaleWALDoesNotRecreateADeletedConnection: a client-credentials
// connection whose first save failed lives in memory and in a WAL record;
// once it is deleted, no rollback brings it back, whether deleting the
// record failed at first or the plugin restarted before the delete.
func TestStaleWALDoesNotRecreateADeletedConnection(t *testing.T) {
	createUnsaved := func(t *testing.T) (*testEnv, *flakyStorage) {
		e, _ := oauthEnv(t)
		flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/", failDeletePrefix: framework.WALPrefix}
		e.storage = flaky
		flaky.failPuts.Store(failForever)
		e.mustDo(logical.CreateOperation, "connections/machine/m1", nil)
		if len(walRecords(t, flaky)) == 0 {
			t.Fatal("no WAL record for the unsaved connection")
		}
		flaky.failPuts.Store(0)
		return e, flaky
	}
	assertGone := func(t *testing.T, e *testEnv, flaky *flakyStorage) {
		rollBack(e)
		restarted := restartOn(t, flaky)
		rollBack(restarted)
		if c, _ := getConnection(t.Context(), flaky, "machine", "m1"); c != nil {
			t.Fatal("a stale WAL record re-created the deleted connection")
		}
		restarted.mustFail(logical.ReadOperation, "connections/machine/m1", nil, http.StatusNotFound)
	}

	t.Run("deleting the record fails at first", func(t *testing.T) {
		e, flaky := createUnsaved(t)
		flaky.failDeletes.Store(1)
		if _, status := e.do(logical.DeleteOperation, "connections/machine/m1", nil); status >= 300 {
			e.mustDo(logical.DeleteOperation, "connections/machine/m1", nil) // the caller retries
		}
		assertGone(t, e, flaky)
	})
	t.Run("deleted after a restart", func(t *testing.T) {
		_, flaky := createUnsaved(t)
		restarted := restartOn(t, flaky)
		restarted.mustDo(logical.DeleteOperation, "connections/machine/m1", nil)
		assertGone(t, restarted, flaky)
	})
}

// TestForcedIntegrationDeleteDropsUnsavedConnections: a new
// client-credentials connection whose first save failed is served from
// memory; a forced delete of its integration drops it and its WAL record,
// so it is neither served nor written into a re-created integration of the
// same name by the retry or the rollback.
func TestForcedIntegrationDeleteDropsUnsavedConnections(t *testing.T) {
	setUp := func(t *testing.T) (*testEnv, *flakyStorage, map[string]any) {
		e, srv := oauthEnv(t)
		flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
		e.storage = flaky
		body := map[string]any{"auth_mode": "OAUTH2_CC", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
			"token_url": srv.TokenURL(), "scopes": "read,write"}
		flaky.failPuts.Store(failForever)
		e.mustDo(logical.CreateOperation, "connections/machine/m1", nil)
		return e, flaky, body
	}
	assertNotRecreated := func(t *testing.T, e *testEnv, flaky *flakyStorage, body map[string]any) {
		flaky.failPuts.Store(0)
		e.mustDo(logical.CreateOperation, "integrations/machine", body)
		_ = e.b.periodic(t.Context(), &logical.Request{Storage: flaky}) // the retry of unsaved entries
		rollBack(e)
		rollBack(restartOn(t, flaky))
		if c, _ := getConnection(t.Context(), flaky, "machine", "m1"); c != nil {
			t.Fatal("the deleted integration's unsaved connection was written into the re-created integration")
		}
		e.mustFail(logical.ReadOperation, "connections/machine/m1", nil, http.StatusNotFound)
	}

	t.Run("in the same process", func(t *testing.T) {
		e, flaky, body := setUp(t)
		e.mustDo(logical.ReadOperation, "connections/machine/m1", nil) // served from memory
		e.mustDo(logical.DeleteOperation, "integrations/machine", map[string]any{"force": true})
		if n := e.b.store.Unsaved(); n != 0 {
			t.Fatalf("%d unsaved entries kept after the forced delete", n)
		}
		if _, status := e.do(logical.ReadOperation, "connections/machine/m1", nil); status == http.StatusOK {
			t.Fatal("the connection is still served after its integration was deleted")
		}
		if n := len(walRecords(t, flaky)); n != 0 {
			t.Fatalf("%d WAL records kept after the forced delete", n)
		}
		assertNotRecreated(t, e, flaky, body)
	})
	t.Run("after a restart", func(t *testing.T) {
		_, flaky, body := setUp(t)
		restarted := restartOn(t, flaky)
		restarted.mustDo(logical.DeleteOperation, "integrations/machine", map[string]any{"force": true})
		assertNotRecreated(t, restarted, flaky, body)
	})
}

// TestRestartedPluginStoresTheWALAtStart: a plugin that starts on storage
// holding a WAL record of rotated tokens stores them while it initialises,
// without waiting for the rollback's minimum age: until then storage holds
// a refresh token the provider has spent.
func TestRestartedPluginStoresTheWALAtStart(t *testing.T) {
	reliabilityCase(t, "storage refuses the rotated tokens, then the plugin restarts on healed storage",
		"the new process stores them while it initialises, before any rollback")
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	rotated := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)["refresh_token"]
	flaky.failPuts.Store(0)

	restarted := startBackend(t, flaky)
	t.Cleanup(func() { restarted.clean(context.Background()) })
	for deadline := time.Now().Add(10 * time.Second); !restarted.engine.Ready() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stored, _ := getConnection(t.Context(), flaky, "github", "c1")
	if stored == nil || stored.Credentials.RefreshToken != rotated {
		t.Fatal("the restarted plugin did not store the rotated tokens at start")
	}
	if n := len(walRecords(t, flaky)); n != 0 {
		t.Fatalf("%d WAL records left after they were applied", n)
	}
}

// TestStaleWALNeverUndoesNewerCredentials: after a restart, credentials
// written to the connection before the rollback runs are newer than the
// record's, which therefore does not apply.
func TestStaleWALNeverUndoesNewerCredentials(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	flaky.failPuts.Store(0)

	restarted := restartOn(t, flaky)
	newer := srv.IssueRefreshToken()
	restarted.mustDo(logical.UpdateOperation, "connections/github/c1", map[string]any{
		"access_token": "written-after-restart", "refresh_token": newer, "expires_in": 3600})
	if msg := rollBack(restarted); msg != "" {
		t.Fatalf("rollback: %s", msg)
	}
	stored, _ := getConnection(t.Context(), flaky, "github", "c1")
	if stored == nil || stored.Credentials.RefreshToken != newer || stored.Credentials.AccessToken != "written-after-restart" {
		t.Fatal("a stale WAL record overwrote credentials written after it")
	}
}

// TestEarlierVersionsWALRecords: a record written by an earlier version
// (no issue time, the hash of the refresh token it replaced) applies while
// storage still holds that refresh token, and never creates a connection.
func TestEarlierVersionsWALRecords(t *testing.T) {
	e, srv := oauthEnv(t)
	_, before := importExpiring(e, srv, "c1", time.Hour) // not due: nothing refreshes it meanwhile
	stored, _ := getConnection(t.Context(), e.storage, "github", "c1")
	rotated := stored.clone()
	rotated.Credentials.AccessToken, rotated.Credentials.RefreshToken = "at-rotated", srv.IssueRefreshToken()
	rotated.CredentialsIssuedAt = time.Time{}
	gone := rotated.clone()
	gone.ConnectionID = "never-stored"
	for _, rec := range []*issuedTokensWAL{
		{Entry: rotated, Existed: true, PreviousRefreshToken: sha256Hex(before)},
		{Entry: gone},
	} {
		if _, err := framework.PutWAL(t.Context(), e.storage, walKindIssuedTokens, rec); err != nil {
			t.Fatal(err)
		}
	}
	if msg := rollBack(e); msg != "" {
		t.Fatalf("rollback: %s", msg)
	}
	if c, _ := getConnection(t.Context(), e.storage, "github", "c1"); c.Credentials.RefreshToken != rotated.Credentials.RefreshToken {
		t.Fatal("the earlier version's record was not applied")
	}
	if c, _ := getConnection(t.Context(), e.storage, "github", "never-stored"); c != nil {
		t.Fatal("an earlier version's record created a connection")
	}
	if n := len(walRecords(t, e.storage)); n != 0 {
		t.Fatalf("%d WAL records left", n)
	}
}

// A delete that storage refuses leaves the connection, and an unsaved
// entry's tokens keep a WAL record: the delete removed the old record
// before storage refused, so a new one is written.
func TestFailedDeleteKeepsTheWALOfAnUnsavedEntry(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/", failDeletePrefix: "connections/"}
	e.storage = flaky
	_, spent := importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	rotated := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)["refresh_token"].(string)
	if srv.RefreshTokenValid(spent) || !srv.RefreshTokenValid(rotated) {
		t.Fatal("the refresh did not rotate")
	}
	flaky.failDeletes.Store(failForever)
	if _, status := e.do(logical.DeleteOperation, "connections/github/c1", nil); status/100 == 2 {
		t.Fatalf("the delete succeeded (%d) on storage that refuses it", status)
	}
	flaky.failDeletes.Store(0)
	e.mustDo(logical.ReadOperation, "connections/github/c1", nil) // still there
	if n := len(walRecords(t, flaky)); n != 1 {
		t.Fatalf("%d WAL records after the failed delete, want 1", n)
	}
	flaky.failPuts.Store(0)
	restarted := restartOn(t, flaky) // the process dies with the entry unsaved
	if msg := rollBack(restarted); msg != "" {
		t.Fatalf("rollback: %s", msg)
	}
	stored, _ := getConnection(t.Context(), flaky, "github", "c1")
	if stored == nil || stored.Credentials.RefreshToken != rotated {
		t.Fatal("after a failed delete and a restart storage does not hold the rotated refresh token")
	}
}

// A WAL record with a newer issue time (another node's clock) but for
// another APP installation does not replace the token of the installation
// the connection names now.
func TestWALOfAnotherInstallationDoesNotApply(t *testing.T) {
	e, _, _ := appEnv(t)
	e.mustDo(logical.CreateOperation, "connections/ghapp/acme", map[string]any{"installation_id": "988"})
	stored, err := getConnection(t.Context(), e.storage, "ghapp", "acme")
	if err != nil || stored == nil {
		t.Fatal(err)
	}
	old := stored.clone()
	old.InstallationID = "987"
	old.Credentials.AccessToken = "ghs_of-installation-987"
	old.CredentialsIssuedAt = stored.CredentialsIssuedAt.Add(time.Second)
	if _, err := putIssuedTokensWAL(t.Context(), e.storage, old, false, nil); err != nil {
		t.Fatal(err)
	}
	if msg := rollBack(e); msg != "" {
		t.Fatalf("rollback: %s", msg)
	}
	after, _ := getConnection(t.Context(), e.storage, "ghapp", "acme")
	if after.InstallationID != "988" || after.Credentials.AccessToken == "ghs_of-installation-987" {
		t.Fatalf("the record of installation 987 was applied: installation %s", after.InstallationID)
	}
}

// maxEntryStorage refuses values over integrated storage's default
// max_entry_size, 1 MiB.
type maxEntryStorage struct{ logical.Storage }

func (s *maxEntryStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if len(e.Value) > 1<<20 {
		return fmt.Errorf("value of %q is %d bytes, over max_entry_size", e.Key, len(e.Value))
	}
	return s.Storage.Put(ctx, e)
}

// A token answer of characters that JSON's HTML escaping multiplies by six
// (<, >, &) still fits in one entry: entries and WAL records are encoded as
// they are sent, not HTML-escaped.
func TestTokensOfHTMLCharactersAreStorable(t *testing.T) {
	e, srv := oauthEnv(t)
	lim := &maxEntryStorage{Storage: e.storage}
	e.storage = lim
	importExpiring(e, srv, "c1", time.Minute)
	bigRT := "rt-" + strings.Repeat("<", 200_000)
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/token") {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.Encode(map[string]any{"access_token": "at-new", "token_type": "bearer", "expires_in": 3600, "refresh_token": bigRT})
	})
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	stored, _ := getConnection(t.Context(), lim, "github", "c1")
	if stored == nil || stored.Credentials.RefreshToken != bigRT {
		t.Fatal("the rotated refresh token is not stored")
	}
}

// heldWALStorage holds every read of a WAL record until release is closed,
// and fails the first failGets of them: a start whose replay is slow or
// meets a storage that refuses it for a while.
type heldWALStorage struct {
	logical.Storage
	release  chan struct{}
	failGets atomic.Int64
}

func (s *heldWALStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if strings.HasPrefix(key, framework.WALPrefix) {
		<-s.release
		if s.failGets.Load() > 0 {
			s.failGets.Add(-1)
			return nil, errors.New("storage unavailable")
		}
	}
	return s.Storage.Get(ctx, key)
}

// rotatedWhileStorageRefused leaves storage as a killed process leaves it
// after the provider rotated c1's refresh token while storage refused the
// connection: the stored entry holds the spent refresh token (and is due),
// a WAL record the rotated one. It returns the rotated refresh token.
func rotatedWhileStorageRefused(t *testing.T) (logical.Storage, *oauthtest.Server, string) {
	t.Helper()
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	_, spent := importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	rotated := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)["refresh_token"].(string)
	if srv.RefreshTokenValid(spent) || !srv.RefreshTokenValid(rotated) {
		t.Fatal("the forced refresh did not rotate the refresh token")
	}
	flaky.failPuts.Store(0)
	return flaky.Storage, srv, rotated
}

// startedOn is a plugin process started on s as Vault starts a mount.
func startedOn(t *testing.T, s logical.Storage) *testEnv {
	t.Helper()
	e := newTestEnvOn(t, s)
	initializeMount(t, e)
	t.Cleanup(func() { e.b.clean(context.Background()) })
	return e
}

// TestReadAtStartWaitsForItsWALRecord: a plugin starts on storage whose
// connection holds a refresh token the provider has spent, its rotated one
// in a WAL record, and a read arrives before the record is applied. The
// read waits for the record instead of refreshing with the spent token
// (which a provider that revokes a token family on reuse would answer by
// killing the connection).
func TestReadAtStartWaitsForItsWALRecord(t *testing.T) {
	reliabilityCase(t, "a plugin restarts with a WAL record of rotated tokens and a read of the due connection arrives before the record is applied",
		"the read waits for the record and serves the rotated tokens; the spent refresh token is never sent")
	s, srv, rotated := rotatedWhileStorageRefused(t)
	held := &heldWALStorage{Storage: s, release: make(chan struct{})}
	restarted := startedOn(t, held)
	refusalsBefore, requestsBefore := srv.Refusals(), srv.Requests()
	time.AfterFunc(300*time.Millisecond, func() { close(held.release) })

	data := restarted.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)
	if srv.Refusals() != refusalsBefore || srv.Requests() != requestsBefore {
		t.Fatalf("the read refreshed before the WAL was applied: %d refusals, %d token requests", srv.Refusals()-refusalsBefore, srv.Requests()-requestsBefore)
	}
	if data["refresh_token"] != rotated || !srv.RefreshTokenValid(rotated) {
		t.Fatal("the read did not serve the rotated refresh token")
	}
}

// TestReadAtStartAnswers503WhileItsWALRecordWaits: a read whose WAL record
// is still not applied when the wait's bound passes answers 503 with a
// message that says why, and sends nothing to the provider; a connection
// without a record is served meanwhile.
func TestReadAtStartAnswers503WhileItsWALRecordWaits(t *testing.T) {
	s, srv, rotated := rotatedWhileStorageRefused(t)
	held := &heldWALStorage{Storage: s, release: make(chan struct{})}
	defer func() {
		select {
		case <-held.release:
		default:
			close(held.release)
		}
	}()
	restarted := newTestEnvOn(t, held)
	restarted.b.store.walGate.wait = 100 * time.Millisecond
	initializeMount(t, restarted)
	t.Cleanup(func() { restarted.b.clean(context.Background()) })
	requestsBefore := srv.Requests()

	for _, path := range []string{"connections/github/c1", "connections/github/c1/raw"} {
		resp, status := restarted.do(logical.ReadOperation, path, nil)
		if status != http.StatusServiceUnavailable || !strings.Contains(errorText(resp), "write-ahead log") {
			t.Fatalf("read of %s while its WAL record waits: %d %s", path, status, errorText(resp))
		}
	}
	if _, status := restarted.do(logical.UpdateOperation, "connections/github/c1/refresh", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("forced refresh while the WAL record waits: %d", status)
	}
	if srv.Requests() != requestsBefore {
		t.Fatal("a token request was sent while the WAL record waited")
	}
	close(held.release)
	waitFor(t, "the WAL record to be applied", func() bool {
		_, status := restarted.do(logical.ReadOperation, "connections/github/c1", nil)
		return status == http.StatusOK
	})
	if restarted.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)["refresh_token"] != rotated {
		t.Fatal("the rotated refresh token is not served once the record is applied")
	}
}

// TestStartRetriesTheWALWithoutTheRollback: reading the WAL record fails at
// first; the start's replay tries again on its own and stores the rotated
// tokens, without waiting for Vault's rollback (minutes later).
func TestStartRetriesTheWALWithoutTheRollback(t *testing.T) {
	reliabilityCase(t, "a plugin restarts with a WAL record of rotated tokens and storage refuses the first reads of the record",
		"the start's replay retries and stores the rotated tokens before any rollback")
	s, _, rotated := rotatedWhileStorageRefused(t)
	held := &heldWALStorage{Storage: s, release: make(chan struct{})}
	close(held.release)
	held.failGets.Store(3)
	restarted := newTestEnvOn(t, held)
	restarted.b.store.walGate.retry = 20 * time.Millisecond
	initializeMount(t, restarted)
	t.Cleanup(func() { restarted.b.clean(context.Background()) })
	waitFor(t, "the rotated tokens to be stored", func() bool {
		c, _ := getConnection(t.Context(), s, "github", "c1")
		return c != nil && c.Credentials.RefreshToken == rotated
	})
	if n := len(walRecords(t, s)); n != 0 {
		t.Fatalf("%d WAL records left once applied", n)
	}
}

// TestAppliedRecordEmitsTheStatusChange: storage's refresh status moved
// after the record was written (a refresh with the spent token failed);
// the record's status, ok, comes back with connection.refresh_recovered.
// A record applied over the state it was written from emits nothing: its
// process recorded the events already.
func TestAppliedRecordEmitsTheStatusChange(t *testing.T) {
	for _, moved := range []bool{true, false} {
		t.Run(fmt.Sprintf("stored status moved: %v", moved), func(t *testing.T) {
			s, _, rotated := rotatedWhileStorageRefused(t)
			if moved {
				c, _ := getConnection(t.Context(), s, "github", "c1")
				c.RefreshStatus, c.RefreshFailures, c.LastRefreshError = refreshReauth, 1, "invalid_grant"
				if err := putConnection(t.Context(), s, c); err != nil {
					t.Fatal(err)
				}
			}
			restarted := newTestEnvOn(t, s)
			events := captureEvents(restarted)
			if msg := rollBack(restarted); msg != "" {
				t.Fatalf("rollback: %s", msg)
			}
			stored, _ := getConnection(t.Context(), s, "github", "c1")
			if stored.Credentials.RefreshToken != rotated || stored.refreshState() != refreshOK {
				t.Fatalf("the record was not applied: status %s", stored.RefreshStatus)
			}
			if moved {
				expectEvents(t, events, "c1", eventRefreshRecovered)
			} else {
				expectEvents(t, events, "c1")
			}
		})
	}
}

// TestWALRecordCarriesWhatItsTokenWasIssuedFor: a config write moves a
// client-credentials grant (a templated audience) and gets a new token;
// storage refuses the save. Whatever the write answered, after a restart
// storage never holds the new token beside the old audience: the record
// carries the config with the token, or the write failed and changed
// nothing.
func TestWALRecordCarriesWhatItsTokenWasIssuedFor(t *testing.T) {
	reliabilityCase(t, "a config write moves a client-credentials grant to another audience and storage refuses the save; then a restart",
		"storage holds the new token with the new audience, or the write failed and both are the old ones")
	e, srv := shapeEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	e.mustDo(logical.CreateOperation, "providers/audienced-cc", map[string]any{
		"auth_mode": "OAUTH2_CC", "token_url": srv.TokenURL(), "token_params": map[string]any{"audience": "${connectionConfig.audience}"},
		"connection_config_schema": audienceSchema,
	})
	e.mustDo(logical.CreateOperation, "integrations/cc", map[string]any{"provider": "audienced-cc", "client_id": srv.ClientID, "client_secret": srv.ClientSecret})
	e.mustDo(logical.CreateOperation, "connections/cc/acme", map[string]any{"connection_config": map[string]any{"audience": "https://api.acme.test/"}})
	old := e.mustDo(logical.ReadOperation, "connections/cc/acme", nil)["access_token"]

	flaky.failPuts.Store(failForever)
	_, status := e.do(logical.PatchOperation, "connections/cc/acme/config", map[string]any{"audience": "https://api2.acme.test/"})
	served := e.mustDo(logical.ReadOperation, "connections/cc/acme", nil)["access_token"]
	flaky.failPuts.Store(0)

	restarted := restartOn(t, flaky)
	if msg := rollBack(restarted); msg != "" {
		t.Fatalf("rollback: %s", msg)
	}
	stored, _ := getConnection(t.Context(), flaky, "cc", "acme")
	audience := stored.ConnectionConfig["audience"]
	switch {
	case stored.Credentials.AccessToken != old && audience != "https://api2.acme.test/":
		t.Fatalf("storage holds a token issued for https://api2.acme.test/ with audience %v", audience)
	case status/100 == 2 && (audience != "https://api2.acme.test/" || stored.Credentials.AccessToken != served):
		t.Fatalf("the write answered %d but after the restart storage holds audience %v", status, audience)
	case status/100 != 2 && (audience != "https://api.acme.test/" || stored.Credentials.AccessToken != old || served != old):
		t.Fatalf("the write failed (%d) but changed the connection", status)
	}
}

// TestEditOfAnUnsavedConnectionIsNotLost: a connection is held unsaved
// (its rotated tokens refused by storage); an edit of its metadata, tags or
// config while storage still refuses it is not answered 200 and lost on a
// restart: it fails and changes nothing, or it is still there after the
// restart.
func TestEditOfAnUnsavedConnectionIsNotLost(t *testing.T) {
	reliabilityCase(t, "edits of a connection held unsaved while storage refuses it; then a restart",
		"an edit answered 2xx is stored after the restart; one that failed changed nothing")
	edits := []struct {
		name  string
		op    logical.Operation
		path  string
		body  map[string]any
		check func(c *connectionEntry) bool
	}{
		{"metadata", logical.UpdateOperation, "metadata", map[string]any{"owner": "edited"}, func(c *connectionEntry) bool { return c.Metadata["owner"] == "edited" }},
		{"config", logical.UpdateOperation, "config", map[string]any{"tenant": "edited"}, func(c *connectionEntry) bool { return c.ConnectionConfig["tenant"] == "edited" }},
		{"tags", logical.UpdateOperation, "", map[string]any{"tags": map[string]any{"team": "edited"}}, func(c *connectionEntry) bool { return c.Tags["team"] == "edited" }},
	}
	for _, ed := range edits {
		t.Run(ed.name, func(t *testing.T) {
			e, srv := oauthEnv(t)
			flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
			e.storage = flaky
			importExpiring(e, srv, "c1", time.Minute)
			flaky.failPuts.Store(failForever)
			e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
			rotated := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)["refresh_token"]
			path := "connections/github/c1"
			if ed.path != "" {
				path += "/" + ed.path
			}
			_, status := e.do(ed.op, path, ed.body)
			servedEdited := ed.check(e.b.store.unsavedEntry(connectionKey("github", "c1")))
			flaky.failPuts.Store(0)

			restarted := restartOn(t, flaky)
			if msg := rollBack(restarted); msg != "" {
				t.Fatalf("rollback: %s", msg)
			}
			stored, _ := getConnection(t.Context(), flaky, "github", "c1")
			if stored.Credentials.RefreshToken != rotated {
				t.Fatal("the rotated refresh token was lost")
			}
			switch {
			case status/100 == 2 && !ed.check(stored):
				t.Fatalf("the %s edit answered %d and is lost after the restart", ed.name, status)
			case status/100 != 2 && (servedEdited || ed.check(stored)):
				t.Fatalf("the %s edit failed (%d) but changed the connection", ed.name, status)
			}
		})
	}
}

// TestFailedDeleteChangesNothing: a delete whose storage delete fails
// answers 5xx with the connection unchanged and usable: no
// connection.deleted recorded, its tokens not revoked. A delete that
// succeeds records the event and revokes them.
func TestFailedDeleteChangesNothing(t *testing.T) {
	reliabilityCase(t, "storage refuses the delete of a connection",
		"5xx; no connection.deleted event, tokens not revoked, the connection still refreshes")
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failDeletePrefix: "connections/"}
	e.storage = flaky
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": srv.RevocationURL()})
	_, refresh := importExpiring(e, srv, "c1", time.Hour)
	events := captureEvents(e)
	events.take()
	flaky.failDeletes.Store(failForever)
	if _, status := e.do(logical.DeleteOperation, "connections/github/c1", map[string]any{"revoke": true}); status/100 != 5 {
		t.Fatalf("a delete storage refused answered %d", status)
	}
	expectEvents(t, events, "c1")
	if len(srv.Revoked()) != 0 || !srv.RefreshTokenValid(refresh) {
		t.Fatalf("the failed delete revoked the tokens: %v", srv.Revoked())
	}
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil) // still usable

	flaky.failDeletes.Store(0)
	e.mustDo(logical.DeleteOperation, "connections/github/c1", map[string]any{"revoke": true})
	expectEvents(t, events, "c1", eventConnectionDeleted)
	if len(srv.Revoked()) == 0 {
		t.Fatal("the delete did not revoke the tokens")
	}
}

// TestDeleteAtStartWaitsForItsWALRecord: a delete that arrives before the
// connection's WAL record is applied waits for it, so that it revokes the
// rotated tokens (those the provider honours), not only the spent ones.
func TestDeleteAtStartWaitsForItsWALRecord(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": srv.RevocationURL()})
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	rotated := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)["refresh_token"].(string)
	flaky.failPuts.Store(0)

	held := &heldWALStorage{Storage: flaky.Storage, release: make(chan struct{})}
	restarted := startedOn(t, held)
	time.AfterFunc(300*time.Millisecond, func() { close(held.release) })
	restarted.mustDo(logical.DeleteOperation, "connections/github/c1", nil)
	if !slices.Contains(srv.Revoked(), rotated) {
		t.Fatal("the delete did not revoke the rotated refresh token")
	}
	if c, _ := getConnection(t.Context(), flaky, "github", "c1"); c != nil {
		t.Fatal("the WAL record brought the deleted connection back")
	}
}

// TestUndecodableWALRecordDoesNotHoldItsConnectionForever: a record of a
// connection that no longer decodes can never be applied; the start lets
// the connection through (serving what storage holds) instead of answering
// 503 for ever.
func TestUndecodableWALRecordDoesNotHoldItsConnectionForever(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "c1", time.Hour)
	id := walIDPrefix("github", "c1") + "broken"
	value, _ := json.Marshal(map[string]any{"type": walKindIssuedTokens, "data": map[string]any{"entry": "not an entry"}, "created_at": time.Now().Unix()})
	if err := e.storage.Put(t.Context(), &logical.StorageEntry{Key: framework.WALPrefix + id, Value: value}); err != nil {
		t.Fatal(err)
	}
	restarted := newTestEnvOn(t, e.storage)
	restarted.b.store.walGate.wait = 2 * time.Second
	initializeMount(t, restarted)
	t.Cleanup(func() { restarted.b.clean(context.Background()) })
	restarted.mustDo(logical.ReadOperation, "connections/github/c1", nil)
}

// createdWhileStorageRefused leaves storage as a killed process leaves it
// after the first token of new connection m1 of the client-credentials
// integration "machine" was issued while storage refused the connection:
// the connection exists only in a WAL record.
func createdWhileStorageRefused(t *testing.T) (logical.Storage, *oauthtest.Server) {
	t.Helper()
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.CreateOperation, "connections/machine/m1", nil)
	if c, _ := getConnection(t.Context(), flaky.Storage, "machine", "m1"); c != nil || len(walRecords(t, flaky.Storage)) != 1 {
		t.Fatal("the new connection is not only in a WAL record")
	}
	return flaky.Storage, srv
}

// TestIntegrationDeleteCountsConnectionsOnlyInTheWAL: a connection that
// exists only in a WAL record is a connection of its integration: a delete
// without force is refused and keeps the record, at start (where it waits
// for the record to be applied, as a read does) and after (where the
// record is not applied yet).
func TestIntegrationDeleteCountsConnectionsOnlyInTheWAL(t *testing.T) {
	reliabilityCase(t, "integration delete without force while a connection exists only in a WAL record, at start and after", "refused (or 503 while the record waits at start); the record and its tokens are kept")
	t.Run("at start", func(t *testing.T) {
		s, _ := createdWhileStorageRefused(t)
		held := &heldWALStorage{Storage: s, release: make(chan struct{})}
		restarted := startedOn(t, held)
		time.AfterFunc(300*time.Millisecond, func() { close(held.release) })
		msg := restarted.mustFail(logical.DeleteOperation, "integrations/machine", nil, http.StatusBadRequest)
		if !strings.Contains(msg, "1 connection") {
			t.Fatalf("refusal: %s", msg)
		}
		restarted.mustDo(logical.ReadOperation, "connections/machine/m1", nil)
	})
	t.Run("record not applied", func(t *testing.T) {
		s, _ := createdWhileStorageRefused(t)
		restarted := restartOn(t, s) // no start's replay: the rollback applies it later
		msg := restarted.mustFail(logical.DeleteOperation, "integrations/machine", nil, http.StatusBadRequest)
		if !strings.Contains(msg, "1 connection") || len(walRecords(t, s)) != 1 {
			t.Fatalf("refusal: %s; %d WAL records left", msg, len(walRecords(t, s)))
		}
		rollBack(restarted)
		restarted.mustDo(logical.ReadOperation, "connections/machine/m1", nil)
	})
	t.Run("record still waiting at start", func(t *testing.T) {
		s, _ := createdWhileStorageRefused(t)
		held := &heldWALStorage{Storage: s, release: make(chan struct{})}
		time.AfterFunc(2*time.Second, func() { close(held.release) })
		restarted := newTestEnvOn(t, held)
		restarted.b.store.walGate.wait = 100 * time.Millisecond
		initializeMount(t, restarted)
		t.Cleanup(func() { restarted.b.clean(context.Background()) })
		resp, status := restarted.do(logical.DeleteOperation, "integrations/machine", nil)
		if status != http.StatusServiceUnavailable || !strings.Contains(errorText(resp), "write-ahead log") {
			t.Fatalf("delete while a record waits: %d %s", status, errorText(resp))
		}
	})
}

// recordGoneDuringListing fails the first read of WAL record failKey, as
// storage that refuses it for a moment, and deletes WAL record goneKey at
// that moment, as the rollback (or a delete) that applies a record while
// the start lists the WAL.
type recordGoneDuringListing struct {
	logical.Storage
	failKey, goneKey string
	failed           atomic.Bool
}

func (s *recordGoneDuringListing) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if key == s.failKey && s.failed.CompareAndSwap(false, true) {
		if err := s.Storage.Delete(ctx, s.goneKey); err != nil {
			return nil, err
		}
		return nil, errors.New("storage unavailable")
	}
	return s.Storage.Get(ctx, key)
}

// TestRecordGoneBeforeTheListingsRetryHoldsNothing: the start's listing of
// the WAL fails part way (a record of an earlier version cannot be read)
// after it held back c1 for its record, and that record is gone by the
// retry: c1 is not held back for a record that no longer exists.
func TestRecordGoneBeforeTheListingsRetryHoldsNothing(t *testing.T) {
	reliabilityCase(t, "the start's listing of the WAL fails part way, and a record it held a connection for is deleted before the retry",
		"the connection is served at once, not held back for the deleted record")
	s, _, _ := rotatedWhileStorageRefused(t)
	ids := walRecords(t, s)
	if len(ids) != 1 {
		t.Fatalf("%d WAL records", len(ids))
	}
	// An earlier version's record, whose id names no connection, listed
	// after c1's.
	old := "zzzz-earlier-version-record"
	value, _ := json.Marshal(map[string]any{"type": "another_kind", "data": map[string]any{}, "created_at": time.Now().Unix()})
	if err := s.Put(t.Context(), &logical.StorageEntry{Key: framework.WALPrefix + old, Value: value}); err != nil {
		t.Fatal(err)
	}
	faulty := &recordGoneDuringListing{Storage: s, failKey: framework.WALPrefix + old, goneKey: framework.WALPrefix + ids[0]}
	restarted := newTestEnvOn(t, faulty)
	restarted.b.store.walGate.wait = 500 * time.Millisecond
	restarted.b.store.walGate.retry = 20 * time.Millisecond
	initializeMount(t, restarted)
	t.Cleanup(func() { restarted.b.clean(context.Background()) })
	waitFor(t, "the failed listing to be retried", faulty.failed.Load)
	if _, status := restarted.do(logical.ReadOperation, "connections/github/c1", nil); status != http.StatusOK {
		t.Fatalf("read of c1, whose record is gone: %d", status)
	}
}
