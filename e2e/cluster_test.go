// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// TestRaftClusterFailover: three Vault nodes on loopback form one
// integrated-storage cluster with the plugin mounted. Writes and reads
// through a standby are forwarded and work; after a SIGKILL of the active
// node a standby takes over, its plugin rebuilds the refresh queue and
// refreshes every due connection in the background, spending no refresh
// token twice; the killed node rejoins and serves the data.
func TestRaftClusterFailover(t *testing.T) {
	nodes := startCluster(t, "3-node Raft cluster: SIGKILL of the active node with connections due for refresh",
		"a standby takes over and refreshes every due connection in the background; no refresh token is spent twice; the killed node rejoins and serves the data")
	as := newAuthServer(t)
	active, standby := nodes[0], nodes[1]
	// Through a standby: forwarded to the active node.
	sc := standby.Client.Logical()
	if _, err := sc.Write("connect/config", map[string]any{"refresh_margin": "60s"}); err != nil {
		t.Fatalf("config through a standby: %v", err)
	}
	if _, err := sc.Write("connect/integrations/ha", map[string]any{"auth_mode": "OAUTH2", "client_id": as.ClientID,
		"client_secret": as.ClientSecret, "auth_url": as.AuthURL(), "token_url": as.TokenURL(), "auth_style": "header"}); err != nil {
		t.Fatalf("integration through a standby: %v", err)
	}
	const n = 50
	// Due for refresh 15-30 s from now (expiry - margin - jitter).
	expires := time.Now().Add(90 * time.Second).UTC().Format(time.RFC3339)
	for i := range n {
		if _, err := sc.Write(fmt.Sprintf("connect/connections/ha/c%02d", i), map[string]any{
			"access_token": "at-before", "refresh_token": as.IssueRefreshToken(), "expires_at": expires}); err != nil {
			t.Fatalf("connection through a standby: %v", err)
		}
	}
	if sec, err := sc.Read("connect/connections/ha/c00"); err != nil || sec.Data["access_token"] != "at-before" {
		t.Fatalf("read through a standby: %v %v", err, sec)
	}

	active.Kill()
	var newActive *vaultdev.RaftServer
	deadline := time.Now().Add(60 * time.Second)
	for newActive == nil && time.Now().Before(deadline) {
		for _, node := range nodes[1:] {
			if node.IsActive() {
				newActive = node
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	if newActive == nil {
		t.Fatal("no standby took over in 60 s")
	}
	// Nobody reads: only the new active node's background can refresh.
	deadline = time.Now().Add(3 * time.Minute)
	for as.Requests() < n && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	if got := as.Requests(); got < n {
		t.Fatalf("the new active node refreshed %d of %d due connections in the background", got, n)
	}
	t.Logf("figure|cluster failover: %d of %d due connections refreshed in the background by the new active node; the provider refused %d", as.Requests(), n, as.Refusals())

	// The killed node rejoins and serves the data, refreshed.
	if err := active.RestartStandby(); err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	for i := range n {
		var sec *api.Secret
		var err error
		for attempt := 0; attempt < 50; attempt++ {
			sec, err = active.Client.Logical().Read(fmt.Sprintf("connect/connections/ha/c%02d/raw", i))
			if err == nil && sec != nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil || sec == nil {
			t.Fatalf("read c%02d through the rejoined node: %v", i, err)
		}
		if sec.Data["access_token"] == "at-before" || !as.AccessTokenValid(sec.Data["access_token"].(string)) || !as.RefreshTokenValid(sec.Data["refresh_token"].(string)) {
			t.Fatalf("c%02d was not refreshed, or holds a spent refresh token", i)
		}
	}
	if as.Refusals() != 0 {
		t.Fatalf("the provider refused %d spent refresh tokens: one was spent twice", as.Refusals())
	}
}

// TestRaftSnapshotRestore: a Raft snapshot taken with connections in it,
// restored after they were changed and deleted, serves them as they were.
func TestRaftSnapshotRestore(t *testing.T) {
	vaultFor(t)
	if os.Getenv("CONNECT_CRASH") != "1" {
		t.Skip("the Raft snapshot test runs with CONNECT_CRASH=1 (make test, make crash)")
	}
	reliabilityCase(t, "Raft snapshot saved, connections changed and deleted, snapshot restored",
		"every connection reads back as it was in the snapshot")
	rs, err := vaultdev.StartRaft(os.Getenv("VAULT_BIN"), os.Getenv("PLUGIN_DIR"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Kill)
	c := rs.Client.Logical()
	if _, err := c.Write("connect/integrations/snap", map[string]any{"auth_mode": "API_KEY"}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := c.Write(fmt.Sprintf("connect/connections/snap/c%02d", i), map[string]any{"api_key": fmt.Sprintf("sk_snapshot_%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	snap := t.TempDir() + "/vault.snap"
	if out, err := rs.CLI(nil, "operator", "raft", "snapshot", "save", snap); err != nil {
		t.Fatalf("snapshot save: %v %s", err, out)
	}
	for i := range 20 {
		path := fmt.Sprintf("connect/connections/snap/c%02d", i)
		if i%2 == 0 {
			c.Delete(path)
		} else {
			c.Write(path, map[string]any{"api_key": "sk_changed_after"})
		}
		c.Read(path) // and cached in the plugin
	}
	if out, err := rs.CLI(nil, "operator", "raft", "snapshot", "restore", snap); err != nil {
		t.Fatalf("snapshot restore: %v %s", err, out)
	}
	for i := range 20 {
		path := fmt.Sprintf("connect/connections/snap/c%02d", i)
		var sec *api.Secret
		for attempt := 0; attempt < 100; attempt++ {
			if sec, err = c.Read(path); err == nil && sec != nil && sec.Data["api_key"] == fmt.Sprintf("sk_snapshot_%02d", i) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if sec == nil || sec.Data["api_key"] != fmt.Sprintf("sk_snapshot_%02d", i) {
			t.Fatalf("%s after the restore: %v %v", path, err, sec)
		}
	}
}

// TestRaftClusterEventsFailover: events recorded while their receiver is
// down stay in the outbox when the active node is SIGKILLed; once the
// receiver is back, the new active node delivers every one of them.
func TestRaftClusterEventsFailover(t *testing.T) {
	nodes := startCluster(t, "3-node Raft cluster: events pending for a receiver that is down, SIGKILL of the active node, receiver back",
		"the new active node delivers every pending event")
	var up atomic.Bool
	var mu sync.Mutex
	attempted, accepted := map[string]int{}, map[string]int{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("webhook-id")
		mu.Lock()
		defer mu.Unlock()
		attempted[id]++
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		accepted[id]++
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)
	counts := func() (tried, got int) {
		mu.Lock()
		defer mu.Unlock()
		return len(attempted), len(accepted)
	}

	active, standby := nodes[0], nodes[1]
	sc := standby.Client.Logical() // forwarded to the active node
	if _, err := sc.Write("connect/webhooks/ha", map[string]any{"url": rcv.URL, "events": "connection.created"}); err != nil {
		t.Fatalf("receiver through a standby: %v", err)
	}
	if _, err := sc.Write("connect/integrations/ha-events", map[string]any{"auth_mode": "API_KEY"}); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		if _, err := sc.Write(fmt.Sprintf("connect/connections/ha-events/c%02d", i), map[string]any{"api_key": "sk_ha"}); err != nil {
			t.Fatal(err)
		}
	}
	// The old active node tries each event once, at once, and fails.
	deadline := time.Now().Add(30 * time.Second)
	for tried, _ := counts(); tried < n && time.Now().Before(deadline); tried, _ = counts() {
		time.Sleep(100 * time.Millisecond)
	}
	if tried, _ := counts(); tried != n {
		t.Fatalf("the receiver saw %d of %d events before the failover", tried, n)
	}

	active.Kill()
	up.Store(true)
	start := time.Now()
	deadline = time.Now().Add(3 * time.Minute)
	for _, got := counts(); got < n && time.Now().Before(deadline); _, got = counts() {
		time.Sleep(500 * time.Millisecond)
	}
	tried, got := counts()
	if got != n || tried != n {
		t.Fatalf("after the failover the receiver accepted %d of %d events (%d distinct ids seen)", got, n, tried)
	}
	t.Logf("figure|events failover: %d pending events delivered by the new active node %v after the old one was killed", n, time.Since(start).Round(time.Second))
}

// startCluster starts the three-node cluster of a reliability case (only
// with CONNECT_HA=1, as make ha runs) and kills its nodes when t ends.
func startCluster(t *testing.T, name, expectation string) []*vaultdev.RaftServer {
	t.Helper()
	vaultFor(t)
	if os.Getenv("CONNECT_HA") != "1" {
		t.Skip("the cluster test runs with CONNECT_HA=1 (make ha)")
	}
	reliabilityCase(t, name, expectation)
	nodes, err := vaultdev.StartRaftCluster(os.Getenv("VAULT_BIN"), os.Getenv("PLUGIN_DIR"), t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.Kill()
		}
	})
	return nodes
}
