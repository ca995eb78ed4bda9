// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// TestScheduleMarksThroughCrashesOnRaft: OAuth connections refreshed,
// rewritten, deleted and created again on Raft while the plugin is SIGKILLed
// every two seconds, then Vault itself SIGKILLed under that load. Read
// straight from storage (sys/raw) before the plugin starts again, every
// stored connection has the schedule mark its entry says (so a start queues
// it no later than it is due); once the restarted plugin has read every
// connection, each has that mark alone and no deleted connection has one.
// The marks are named here from their documented form, not by the plugin's
// code.
func TestScheduleMarksThroughCrashesOnRaft(t *testing.T) {
	reliabilityCase(t, "Raft Vault: forced refreshes, rewrites, deletes and creates of OAuth connections while the plugin is SIGKILLed every 2 s, then Vault SIGKILLed under the load",
		"before the plugin starts again every stored connection's current schedule mark is in storage; after its check, that mark alone, and none of a deleted connection")
	vaultFor(t)
	if os.Getenv("CONNECT_CRASH") != "1" {
		t.Skip("the crash tests run with CONNECT_CRASH=1 (make crash, make test)")
	}
	// A plugin directory of its own: the binary is taken away while Vault
	// restarts, so that no plugin mends the marks before they are read.
	plugins := t.TempDir()
	binary := filepath.Join(plugins, vaultdev.PluginName)
	copyFile(t, filepath.Join(os.Getenv("PLUGIN_DIR"), vaultdev.PluginName), binary)
	rs, err := vaultdev.StartRaft(os.Getenv("VAULT_BIN"), plugins, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Kill)
	as := newAuthServer(t)
	as.SetReuseGrace(time.Hour) // a refresh cut short by a kill must not end the test's connections
	c := rs.Client.Logical()
	if _, err := c.Write("connect/integrations/marks", map[string]any{"auth_mode": "OAUTH2", "client_id": as.ClientID,
		"client_secret": as.ClientSecret, "auth_url": as.AuthURL(), "token_url": as.TokenURL(), "auth_style": "header"}); err != nil {
		t.Fatal(err)
	}
	const n = 200
	create := func(id string, r *rand.Rand) error {
		_, err := c.Write("connect/connections/marks/"+id, map[string]any{
			"access_token": "at", "refresh_token": as.IssueRefreshToken(), "expires_in": 3600 + r.IntN(86400)})
		return err
	}
	seed := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		if err := create(fmt.Sprintf("c%03d", i), seed); err != nil {
			t.Fatal(err)
		}
	}

	var ops atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("c%03d", r.IntN(n))
				switch k := r.IntN(10); {
				case k < 5:
					c.Write("connect/connections/marks/"+id+"/refresh", nil)
				case k < 7:
					c.Write("connect/connections/marks/"+id, map[string]any{"access_token": "at2", "expires_in": 600 + r.IntN(86400)})
				case k < 9:
					c.Delete("connect/connections/marks/" + id)
				default:
					create(id, r)
				}
				ops.Add(1)
			}
		}()
	}
	kills := 0
	for range 6 {
		time.Sleep(2 * time.Second)
		for _, pid := range rs.PluginPIDs() {
			syscall.Kill(pid, syscall.SIGKILL)
			kills++
		}
	}
	time.Sleep(time.Second)
	rs.Kill() // Vault and the plugin, with writes in flight
	close(stop)
	wg.Wait()
	t.Logf("figure|%s: %d operations, %d plugin kills, then Vault killed under load", t.Name(), ops.Load(), kills)
	if err := os.Rename(binary, binary+".away"); err != nil {
		t.Fatal(err)
	}
	if err := rs.Restart(); err != nil {
		t.Fatalf("restart: %v\n%s", err, tailFile(filepath.Join(rs.Dir, "vault.log")))
	}

	raw := rawMount(t, rs.Client, "connect/")
	if running := len(rs.PluginPIDs()); running > 0 {
		t.Fatalf("%d plugin processes running when storage is read: the read would follow their mending", running)
	}
	entries, marks := raw.connections(t, "marks"), raw.marks(t, "marks")
	for id, want := range entries {
		if !slices.Contains(marks[id], want) {
			t.Errorf("after the kills, %s has marks %v, not its entry's %s", id, marks[id], want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The plugin starts, reads every connection, and mends the marks.
	// Vault started without it keeps the mount's storage read-only (as
	// during a mount's setup) for as long as it runs: a restart with the
	// binary back is an ordinary start.
	if err := os.Rename(binary+".away", binary); err != nil {
		t.Fatal(err)
	}
	rs.Kill()
	if err := rs.Restart(); err != nil {
		t.Fatalf("restart: %v\n%s", err, tailFile(filepath.Join(rs.Dir, "vault.log")))
	}
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := c.Read("connect/status")
		if err == nil && st != nil && st.Data["queue_checked"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted plugin did not check its queue within a minute: %v %v\n%s", st, err, tailFile(filepath.Join(rs.Dir, "vault.log")))
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries, marks = raw.connections(t, "marks"), raw.marks(t, "marks")
	for id, want := range entries {
		if got := marks[id]; len(got) != 1 || got[0] != want {
			t.Errorf("after the check, %s has marks %v, want its entry's %s alone", id, got, want)
		}
	}
	for id, got := range marks {
		if _, stored := entries[id]; !stored {
			t.Errorf("after the check, deleted connection %s still has marks %v", id, got)
		}
	}
	t.Logf("figure|%s: %d connections stored at the end", t.Name(), len(entries))
}

// rawStorage reads one mount's storage through sys/raw.
type rawStorage struct {
	c      *api.Client
	prefix string // sys/raw/logical/<mount uuid>/
}

func rawMount(t *testing.T, c *api.Client, mount string) rawStorage {
	t.Helper()
	mounts, err := c.Sys().ListMounts()
	if err != nil || mounts[mount] == nil {
		t.Fatalf("mount %s: %v", mount, err)
	}
	return rawStorage{c: c, prefix: "sys/raw/logical/" + mounts[mount].UUID + "/"}
}

func (r rawStorage) list(t *testing.T, prefix string) []string {
	t.Helper()
	sec, err := r.c.Logical().List(r.prefix + prefix)
	if err != nil {
		t.Fatalf("listing %s: %v", prefix, err)
	}
	if sec == nil {
		return nil
	}
	var keys []string
	for _, k := range sec.Data["keys"].([]any) {
		keys = append(keys, k.(string))
	}
	return keys
}

// connections returns each stored connection of integration with the mark
// name its entry calls for: <id>~<status>~<next refresh, Unix ms or 0>.
func (r rawStorage) connections(t *testing.T, integration string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, id := range r.list(t, "connections/"+integration+"/") {
		sec, err := r.c.Logical().Read(r.prefix + "connections/" + integration + "/" + id)
		if err != nil || sec == nil {
			t.Fatalf("reading %s: %v", id, err)
		}
		var entry struct {
			Status string    `json:"refresh_status"`
			Next   time.Time `json:"next_refresh_at"`
		}
		if err := json.Unmarshal([]byte(sec.Data["value"].(string)), &entry); err != nil {
			t.Fatalf("decoding %s: %v", id, err)
		}
		if entry.Status == "" {
			entry.Status = "ok"
		}
		next := int64(0)
		if !entry.Next.IsZero() {
			next = entry.Next.UnixMilli()
		}
		out[id] = id + "~" + entry.Status + "~" + strconv.FormatInt(next, 10)
	}
	return out
}

// marks returns the schedule marks of integration by connection id.
func (r rawStorage) marks(t *testing.T, integration string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, name := range r.list(t, "schedule/"+integration+"/") {
		id, _, _ := strings.Cut(name, "~")
		out[id] = append(out[id], name)
	}
	return out
}
