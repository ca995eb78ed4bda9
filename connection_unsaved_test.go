// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// TestRotatedTokenSurvivesFailedSaves: the provider rotates the refresh
// token, storage refuses the save; reads keep working with the new token,
// and once storage heals the stored refresh token is the one the provider
// accepts.
func TestRotatedTokenSurvivesFailedSaves(t *testing.T) {
	reliabilityCase(t, "storage refuses every write after the provider rotated the refresh token", "reads keep serving the new token; the periodic hook stores it once storage heals; the stored refresh token is accepted")
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	_, spent := importExpiring(e, srv, "c1", time.Minute)

	flaky.failPuts.Store(1000)
	flaky.failPrefix = "" // every Put fails: the WAL too
	first := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)
	tok := first["access_token"].(string)
	if !srv.AccessTokenValid(tok) || srv.RefreshTokenValid(spent) {
		t.Fatalf("the read did not refresh: %v", first)
	}
	for range 3 {
		again := e.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil)
		if again["access_token"] != tok || !srv.RefreshTokenValid(again["refresh_token"].(string)) {
			t.Fatalf("a read between the failures served %v", again)
		}
	}
	if srv.Requests() != 1 {
		t.Fatalf("%d token requests", srv.Requests())
	}
	if n := e.mustDo(logical.ReadOperation, "status", nil)["unsaved_connections"]; n != 1 {
		t.Fatalf("unsaved_connections = %v", n)
	}
	// The periodic hook keeps trying while storage fails…
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: flaky}); err == nil {
		t.Fatal("periodic reported no failure while storage refused the save")
	}
	// …and stores it once storage heals.
	flaky.failPuts.Store(0)
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: flaky}); err != nil {
		t.Fatal(err)
	}
	stored, _ := getConnection(t.Context(), flaky, "github", "c1")
	if stored.Credentials.AccessToken != tok || !srv.RefreshTokenValid(stored.Credentials.RefreshToken) {
		t.Fatalf("stored refresh token is not the one the provider accepts")
	}
	if n := e.mustDo(logical.ReadOperation, "status", nil)["unsaved_connections"]; n != 0 {
		t.Fatalf("unsaved_connections = %v after the save", n)
	}
}

// TestIssuedTokensSurviveARestart: storage refuses the connection entry
// but takes the WAL; the plugin restarts before any retry; the rollback
// stores the tokens the provider issued.
func TestIssuedTokensSurviveARestart(t *testing.T) {
	reliabilityCase(t, "storage refuses the connection entry, then the plugin restarts", "the WAL rollback stores the issued tokens")
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(1000)
	tok := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)["access_token"].(string)
	flaky.failPuts.Store(0)

	// A new plugin process on the same storage: nothing in memory.
	conf := logical.TestBackendConfig()
	conf.StorageView = flaky
	conf.Logger = hclog.NewNullLogger()
	raw, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	restarted := raw.(*backend)
	resp, err := restarted.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RollbackOperation, Path: "", Storage: flaky, Data: map[string]any{"immediate": true}})
	if err != nil || (resp != nil && resp.IsError()) {
		t.Fatalf("rollback: %v %v", resp, err)
	}
	stored, _ := getConnection(t.Context(), flaky, "github", "c1")
	if stored.Credentials.AccessToken != tok || !srv.RefreshTokenValid(stored.Credentials.RefreshToken) {
		t.Fatal("the rollback did not store the issued tokens")
	}
	if wals, _ := flaky.List(t.Context(), "wal/"); len(wals) != 0 {
		t.Fatalf("%d WAL entries left", len(wals))
	}
	// A second rollback of a stale record must not undo newer tokens.
	e2 := &testEnv{t: t, b: restarted, storage: flaky, logs: e.logs}
	newer := e2.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)["access_token"]
	if newer == tok {
		t.Fatal("forced refresh returned the old token")
	}
}

// TestCodeExchangeSurvivesFailedSave: the callback's tokens are kept when
// storage refuses them; the code and the state are spent by then.
func TestCodeExchangeSurvivesFailedSave(t *testing.T) {
	reliabilityCase(t, "storage refuses the connection after the code exchange", "the tokens are served and stored once storage heals")
	e, srv := authEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	q := consent(t, e, "connections/github/acme/authorize", nil)
	flaky.failPuts.Store(1000)
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	data := e.mustDo(logical.ReadOperation, "connections/github/acme/raw", nil)
	if !srv.AccessTokenValid(data["access_token"].(string)) || !srv.RefreshTokenValid(data["refresh_token"].(string)) {
		t.Fatal("the exchanged tokens were lost")
	}
	flaky.failPuts.Store(0)
	if err := e.b.periodic(t.Context(), &logical.Request{Storage: flaky}); err != nil {
		t.Fatal(err)
	}
	if c, _ := getConnection(t.Context(), flaky, "github", "acme"); c == nil || c.Credentials.RefreshToken != data["refresh_token"] {
		t.Fatal("the connection was not stored after storage healed")
	}
}

// TestConfigUnreadableAfterProviderAnswered: another node changes the
// config while a refresh is in flight and storage then fails its read; the
// provider's answer is still stored and served.
func TestConfigUnreadableAfterProviderAnswered(t *testing.T) {
	reliabilityCase(t, "config unreadable (invalidated, storage failing) while a refresh is in flight", "the provider's answer is stored")
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failGetKey: configStoragePath}
	e.storage = flaky
	_, spent := importExpiring(e, srv, "c1", time.Minute)
	srv.OnToken(func() {
		e.b.InvalidateKey(context.Background(), configStoragePath)
		flaky.failGet.Store(true)
	})
	data := e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	flaky.failGet.Store(false)
	stored, _ := getConnection(t.Context(), flaky, "github", "c1")
	if srv.RefreshTokenValid(spent) || stored.Credentials.AccessToken != data["access_token"] || !srv.RefreshTokenValid(stored.Credentials.RefreshToken) {
		t.Fatal("the provider's answer was stranded by a config read")
	}
}

// TestCallerWriteOverUnsavedTokensReportsItsFailure: while storage still
// refuses, a caller who replaces the connection's credentials is told the
// write failed; only tokens the provider issued are kept unsaved.
func TestCallerWriteOverUnsavedTokensReportsItsFailure(t *testing.T) {
	e, srv := oauthEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(1000)
	refreshed := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)["access_token"]
	e.mustFail(logical.UpdateOperation, "connections/github/c1", map[string]any{"access_token": "caller-token"}, http.StatusInternalServerError)
	if got := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)["access_token"]; got != refreshed {
		t.Fatalf("after the failed write a read served %v", got)
	}
}

// TestFailedRefreshOfAnUnsavedEntryServesItsToken: a connection held
// unsaved (storage refuses it) is due and its provider fails the refresh:
// the read still answers its working token with a warning, as for a
// stored one; only a caller's edit of a held entry fails.
func TestFailedRefreshOfAnUnsavedEntryServesItsToken(t *testing.T) {
	e, srv := oauthEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now
	flaky := &flakyStorage{Storage: e.storage, failPrefix: "connections/"}
	e.storage = flaky
	importExpiring(e, srv, "c1", time.Minute)
	flaky.failPuts.Store(failForever)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	access := e.mustDo(logical.ReadOperation, "connections/github/c1", nil)["access_token"]
	advance(50 * time.Minute) // due (inside the margin), not expired
	srv.Fail("server_error", http.StatusInternalServerError)
	resp, status := e.do(logical.ReadOperation, "connections/github/c1", nil)
	if status != http.StatusOK || resp.Data["access_token"] != access || len(resp.Warnings) == 0 {
		t.Fatalf("read of a held connection whose refresh fails: %d %s", status, errorText(resp))
	}
}
