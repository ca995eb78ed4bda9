// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
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
	for deadline := time.Now().Add(10 * time.Second); !restarted.engine.ready.Load() && time.Now().Before(deadline); {
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
	if _, err := putIssuedTokensWAL(t.Context(), e.storage, old, false); err != nil {
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
