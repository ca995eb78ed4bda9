// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	metrics "github.com/armon/go-metrics"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// tick runs one PeriodicFunc call, as Vault does about once a minute.
func (e *testEnv) tick() {
	e.t.Helper()
	if err := e.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
		e.t.Fatalf("periodic: %v", err)
	}
}

func TestScheduleJitterBounds(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg := defaultConfig()
	exp := now.Add(2 * time.Hour)
	c := &connectionEntry{AuthMode: catalog.OAuth2, Credentials: credentials{AccessToken: "a", RefreshToken: "r", ExpiresAt: exp}}
	e := newRefreshEngine()
	var maxSeen time.Duration
	e.SetJitter(func(max time.Duration) time.Duration { maxSeen = max; return max - 1 })
	e.schedule(c, cfg, now)
	earliest := exp.Add(-cfg.RefreshMargin - cfg.RefreshMargin/4)
	if maxSeen != cfg.RefreshMargin/4 || !c.NextRefreshAt.After(earliest) {
		t.Fatalf("largest jitter: next %v, earliest allowed %v (jitter bound %v)", c.NextRefreshAt, earliest, maxSeen)
	}
	e.SetJitter(func(time.Duration) time.Duration { return 0 })
	e.schedule(c, cfg, now)
	if !c.NextRefreshAt.Equal(exp.Add(-cfg.RefreshMargin)) {
		t.Fatalf("no jitter: next %v", c.NextRefreshAt)
	}
	// The real jitter stays in bounds.
	e = newRefreshEngine()
	for i := 0; i < 1000; i++ {
		e.schedule(c, cfg, now)
		if c.NextRefreshAt.After(exp.Add(-cfg.RefreshMargin)) || !c.NextRefreshAt.After(earliest) {
			t.Fatalf("jittered next %v outside (%v, %v]", c.NextRefreshAt, earliest, exp.Add(-cfg.RefreshMargin))
		}
	}
}

func TestScheduleWhatNeverRefreshes(t *testing.T) {
	now := time.Now()
	cfg := defaultConfig()
	e := newRefreshEngine()
	cases := map[string]*connectionEntry{
		"api key":          {AuthMode: catalog.APIKey},
		"no expiry":        {AuthMode: catalog.OAuth2, Credentials: credentials{AccessToken: "a", RefreshToken: "r"}},
		"no refresh token": {AuthMode: catalog.OAuth2, Credentials: credentials{AccessToken: "a", ExpiresAt: now.Add(time.Hour)}},
		"exhausted":        {AuthMode: catalog.OAuth2CC, RefreshStatus: refreshExhausted, Credentials: credentials{AccessToken: "a", ExpiresAt: now.Add(time.Hour)}},
		"reauth":           {AuthMode: catalog.OAuth2, RefreshStatus: refreshReauth, Credentials: credentials{AccessToken: "a", RefreshToken: "r", ExpiresAt: now.Add(time.Hour)}},
	}
	for name, c := range cases {
		c.NextRefreshAt = now
		e.schedule(c, cfg, now)
		if !c.NextRefreshAt.IsZero() {
			t.Errorf("%s: scheduled at %v", name, c.NextRefreshAt)
		}
	}
}

func TestIdleRefreshKeepsRefreshTokensAlive(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg := defaultConfig()
	e := newRefreshEngine()
	c := &connectionEntry{AuthMode: catalog.OAuth2, LastRefreshedAt: now,
		Credentials:      credentials{AccessToken: "a", RefreshToken: "r"},
		RawTokenResponse: map[string]any{"refresh_token_expires_in": 7776000}}
	e.schedule(c, cfg, now)
	if !c.NextRefreshAt.Equal(now.Add(24 * time.Hour)) {
		t.Fatalf("idle refresh at %v, want a day later", c.NextRefreshAt)
	}
	// An expiring access token due sooner wins.
	c.Credentials.ExpiresAt = now.Add(time.Hour)
	e.SetJitter(func(time.Duration) time.Duration { return 0 })
	e.schedule(c, cfg, now)
	if !c.NextRefreshAt.Equal(now.Add(45 * time.Minute)) {
		t.Fatalf("next %v, want the access token's refresh point", c.NextRefreshAt)
	}
}

func TestTickRefreshesOnlyWhatIsDue(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"refresh_concurrency": 1})
	_, rtLater := importExpiring(e, srv, "later", 10*time.Minute)
	_, rtSooner := importExpiring(e, srv, "sooner", 5*time.Minute)
	importExpiring(e, srv, "fresh", 2*time.Hour)
	e.mustDo(logical.CreateOperation, "connections/machine/m1", nil) // fresh client-credentials token
	requests := srv.Requests()
	if n := e.b.engine.QueueLen(); n != 4 {
		t.Fatalf("queue holds %d, want 4", n)
	}

	e.tick()
	if got := srv.Requests() - requests; got != 2 {
		t.Fatalf("tick made %d token requests, want 2", got)
	}
	if srv.RefreshTokenValid(rtSooner) || srv.RefreshTokenValid(rtLater) {
		t.Fatal("a due connection was not refreshed")
	}
	for _, id := range []string{"sooner", "later"} {
		c, _ := getConnection(t.Context(), e.storage, "github", id)
		if c.RefreshStatus != refreshOK || c.LastRefreshedAt.IsZero() || time.Until(c.NextRefreshAt) < 30*time.Minute {
			t.Fatalf("%s after tick: status %s, next %v", id, c.RefreshStatus, c.NextRefreshAt)
		}
	}
	// Nothing is due now: another tick does nothing.
	requests = srv.Requests()
	e.tick()
	if srv.Requests() != requests {
		t.Fatal("a tick with nothing due asked the provider")
	}
}

func TestQueueHandsOutEarliestFirst(t *testing.T) {
	e, srv := oauthEnv(t)
	// Without jitter: with it, schedules a quarter-margin apart may swap.
	e.b.engine.SetJitter(func(time.Duration) time.Duration { return 0 })
	for _, in := range []time.Duration{9 * time.Minute, 3 * time.Minute, 6 * time.Minute} {
		importExpiring(e, srv, "c"+in.String(), in)
	}
	importExpiring(e, srv, "not-due", 3*time.Hour)
	due := e.b.engine.PopDue(time.Now())
	want := "connections/github/c3m0s connections/github/c6m0s connections/github/c9m0s"
	if got := strings.Join(due, " "); got != want {
		t.Fatalf("due order %s, want %s", got, want)
	}
	if e.b.engine.QueueLen() != 1 {
		t.Fatalf("queue holds %d after popping the due ones, want 1", e.b.engine.QueueLen())
	}
}

func TestFailuresBackOffThenExhaust(t *testing.T) {
	e, srv := oauthEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_refresh_failures": 3})
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"auth_style": "header"})
	importExpiring(e, srv, "c1", 10*time.Minute)
	srv.Fail("server_error", http.StatusInternalServerError)

	wantStatus := []refreshStatus{refreshFailing, refreshFailing, refreshExhausted}
	wantWait := []time.Duration{30 * time.Second, time.Minute, 0}
	for i := range wantStatus {
		e.tick()
		c, _ := getConnection(t.Context(), e.storage, "github", "c1")
		if c.RefreshStatus != wantStatus[i] || c.RefreshFailures != i+1 {
			t.Fatalf("after failure %d: %s/%d", i+1, c.RefreshStatus, c.RefreshFailures)
		}
		if wantWait[i] == 0 {
			if !c.NextRefreshAt.IsZero() || e.b.engine.QueueLen() != 0 {
				t.Fatalf("exhausted connection still scheduled at %v", c.NextRefreshAt)
			}
			break
		}
		if got := c.NextRefreshAt.Sub(now()); got != wantWait[i] {
			t.Fatalf("after failure %d: retry in %v, want %v", i+1, got, wantWait[i])
		}
		// Not yet: a tick before the retry time does nothing.
		before := srv.Requests()
		e.tick()
		if srv.Requests() != before {
			t.Fatal("retried before the backoff elapsed")
		}
		advance(wantWait[i])
	}
	// Exhausted: the background stops trying.
	before := srv.Requests()
	advance(2 * time.Hour)
	e.tick()
	if srv.Requests() != before {
		t.Fatal("the background retried an exhausted connection")
	}
	resp, _ := e.do(logical.ListOperation, "connections/github/", nil)
	info := resp.Data["key_info"].(map[string]any)["c1"].(map[string]any)
	if info["refresh_status"] != "exhausted" || !strings.Contains(info["last_refresh_error"].(string), "server_error") {
		t.Fatalf("key_info = %v", info)
	}
	// A forced refresh that succeeds brings it back.
	srv.Fail("", 0)
	e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	c, _ := getConnection(t.Context(), e.storage, "github", "c1")
	if c.RefreshStatus != refreshOK || c.RefreshFailures != 0 || c.LastRefreshError != "" || c.NextRefreshAt.IsZero() {
		t.Fatalf("after a forced refresh: %+v", c)
	}
	if e.b.engine.QueueLen() != 1 {
		t.Fatal("a recovered connection was not queued again")
	}
}

func TestInvalidGrantNeedsReauthorization(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"auth_style": "header"})
	importExpiring(e, srv, "c1", 10*time.Minute)
	srv.Fail("invalid_grant", http.StatusBadRequest)
	e.tick()
	c, _ := getConnection(t.Context(), e.storage, "github", "c1")
	if c.RefreshStatus != refreshReauth || c.RefreshFailures != 1 || !c.NextRefreshAt.IsZero() {
		t.Fatalf("after invalid_grant: %s/%d next %v", c.RefreshStatus, c.RefreshFailures, c.NextRefreshAt)
	}
	// The token still works for a while: reads get it, with a warning.
	resp, status := e.do(logical.ReadOperation, "connections/github/c1", nil)
	if status != http.StatusOK || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "reauthorization_required") {
		t.Fatalf("read: %d %v", status, resp.Warnings)
	}
	if srv.Requests() != 1 {
		t.Fatalf("token requests = %d, want 1", srv.Requests())
	}
	// New tokens written by the caller reset the state.
	e.mustDo(logical.UpdateOperation, "connections/github/c1", map[string]any{"refresh_token": srv.IssueRefreshToken()})
	c, _ = getConnection(t.Context(), e.storage, "github", "c1")
	if c.RefreshStatus != "" || c.RefreshFailures != 0 || c.NextRefreshAt.IsZero() {
		t.Fatalf("after new tokens: %+v", c)
	}
}

func TestQueueFollowsWritesAndDeletes(t *testing.T) {
	e, srv := oauthEnv(t)
	q := e.b.engine
	importExpiring(e, srv, "c1", time.Hour)
	if q.QueueLen() != 1 {
		t.Fatalf("queue %d after a write", q.QueueLen())
	}
	// A new expiry moves the item; it is not duplicated.
	e.mustDo(logical.UpdateOperation, "connections/github/c1", map[string]any{"access_token": "x", "expires_in": 7200})
	at, queued := q.Scheduled("connections/github/c1")
	c, _ := getConnection(t.Context(), e.storage, "github", "c1")
	if !queued || at.UnixMilli() != c.NextRefreshAt.UnixMilli() || q.QueueLen() != 1 {
		t.Fatalf("queued %v at %v, stored next %v", queued, at, c.NextRefreshAt)
	}
	// A token without expiry leaves the queue.
	e.mustDo(logical.UpdateOperation, "connections/github/c1", map[string]any{"access_token": "y"})
	if q.QueueLen() != 0 {
		t.Fatal("a token without expiry is still queued")
	}
	importExpiring(e, srv, "c2", time.Hour)
	e.mustDo(logical.DeleteOperation, "connections/github/c2", nil)
	if q.QueueLen() != 0 {
		t.Fatal("a deleted connection is still queued")
	}
	counts := e.mustDo(logical.ReadOperation, "status", nil)["refresh_status_counts"].(map[string]int)
	if counts["ok"] != 1 {
		t.Fatalf("status counts %v", counts)
	}
}

// queueFixture stores three OAuth connections expiring in one to three
// hours (github/a, b, c), a client-credentials one (machine/m1) and an API
// key (stripe/s1), which no refresh queue holds.
func queueFixture(e *testEnv, srv *oauthtest.Server) {
	e.t.Helper()
	for i, in := range []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour} {
		importExpiring(e, srv, string(rune('a'+i)), in)
	}
	e.mustDo(logical.CreateOperation, "connections/machine/m1", nil)
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	e.mustDo(logical.CreateOperation, "connections/stripe/s1", map[string]any{"api_key": "k"})
}

func TestQueueRebuiltAtStart(t *testing.T) {
	e, srv := oauthEnv(t)
	queueFixture(e, srv)

	// A new plugin process over the same storage.
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	b2, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	restarted := b2.(*backend)
	if err := restarted.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !restarted.engine.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("queue not built in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := restarted.engine.QueueLen(); n != 4 {
		t.Fatalf("rebuilt queue holds %d, want 4 (the API key is not refreshed)", n)
	}
	for _, key := range []string{"connections/github/a", "connections/machine/m1"} {
		at, queued := restarted.engine.Scheduled(key)
		c, _ := getConnection(t.Context(), e.storage, strings.Split(key, "/")[1], strings.Split(key, "/")[2])
		if !queued || at.UnixMilli() != c.NextRefreshAt.UnixMilli() {
			t.Fatalf("%s: rebuilt item queued %v at %v, stored next %v", key, queued, at, c.NextRefreshAt)
		}
	}
	restarted.Cleanup(context.Background())
}

// replicaEnv is a backend on a node in the given replication state, with
// an OAuth integration "github" seeded straight into storage (writes would
// be forwarded there).
func replicaEnv(t *testing.T, state consts.ReplicationState) (*testEnv, *oauthtest.Server) {
	t.Helper()
	srv := oauthtest.New()
	t.Cleanup(srv.Close)
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	conf.System = &logical.StaticSystemView{ReplicationStateVal: state}
	b, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, b: b.(*backend), storage: conf.StorageView, logs: &syncBuffer{}}
	in := &integrationEntry{Name: "github", AuthMode: catalog.OAuth2, ClientID: srv.ClientID, ClientSecret: srv.ClientSecret,
		EndpointSettings: catalog.EndpointSettings{AuthURL: srv.AuthURL(), TokenURL: srv.TokenURL(), AuthStyle: "auto"}}
	putIntegration(t.Context(), e.storage, in)
	return e, srv
}

func TestPerformanceStandbyDoesNotRefresh(t *testing.T) {
	e, srv := replicaEnv(t, consts.ReplicationPerformanceStandby)
	c := &connectionEntry{Integration: "github", ConnectionID: "c1", AuthMode: catalog.OAuth2,
		Credentials:   credentials{AccessToken: "a", RefreshToken: srv.IssueRefreshToken(), ExpiresAt: time.Now().Add(time.Minute)},
		NextRefreshAt: time.Now().Add(-time.Minute)}
	putConnection(t.Context(), e.storage, c)
	e.b.engine.track(c)

	e.tick()
	_, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "connections/github/c1", Storage: e.storage})
	if err != logical.ErrReadOnly {
		t.Fatalf("due read on a standby: %v, want ErrReadOnly so Vault forwards it", err)
	}
	if srv.Requests() != 0 {
		t.Fatal("a performance standby asked the provider")
	}
}

func TestStatusAndMetrics(t *testing.T) {
	sink := metrics.NewInmemSink(time.Minute, time.Hour)
	cfg := metrics.DefaultConfig("test")
	cfg.EnableHostname, cfg.EnableRuntimeMetrics = false, false
	if _, err := metrics.NewGlobal(cfg, sink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { metrics.NewGlobal(metrics.DefaultConfig("test"), &metrics.BlackholeSink{}) })

	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"auth_style": "header"})
	importExpiring(e, srv, "ok", 5*time.Minute)
	importExpiring(e, srv, "later", 3*time.Hour)
	e.mustDo(logical.ReadOperation, "connections/github/ok", nil) // a refresh that succeeds
	srv.Fail("server_error", http.StatusInternalServerError)
	importExpiring(e, srv, "bad", 5*time.Minute)
	e.mustDo(logical.ReadOperation, "connections/github/bad", nil) // one that fails

	st := e.mustDo(logical.ReadOperation, "status", nil)
	counts := st["refresh_status_counts"].(map[string]int)
	if st["refreshes_total"] != int64(1) || st["refresh_failures_total"] != int64(1) || counts["ok"] != 2 || counts["failing"] != 1 {
		t.Fatalf("status = %v", st)
	}
	if st["queue_size"] != 3 || st["next_refresh_at"] == "" {
		t.Fatalf("status queue = %v %v", st["queue_size"], st["next_refresh_at"])
	}
	e.tick()

	data := sink.Data()
	var found []string
	for _, iv := range data {
		for name := range iv.Counters {
			found = append(found, name)
		}
		for name := range iv.Samples {
			found = append(found, name)
		}
		for name := range iv.Gauges {
			found = append(found, name)
		}
	}
	all := strings.Join(found, " ")
	for _, want := range []string{"connect.refresh.success;integration=github", "connect.refresh.failure;integration=github",
		"connect.refresh.latency;integration=github", "connect.refresh.queue_depth"} {
		if !strings.Contains(all, want) {
			t.Errorf("metric %s not emitted; have %s", want, all)
		}
	}
}

func TestTickRefreshesIdleConnections(t *testing.T) {
	e, srv := oauthEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now
	// Access tokens that never expire, refresh tokens that die unused.
	srv.SetExpiresIn(0)
	srv.SetExtraFields(map[string]any{"refresh_token_expires_in": 7776000})
	importExpiring(e, srv, "idle", 2*time.Hour)
	e.mustDo(logical.UpdateOperation, "connections/github/idle/refresh", nil)
	c, _ := getConnection(t.Context(), e.storage, "github", "idle")
	if !c.Credentials.ExpiresAt.IsZero() || !c.NextRefreshAt.Equal(now().Add(24*time.Hour)) {
		t.Fatalf("expires %v, next refresh %v; want none and a day from now", c.Credentials.ExpiresAt, c.NextRefreshAt)
	}
	before := srv.Requests()
	advance(23 * time.Hour)
	e.tick()
	if srv.Requests() != before {
		t.Fatal("refreshed before the idle interval")
	}
	advance(time.Hour)
	e.tick()
	if srv.Requests() != before+1 {
		t.Fatalf("idle connection not refreshed after a day: %d requests", srv.Requests()-before)
	}
	// Without an expiring refresh token, the same connection is left alone.
	srv.SetExtraFields(nil)
	e.mustDo(logical.UpdateOperation, "connections/github/idle/refresh", nil)
	if c, _ := getConnection(t.Context(), e.storage, "github", "idle"); !c.NextRefreshAt.IsZero() {
		t.Fatalf("a token that never expires is scheduled at %v", c.NextRefreshAt)
	}
}
