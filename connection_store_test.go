// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// stripeMate returns a connection id of integration whose key shares a
// locksutil stripe with key: under striped locks the two would wait on
// each other.
func stripeMate(t *testing.T, key, integration string) string {
	t.Helper()
	stripes := locksutil.CreateLocks()
	want := locksutil.LockForKey(stripes, key)
	for i := range 100000 {
		id := fmt.Sprintf("mate-%d", i)
		if locksutil.LockForKey(stripes, connectionKey(integration, id)) == want {
			return id
		}
	}
	t.Fatal("no id shares the stripe")
	return ""
}

func TestSlowRefreshDoesNotDelayOtherWrites(t *testing.T) {
	reliabilityCase(t, "provider answers a refresh after 3 s", "a write to another connection (same lock stripe as before) completes meanwhile")
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "slow", time.Minute)
	mate := stripeMate(t, connectionKey("github", "slow"), "stripe")
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	e.mustDo(logical.CreateOperation, "connections/stripe/"+mate, map[string]any{"api_key": "k1"})
	srv.SetDelay(3 * time.Second)

	refreshDone := make(chan struct{})
	go func() {
		defer close(refreshDone)
		e.do(logical.UpdateOperation, "connections/github/slow/refresh", nil)
	}()
	// Let the refresh take its lock and reach the provider (which counts
	// a request only once its delay is over).
	for e.b.store.locks.size() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	written := make(chan struct{})
	go func() {
		defer close(written)
		e.mustDo(logical.UpdateOperation, "connections/stripe/"+mate, map[string]any{"api_key": "k2"})
		e.mustDo(logical.PatchOperation, "connections/stripe/"+mate+"/metadata", map[string]any{"plan": "pro"})
	}()
	select {
	case <-written:
	case <-refreshDone:
		t.Fatal("the write to another connection waited for the slow refresh")
	}
	select {
	case <-refreshDone:
		t.Fatal("the refresh finished before the write; the test proves nothing")
	default:
	}
	<-refreshDone
	if n := e.b.store.locks.size(); n != 0 {
		t.Fatalf("%d connection locks still held after every request ended", n)
	}
}

func TestOnlyTheStoreSavesConnections(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	// A change function's error leaves storage as it was.
	e.mustDo(logical.CreateOperation, "connections/stripe/c", map[string]any{"api_key": "k"})
	before := e.snapshot()
	_, err := e.b.store.Update(t.Context(), e.storage, "stripe", "c", func(c *connectionEntry) (*connectionEntry, error) {
		c.Credentials.APIKey = "changed"
		return nil, fmt.Errorf("refused")
	})
	if err == nil {
		t.Fatal("the change's error was lost")
	}
	e.assertUnchanged(before)
	if got := e.mustDo(logical.ReadOperation, "connections/stripe/c", nil)["api_key"]; got != "k" {
		t.Fatalf("a refused change reached the cache: %v", got)
	}
	// A create for an integration that is gone is refused under its lock.
	_, err = e.b.store.Update(t.Context(), e.storage, "nope", "c", replaceWith(&connectionEntry{Integration: "nope", ConnectionID: "c", AuthMode: catalog.APIKey}))
	_, mapped := httpError(err)
	if code := httpStatus(logical.UpdateOperation, nil, mapped); code != http.StatusBadRequest {
		t.Fatalf("create under a missing integration: %v answered %d", err, code)
	}
	if c, _ := getConnection(context.Background(), e.storage, "nope", "c"); c != nil {
		t.Fatal("a connection was stored without its integration")
	}
}

func TestStoreStatsCountCachedAndUnsaved(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	if st := e.b.store.Stats(); st.Cached != 0 || st.Unsaved != 0 {
		t.Fatalf("empty store: %+v", st)
	}
	for _, id := range []string{"a", "b"} {
		e.mustDo(logical.CreateOperation, "connections/stripe/"+id, map[string]any{"api_key": "k-" + id})
	}
	if st := e.b.store.Stats(); st.Cached != 2 || st.Unsaved != 0 {
		t.Fatalf("after two writes: %+v", st)
	}
	e.mustDo(logical.DeleteOperation, "connections/stripe/a", nil)
	if st := e.b.store.Stats(); st.Cached != 1 {
		t.Fatalf("after a delete: %+v", st)
	}
}

// TestUndecodableConnectionIsDeletedWithItsEvent: an entry that does not
// decode neither blocks a forced integration delete nor a revoke=false
// connection delete; each records connection.deleted from the key alone.
func TestUndecodableConnectionIsDeletedWithItsEvent(t *testing.T) {
	for _, tc := range []struct{ name, path string }{
		{"forced integration delete", "integrations/stripe"},
		{"connection delete", "connections/stripe/broken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			withIntegrations(e, "https://provider.example/token")
			e.mustDo(logical.CreateOperation, "connections/stripe/ok", map[string]any{"api_key": "sk_1"})
			if err := e.storage.Put(t.Context(), &logical.StorageEntry{Key: connectionKey("stripe", "broken"), Value: []byte("{not json")}); err != nil {
				t.Fatal(err)
			}
			events := captureEvents(e)
			if resp, status := e.do(logical.DeleteOperation, tc.path, map[string]any{"force": true, "revoke": false}); status >= 400 {
				t.Fatalf("delete blocked by one undecodable connection entry: %d %v", status, resp)
			}
			if entry, err := e.storage.Get(t.Context(), connectionKey("stripe", "broken")); err != nil || entry != nil {
				t.Fatalf("the undecodable entry is still stored (%v)", err)
			}
			var deleted bool
			for _, ev := range events.take() {
				if ev.typ == eventConnectionDeleted && ev.data.Integration == "stripe" && ev.data.ConnectionID == "broken" {
					deleted = true
				}
			}
			if !deleted {
				t.Error("no connection.deleted event for the undecodable connection")
			}
		})
	}
}

// TestSlowProviderStallsNoOtherConnection: docs/architecture.md's promise
// that other connections never wait on a provider holds while an
// integration write waits: a refresh held up 2 s by its provider does not
// make a metadata write of another connection of the integration wait
// behind the integration write that waits for that refresh.
func TestSlowProviderStallsNoOtherConnection(t *testing.T) {
	e, srv := oauthEnv(t)
	importExpiring(e, srv, "slow", time.Minute)
	importExpiring(e, srv, "other", time.Hour)
	srv.SetDelay(2 * time.Second)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.do(logical.UpdateOperation, "connections/github/slow/refresh", nil)
	}()
	time.Sleep(200 * time.Millisecond) // the refresh waits on the provider
	go func() {
		defer wg.Done()
		e.do(logical.UpdateOperation, "integrations/github", map[string]any{"allowed_scopes": "admin:org,repo"})
	}()
	time.Sleep(200 * time.Millisecond) // the integration write waits
	start := time.Now()
	e.mustDo(logical.UpdateOperation, "connections/github/other/metadata", map[string]any{"owner": "x"})
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a write of another connection waited %v on the slow provider", took)
	}
	wg.Wait()
}

// secondWALDeleteFails refuses the second delete of any one WAL record.
type secondWALDeleteFails struct {
	logical.Storage
	mu   sync.Mutex
	seen map[string]int
}

func (s *secondWALDeleteFails) Delete(ctx context.Context, key string) error {
	if strings.HasPrefix(key, framework.WALPrefix) {
		s.mu.Lock()
		s.seen[key]++
		n := s.seen[key]
		s.mu.Unlock()
		if n == 2 {
			return errors.New("storage unavailable")
		}
	}
	return s.Storage.Delete(ctx, key)
}

// TestDeleteOfAnUnsavedConnectionLosesNoRecord: a delete of a connection
// held unsaved (its rotated refresh token only in memory and its WAL
// record) deletes each WAL record once, so storage that refuses a second
// delete of one record does not fail it part way: either the connection
// is gone with its records, or it stays with its rotated token recorded,
// never served with its record lost.
func TestDeleteOfAnUnsavedConnectionLosesNoRecord(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = &secondWALDeleteFails{Storage: flaky, seen: map[string]int{}}
	importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	if n := len(walRecords(t, flaky.Storage)); n != 1 || e.b.store.Unsaved() != 1 {
		t.Fatalf("before the delete: %d WAL records, %d unsaved", n, e.b.store.Unsaved())
	}
	_, status := e.do(logical.DeleteOperation, "connections/github/c1", nil)
	records, unsaved := len(walRecords(t, flaky.Storage)), e.b.store.Unsaved()
	switch {
	case status < 300 && (records != 0 || unsaved != 0):
		t.Fatalf("delete answered %d but left %d WAL records, %d unsaved", status, records, unsaved)
	case status >= 300 && (records == 0 || unsaved != 1):
		t.Fatalf("failed delete (%d) left %d WAL records, %d unsaved: the rotated refresh token would be lost with the process", status, records, unsaved)
	}
}

// TestSlowFirstTokenStallsNoOtherConnection: docs/architecture.md's promise
// holds for the first token of a new connection too: a create of a
// client-credentials connection held up 2 s by its provider does not make
// a write of another connection of the integration wait behind an
// integration write queued meanwhile.
func TestSlowFirstTokenStallsNoOtherConnection(t *testing.T) {
	reliabilityCase(t, "provider answers a new connection's first token after 2 s; an integration write is queued meanwhile", "a write to another connection of the integration completes well before the provider answers")
	e, srv := oauthEnv(t)
	e.mustDo(logical.CreateOperation, "connections/machine/other", nil)
	srv.SetDelay(2 * time.Second)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.do(logical.CreateOperation, "connections/machine/slow", nil)
	}()
	time.Sleep(200 * time.Millisecond) // the create waits on the provider
	go func() {
		defer wg.Done()
		e.do(logical.UpdateOperation, "integrations/machine", map[string]any{"display_name": "Machine"})
	}()
	time.Sleep(200 * time.Millisecond) // the integration write is queued
	start := time.Now()
	e.mustDo(logical.UpdateOperation, "connections/machine/other/metadata", map[string]any{"owner": "x"})
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("a write of another connection waited %v on the slow provider", took)
	}
	wg.Wait()
}

// TestFirstTokenOfAChangedIntegrationIsNotStored: an integration written
// while a new connection's first token was being issued may no longer be
// what the token was issued for (another token URL, another client): the
// create answers 409 and stores nothing, and the token is revoked with the
// client it was issued to, the connection's own.
func TestFirstTokenOfAChangedIntegrationIsNotStored(t *testing.T) {
	reliabilityCase(t, "the integration is written while a new connection's first token is issued", "409 with nothing stored; the token is revoked with the client it was issued to")
	e, srv := oauthEnv(t)
	srv.AddClient("tenant-client", "tenant-client-secret")
	e.mustDo(logical.CreateOperation, "integrations/byo", map[string]any{
		"auth_mode": "OAUTH2_CC", "token_url": srv.TokenURL(), "revocation_url": srv.RevocationURL(),
		"credentials_schema": map[string]any{"client_id": map[string]any{}, "client_secret": map[string]any{"secret": true}},
	})
	written := make(chan int, 1)
	srv.OnToken(func() {
		srv.OnToken(nil)
		go func() {
			_, status := e.do(logical.UpdateOperation, "integrations/byo", map[string]any{"token_url": srv.TokenURL() + "?v=2"})
			written <- status
		}()
		select {
		case status := <-written:
			if status >= 300 {
				t.Errorf("integration write during the token request: %d", status)
			}
		case <-time.After(time.Second):
			t.Error("the integration write waited for the provider")
		}
	})
	resp, status := e.do(logical.CreateOperation, "connections/byo/t1", map[string]any{"client_id": "tenant-client", "client_secret": "tenant-client-secret"})
	if status != http.StatusConflict || !strings.Contains(errorText(resp), "changed") {
		t.Fatalf("create across an integration write: %d %s", status, errorText(resp))
	}
	if c, _ := getConnection(t.Context(), e.storage, "byo", "t1"); c != nil || e.b.store.Unsaved() != 0 {
		t.Fatal("the token issued for the old integration was stored")
	}
	revoked := srv.Revoked()
	if len(revoked) != 1 || srv.IssuedTo(revoked[0]) != "tenant-client" || srv.LastClientID() != "tenant-client" {
		t.Fatalf("revoked %v (issued to %q) as %q; want the connection's token, revoked by its own client", revoked, srv.IssuedTo(firstOr(revoked)), srv.LastClientID())
	}
}

// firstOr is the first of s, or "".
func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// TestSlowRevocationStallsNoOtherConnection: a delete that revokes its
// tokens at a provider taking 2 s to answer holds only its connection's
// lock across that call, not its integration's.
func TestSlowRevocationStallsNoOtherConnection(t *testing.T) {
	reliabilityCase(t, "provider answers a delete's revocation after 2 s; an integration write is queued meanwhile", "a write to another connection of the integration completes meanwhile")
	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": srv.RevocationURL()})
	importExpiring(e, srv, "gone", time.Hour)
	importExpiring(e, srv, "other", time.Hour)
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/revoke") {
			time.Sleep(2 * time.Second)
		}
		w.WriteHeader(http.StatusOK)
	})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.do(logical.DeleteOperation, "connections/github/gone", nil)
	}()
	time.Sleep(200 * time.Millisecond) // the revocation waits on the provider
	go func() {
		defer wg.Done()
		e.do(logical.UpdateOperation, "integrations/github", map[string]any{"display_name": "GitHub"})
	}()
	time.Sleep(200 * time.Millisecond) // the integration write is queued
	start := time.Now()
	e.mustDo(logical.UpdateOperation, "connections/github/other/metadata", map[string]any{"owner": "x"})
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("a write of another connection waited %v on the slow revocation", took)
	}
	wg.Wait()
}

// TestForcedIntegrationDeleteOvertakesARefresh: a forced integration delete
// does not wait for a refresh held up by its provider, and the refresh,
// once answered, stores nothing of the deleted connection, not even in the
// integration re-created under the same name meanwhile.
func TestForcedIntegrationDeleteOvertakesARefresh(t *testing.T) {
	reliabilityCase(t, "forced integration delete, and a re-create, while a refresh waits on its provider", "the delete does not wait; the refresh stores nothing of the deleted connection")
	for _, unsaved := range []bool{false, true} {
		t.Run(fmt.Sprintf("unsaved=%v", unsaved), func(t *testing.T) {
			e, srv := oauthEnv(t)
			flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
			e.storage = flaky
			importExpiring(e, srv, "c1", time.Minute)
			if unsaved {
				flaky.failPuts.Store(failForever)
				e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
				flaky.failPuts.Store(0)
			}
			body := e.mustDo(logical.ReadOperation, "integrations/github", nil)
			srv.SetDelay(time.Second)
			refreshed := make(chan int, 1)
			go func() {
				_, status := e.do(logical.UpdateOperation, "connections/github/c1/refresh", nil)
				refreshed <- status
			}()
			time.Sleep(200 * time.Millisecond) // the refresh waits on the provider
			start := time.Now()
			e.mustDo(logical.DeleteOperation, "integrations/github", map[string]any{"force": true})
			if took := time.Since(start); took > 500*time.Millisecond {
				t.Errorf("the forced delete waited %v for the provider", took)
			}
			e.mustDo(logical.CreateOperation, "integrations/github", map[string]any{
				"auth_mode": "OAUTH2", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
				"auth_url": body["auth_url"], "token_url": body["token_url"],
			})
			if status := <-refreshed; status != http.StatusNotFound {
				t.Errorf("the refresh of the deleted connection answered %d", status)
			}
			if c, _ := getConnection(t.Context(), flaky, "github", "c1"); c != nil || e.b.store.Unsaved() != 0 || len(walRecords(t, flaky)) != 0 {
				t.Fatalf("the deleted connection came back: stored %v, %d unsaved, %d WAL records", c != nil, e.b.store.Unsaved(), len(walRecords(t, flaky)))
			}
			e.mustFail(logical.ReadOperation, "connections/github/c1", nil, http.StatusNotFound)
		})
	}
}

// TestUnstoredTokenIsRevokedWithItsOwnClient: a token issued to a
// connection's own client (OAUTH2_CC with the customer's client_id and
// client_secret) that nothing stores is revoked with that client, not with
// the integration's own, which the provider would refuse (the token is not
// its): on a create and on an update that brings the client.
func TestUnstoredTokenIsRevokedWithItsOwnClient(t *testing.T) {
	reliabilityCase(t, "a token issued to a connection's own client is refused by the store (the integration was written meanwhile)",
		"the token is revoked, authenticated as the client it was issued to")
	for _, tc := range []struct {
		name string
		op   logical.Operation
	}{{"create", logical.CreateOperation}, {"update bringing the client", logical.UpdateOperation}} {
		t.Run(tc.name, func(t *testing.T) {
			e, srv := oauthEnv(t)
			srv.AddClient("tenant-client", "tenant-client-secret")
			e.mustDo(logical.UpdateOperation, "integrations/machine", map[string]any{"revocation_url": srv.RevocationURL()})
			var before map[string]any
			if tc.op == logical.UpdateOperation {
				e.mustDo(logical.CreateOperation, "connections/machine/t1", nil)
				before = e.mustDo(logical.ReadOperation, "connections/machine/t1/raw", nil)
			}
			srv.OnToken(func() {
				srv.OnToken(nil)
				e.mustDo(logical.UpdateOperation, "integrations/machine", map[string]any{"display_name": "Machine"})
			})
			e.mustFail(tc.op, "connections/machine/t1", map[string]any{"client_id": "tenant-client", "client_secret": "tenant-client-secret"}, http.StatusConflict)
			revoked := srv.Revoked()
			if len(revoked) != 1 || srv.IssuedTo(revoked[0]) != "tenant-client" || srv.LastClientID() != "tenant-client" {
				t.Fatalf("revoked %v as %q; want the tenant client's token, revoked by the tenant client", revoked, srv.LastClientID())
			}
			after, status := e.do(logical.ReadOperation, "connections/machine/t1/raw", nil)
			switch {
			case before == nil && status != http.StatusNotFound:
				t.Fatalf("the refused create stored the connection: %d", status)
			case before != nil && (status != http.StatusOK || after.Data["access_token"] != before["access_token"] || after.Data["client_id"] != before["client_id"]):
				t.Fatalf("the refused update changed the connection: %v", after.Data)
			}
		})
	}
}

// TestFirstTokenOfAChangedProviderIsNotStored: the settings an integration
// takes from its provider are part of what a token is issued for: a
// provider written while a new connection's first token is issued makes
// the create a 409 with nothing stored.
func TestFirstTokenOfAChangedProviderIsNotStored(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.CreateOperation, "providers/acme-cc", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": srv.TokenURL()})
	e.mustDo(logical.CreateOperation, "integrations/acme", map[string]any{"provider": "acme-cc", "client_id": srv.ClientID, "client_secret": srv.ClientSecret})
	srv.OnToken(func() {
		srv.OnToken(nil)
		e.mustDo(logical.UpdateOperation, "providers/acme-cc", map[string]any{"token_url": srv.TokenURL() + "?tenant=other"})
	})
	e.mustFail(logical.CreateOperation, "connections/acme/t1", nil, http.StatusConflict)
	if c, _ := getConnection(t.Context(), e.storage, "acme", "t1"); c != nil {
		t.Fatal("the token issued under the provider's old token URL was stored")
	}
}

// TestRotatedRefreshTokenSurvivesAStorageReadAfterAnIntegrationDelete
// (review rev2): any integration delete of the mount (here an empty
// integration's, without force) bumps the store-wide count of integration
// deletes, so a refresh in flight re-reads its connection before saving
// (checkNotDeleted). If that read fails, the refresh returns the error and
// the refresh token the provider just rotated in is neither stored, nor
// held unsaved, nor WAL-recorded: the connection is left with the spent one.
func TestRotatedRefreshTokenSurvivesAStorageReadAfterAnIntegrationDelete(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failGetKey: connectionKey("github", "c1")}
	e.storage = flaky
	_, oldRefresh := importExpiring(e, srv, "c1", time.Hour)
	srv.OnToken(func() {
		srv.OnToken(nil)
		// Another, empty integration is deleted while the provider answers,
		// and storage then refuses one read.
		e.mustDo(logical.DeleteOperation, "integrations/machine", nil)
		flaky.failGet.Store(true)
	})
	_, status := e.do(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	flaky.failGet.Store(false)
	if srv.RefreshTokenValid(oldRefresh) {
		t.Fatal("the provider did not rotate the refresh token; the test proves nothing")
	}
	raw, rawStatus := e.do(logical.ReadOperation, "connections/github/c1/raw", nil)
	held := ""
	if raw != nil && raw.Data != nil {
		held, _ = raw.Data["refresh_token"].(string)
	}
	if rawStatus != http.StatusOK || !srv.RefreshTokenValid(held) {
		t.Fatalf("refresh answered %d; the connection now holds refresh token %q (valid at the provider: %v), %d unsaved, %d WAL records: the rotated refresh token was lost",
			status, held, srv.RefreshTokenValid(held), e.b.store.Unsaved(), len(walRecords(t, flaky)))
	}
}

// TestRotatedRefreshTokenOfAnUnsavedEntrySurvivesAStorageRead (review rev2,
// same class, pre-existing): a connection held unsaved (storage refuses its
// save) is refreshed again; the provider rotates its refresh token, and
// the integration read the save makes for an unsaved entry
// (checkIntegration) fails once. The error returns with the new tokens
// dropped, while the held entry keeps the refresh token just spent.
func TestRotatedRefreshTokenOfAnUnsavedEntrySurvivesAStorageRead(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/", failGetKey: integrationKey("github")}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Hour)
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	if e.b.store.Unsaved() != 1 {
		t.Fatal("the refreshed connection is not held unsaved; the test proves nothing")
	}
	srv.OnToken(func() {
		srv.OnToken(nil)
		flaky.failGet.Store(true)
	})
	_, status := e.do(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	flaky.failGet.Store(false)
	raw, rawStatus := e.do(logical.ReadOperation, "connections/github/c1/raw", nil)
	held := ""
	if raw != nil && raw.Data != nil {
		held, _ = raw.Data["refresh_token"].(string)
	}
	if rawStatus != http.StatusOK || !srv.RefreshTokenValid(held) {
		t.Fatalf("second refresh answered %d; the connection holds refresh token %q (valid at the provider: %v): the rotated refresh token was lost",
			status, held, srv.RefreshTokenValid(held))
	}
}

// TestHeldUncheckedRefreshIsNotServedInARecreatedIntegration (review rev3 of
// baeeb00): a refresh is in flight when its integration is deleted with
// force (which deletes the connection, taking no connection lock) and
// created again under the same name, for someone else. The save's re-read
// (checkNotDeleted) fails once, so the refresh's tokens are held unsaved
// unchecked; reads serve an unsaved entry without any check, so the
// deleted connection's tokens are served under the new integration.
func TestHeldUncheckedRefreshIsNotServedInARecreatedIntegration(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failGetKey: connectionKey("github", "c1")}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Hour)
	srv.OnToken(func() {
		srv.OnToken(nil)
		e.mustDo(logical.DeleteOperation, "integrations/github", map[string]any{"force": true, "revoke": false})
		body := oauthIntegration(srv.TokenURL())
		body["client_id"], body["client_secret"] = srv.ClientID, srv.ClientSecret
		e.mustDo(logical.CreateOperation, "integrations/github", body)
		flaky.failGet.Store(true)
	})
	e.do(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	flaky.failGet.Store(false)
	for _, path := range []string{"connections/github/c1", "connections/github/c1/raw"} {
		if resp, status := e.do(logical.ReadOperation, path, nil); status != http.StatusNotFound {
			tok := ""
			if resp != nil && resp.Data != nil {
				tok, _ = resp.Data["access_token"].(string)
			}
			t.Fatalf("read %s in the re-created integration answered %d (access token %q, %d held unsaved): the deleted connection is served",
				path, status, tok, e.b.store.Unsaved())
		}
	}
}

// TestHeldUncheckedRefreshOfALegacyEntryIsNotStoredInARecreatedIntegration
// (review rev3 of baeeb00): as above, with a connection stored before
// entries named their integration's creation (no integration_created_at).
// The held entry's retry (SaveUnsaved) checks only that an integration of
// that name exists, stamps it with the new one and stores it: the deleted
// connection's tokens become a connection of the re-created integration.
// Before the hold, the failed re-read failed the refresh and stored nothing.
func TestHeldUncheckedRefreshOfALegacyEntryIsNotStoredInARecreatedIntegration(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failGetKey: connectionKey("github", "c1")}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Hour)
	legacy, err := getConnection(t.Context(), e.storage, "github", "c1")
	if err != nil || legacy == nil {
		t.Fatalf("imported connection: %v", err)
	}
	legacy.IntegrationCreatedAt = time.Time{}
	if err := putConnection(t.Context(), e.storage, legacy); err != nil {
		t.Fatal(err)
	}
	e.b.store.Invalidate(connectionKey("github", "c1"))
	srv.OnToken(func() {
		srv.OnToken(nil)
		e.mustDo(logical.DeleteOperation, "integrations/github", map[string]any{"force": true, "revoke": false})
		body := oauthIntegration(srv.TokenURL())
		body["client_id"], body["client_secret"] = srv.ClientID, srv.ClientSecret
		e.mustDo(logical.CreateOperation, "integrations/github", body)
		flaky.failGet.Store(true)
	})
	e.do(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	flaky.failGet.Store(false)
	_ = e.b.store.SaveUnsaved(t.Context(), e.storage)
	if c, err := getConnection(t.Context(), e.storage, "github", "c1"); err != nil || c != nil {
		t.Fatalf("after the retry of held entries, storage holds c1 in the re-created integration (%v): the deleted connection crossed into it", err)
	}
}

// TestHeldUncheckedRefreshIsNotServedAfterItsIntegrationsForcedDelete
// (review rev3 of baeeb00): the same race without a re-created integration.
// The forced delete answered that the integration and its connections are
// gone, yet reads of the deleted connection keep answering 200 with its
// tokens from the entry held unchecked, until the periodic hook drops it.
func TestHeldUncheckedRefreshIsNotServedAfterItsIntegrationsForcedDelete(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failGetKey: connectionKey("github", "c1")}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Hour)
	srv.OnToken(func() {
		srv.OnToken(nil)
		e.mustDo(logical.DeleteOperation, "integrations/github", map[string]any{"force": true, "revoke": false})
		flaky.failGet.Store(true)
	})
	e.do(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	flaky.failGet.Store(false)
	for _, path := range []string{"connections/github/c1", "connections/github/c1/raw"} {
		if _, status := e.do(logical.ReadOperation, path, nil); status != http.StatusNotFound {
			t.Fatalf("read %s after its integration's forced delete answered %d (%d held unsaved): the deleted connection is served",
				path, status, e.b.store.Unsaved())
		}
	}
}

// TestStaleIssuingWriteDoesNotDiscardAHeldConnectionOfTheRecreatedIntegration
// (review rev4 of 0ef3d73): a write reads its integration (v1) before it
// takes the connection's lock. Meanwhile the integration is deleted with
// force and created again (v2), and c1 is created in v2, its first token
// issued and held unsaved (storage refused the entry; its WAL record holds
// it). The stale write then moves the grant and gets a token issued by v1:
// checkIssuerUnchanged answers errIntegrationGone (v1 is gone), and
// saveChange, which reads any errIntegrationGone of an entry held unsaved
// as "deleted with its integration", discards v2's held connection and its
// WAL record. c1 exists in v2 the whole time; after the refused write it is
// gone from memory, storage and the WAL alike.
func TestStaleIssuingWriteDoesNotDiscardAHeldConnectionOfTheRecreatedIntegration(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: connectionKey("machine", "c1")}
	e.storage = flaky
	ctx := t.Context()
	stored1, in1, err := integrationForWrites(ctx, e.storage, "machine")
	if err != nil {
		t.Fatal(err)
	}
	// v1 goes, v2 comes, and c1 is created in v2 while storage refuses it.
	e.mustDo(logical.DeleteOperation, "integrations/machine", map[string]any{"force": true})
	e.mustDo(logical.CreateOperation, "integrations/machine", map[string]any{
		"auth_mode": "OAUTH2_CC", "client_id": srv.ClientID, "client_secret": srv.ClientSecret,
		"token_url": srv.TokenURL(), "scopes": "read,write",
	})
	flaky.failPuts.Store(int64(1 + len(saveRetryDelays)))
	e.mustDo(logical.CreateOperation, "connections/machine/c1", map[string]any{})
	key := connectionKey("machine", "c1")
	held := e.b.store.unsavedEntry(key)
	if held == nil {
		t.Fatal("setup: c1 of v2 is not held unsaved")
	}
	// The stale write, as the handler that read v1 runs it now.
	srv.AddClient("client-2", "secret-2")
	var input connectionInput
	input.giveString("client_id", "client-2")
	input.giveString("client_secret", "secret-2")
	if _, _, err := e.b.writer.write(ctx, e.storage, stored1, in1, "c1", input); err == nil {
		t.Fatal("a write whose token v1 issued was stored in v2")
	} else {
		t.Logf("stale write refused: %v", err)
	}
	data, status := e.do(logical.ReadOperation, "connections/machine/c1/raw", nil)
	if status != http.StatusOK {
		t.Fatalf("c1 of the re-created integration answers %d after a stale write was refused (%d held unsaved): the refused write discarded it and its WAL record",
			status, e.b.store.Unsaved())
	}
	if got := data.Data["access_token"]; got != held.Credentials.AccessToken {
		t.Fatalf("c1 serves %v, not the token it was created with", got)
	}
}

// TestForcedDeleteThatFailsPartWayKeepsTheWALRecordOfAHeldEntry (review
// rev4 of 0ef3d73): a forced integration delete deletes every WAL record
// of the integration first, then its connections one by one. When the
// delete of an earlier connection fails, it stops: the integration and the
// later connections stay, served, yet a later connection held unsaved (its
// refresh's rotated tokens, which storage refused) has lost its WAL record
// and keeps the id of the deleted one, and no one records it again. A
// restart then finds only storage's spent refresh token.
func TestForcedDeleteThatFailsPartWayKeepsTheWALRecordOfAHeldEntry(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: connectionKey("github", "c2"), failDeletePrefix: connectionKey("github", "c1")}
	e.storage = flaky
	ctx := t.Context()
	importExpiring(e, srv, "c1", time.Hour)
	importExpiring(e, srv, "c2", time.Hour)
	flaky.failPuts.Store(int64(1 + len(saveRetryDelays)))
	e.mustDo(logical.UpdateOperation, "connections/github/c2/refresh", nil)
	key2 := connectionKey("github", "c2")
	held := e.b.store.unsavedEntry(key2)
	if held == nil || !srv.RefreshTokenValid(held.Credentials.RefreshToken) {
		t.Fatal("setup: c2's rotated tokens are not held unsaved")
	}
	flaky.failDeletes.Store(1)
	if _, status := e.do(logical.DeleteOperation, "integrations/github", map[string]any{"force": true}); status < 500 {
		t.Fatalf("setup: the forced delete answered %d, not a failure", status)
	}
	if e.b.store.unsavedEntry(key2) == nil {
		t.Fatal("setup: the failed delete dropped c2's held tokens")
	}
	if _, status := e.do(logical.ReadOperation, "integrations/github", nil); status != http.StatusOK {
		t.Fatalf("setup: the integration answers %d after the failed delete", status)
	}
	ids, err := framework.ListWAL(ctx, e.storage)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range walIDsWithPrefix(ids, walIDPrefix("github", "c2")) {
		entry, err := framework.GetWAL(ctx, e.storage, id)
		if err != nil || entry == nil {
			continue
		}
		var rec issuedTokensWAL
		if decodeWAL(entry.Data, &rec) == nil && rec.Entry != nil && rec.Entry.Credentials.RefreshToken == held.Credentials.RefreshToken {
			return
		}
	}
	stored, _ := getConnection(ctx, e.storage, "github", "c2")
	t.Fatalf("after a forced delete that failed part way, c2 (still served, its rotated refresh token held in memory only) has no WAL record; storage's refresh token is spent: %v",
		stored != nil && !srv.RefreshTokenValid(stored.Credentials.RefreshToken))
}
