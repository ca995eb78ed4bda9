// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// crashSettings are the crash test's sizes, from the environment so that
// make crash can run it longer: CRASH_CONNECTIONS, CRASH_SECONDS,
// CRASH_KILL_EVERY (seconds).
func crashSettings() (conns int, chaos, killEvery time.Duration) {
	atoi := func(name string, def int) int {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			return v
		}
		return def
	}
	return atoi("CRASH_CONNECTIONS", 1000), time.Duration(atoi("CRASH_SECONDS", 30)) * time.Second,
		time.Duration(atoi("CRASH_KILL_EVERY", 5)) * time.Second
}

// crashResult is what a crash run found.
type crashResult struct {
	kills, bad, refused int
	badFlagged          bool // every bad connection says reauthorization_required
}

// TestCrashesOnRaftWithReuseGrace: Vault with integrated storage from a
// config file, 1,000 OAuth connections against a provider that rotates
// refresh tokens with a short reuse grace period (as Okta and Auth0 do);
// refreshes and metadata writes keep running while the plugin process is
// SIGKILLed again and again; then Vault itself is SIGKILLed, restarted and
// unsealed. Every connection reads back, uncorrupted, with a refresh token
// the provider accepts, and the provider refused none.
func TestCrashesOnRaftWithReuseGrace(t *testing.T) {
	reliabilityCase(t, "Raft Vault: SIGKILL of the plugin every few seconds under refreshes and writes, then SIGKILL of Vault; provider with a rotation grace period",
		"every connection reads back uncorrupted with a refresh token the provider accepts; the provider refuses none")
	res := runCrash(t, 2*time.Minute)
	if res.bad != 0 || res.refused != 0 {
		t.Fatalf("%d connections lost their refresh token; the provider refused %d", res.bad, res.refused)
	}
}

// TestCrashesOnRaftStrictRotation is the same against a provider that
// refuses a spent refresh token at once. A SIGKILL between the provider's
// rotation and the storage write loses that refresh token: no client can
// store an answer it never finished receiving. What must hold: every
// connection reads back uncorrupted, at most the refreshes in flight at
// each kill are lost, and each lost one says reauthorization_required
// rather than failing silently.
func TestCrashesOnRaftStrictRotation(t *testing.T) {
	reliabilityCase(t, "the same, provider refusing spent refresh tokens at once",
		"every connection reads back uncorrupted; only refreshes in flight at a kill are lost, each flagged reauthorization_required")
	res := runCrash(t, 0)
	if !res.badFlagged || res.bad > res.kills*crashWorkers {
		t.Fatalf("%d connections lost their refresh token in %d kills (flagged: %v)", res.bad, res.kills, res.badFlagged)
	}
}

// crashWorkers is how many requests are in flight during the chaos.
const crashWorkers = 8

func runCrash(t *testing.T, grace time.Duration) crashResult {
	vaultFor(t) // the same switch as the rest of the suite
	if os.Getenv("CONNECT_CRASH") != "1" {
		t.Skip("the crash tests run with CONNECT_CRASH=1 (make crash, make test)")
	}
	nConns, chaos, killEvery := crashSettings()
	rs, err := vaultdev.StartRaft(os.Getenv("VAULT_BIN"), os.Getenv("PLUGIN_DIR"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Kill)
	as := newAuthServer(t)
	as.SetReuseGrace(grace)
	c := rs.Client.Logical()
	if _, err := c.Write("connect/integrations/crash", map[string]any{"auth_mode": "OAUTH2", "client_id": as.ClientID,
		"client_secret": as.ClientSecret, "auth_url": as.AuthURL(), "token_url": as.TokenURL(), "auth_style": "header"}); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, nConns)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ids[i] = fmt.Sprintf("c%05d", i)
				if _, err := c.Write("connect/connections/crash/"+ids[i], map[string]any{
					"access_token": "at-initial", "refresh_token": as.IssueRefreshToken(), "expires_in": 3600,
					"metadata": map[string]any{"writes": 0},
				}); err != nil {
					t.Errorf("create %s: %v", ids[i], err)
				}
			}
		}()
	}
	for i := range nConns {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Chaos: workers refresh and write while the plugin is killed.
	var refreshes, writes, failed atomic.Int64
	stop := make(chan struct{})
	for w := range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[r.IntN(len(ids))]
				var err error
				if r.IntN(3) == 0 {
					_, err = c.JSONMergePatch(t.Context(), "connect/connections/crash/"+id+"/metadata", map[string]any{"writes": r.IntN(1000)})
					writes.Add(1)
				} else {
					_, err = c.Write("connect/connections/crash/"+id+"/refresh", nil)
					refreshes.Add(1)
				}
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	kills := 0
	deadline := time.Now().Add(chaos)
	for time.Now().Before(deadline) {
		time.Sleep(killEvery)
		for _, pid := range rs.PluginPIDs() {
			syscall.Kill(pid, syscall.SIGKILL)
			kills++
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("figure|%s: chaos: %d refreshes, %d metadata writes, %d failed requests, %d plugin kills", t.Name(), refreshes.Load(), writes.Load(), failed.Load(), kills)

	// Then Vault itself, and back.
	rs.Kill()
	if err := rs.Restart(); err != nil {
		t.Fatalf("restart: %v\n%s", err, tailFile(filepath.Join(rs.Dir, "vault.log")))
	}
	res := crashResult{kills: kills, refused: as.Refusals(), badFlagged: true}
	for _, id := range ids {
		var sec, err = c.Read("connect/connections/crash/" + id + "/raw")
		for attempt := 0; err != nil && attempt < 50; attempt++ { // the plugin starts on first use
			time.Sleep(100 * time.Millisecond)
			sec, err = c.Read("connect/connections/crash/" + id + "/raw")
		}
		if err != nil || sec == nil {
			t.Fatalf("read %s after the restart: %v", id, err)
		}
		if sec.Data["connection_id"] != id || sec.Data["metadata"] == nil || sec.Data["auth_mode"] != "OAUTH2" {
			t.Fatalf("%s is corrupted: %v", id, sec.Data)
		}
		rt, _ := sec.Data["refresh_token"].(string)
		if !as.RefreshTokenValid(rt) {
			res.bad++
			// A forced refresh tells the engine, if chaos did not already.
			c.Write("connect/connections/crash/"+id+"/refresh", nil)
			again, err := c.Read("connect/connections/crash/" + id)
			if err != nil || again == nil || again.Data["refresh_status"] != "reauthorization_required" {
				res.badFlagged = false
			}
		}
	}
	t.Logf("figure|%s: after the restart: %d of %d connections lost their refresh token in %d plugin kills; the provider refused %d refreshes",
		t.Name(), res.bad, len(ids), kills, res.refused)
	return res
}

func tailFile(path string) string {
	b, _ := os.ReadFile(path)
	return tail(string(b), 3000)
}

// TestCrashesWithWALRecordsAtStart: file-storage Vault (whose files can be
// made to refuse writes, which Raft's cannot), connections due at once
// whose files refuse writes while the provider rotates each one's refresh
// token, so that every rotation lives only in memory and in a WAL record;
// then the plugin is SIGKILLed and every connection read at once, from
// many clients, while storage still refuses; then Vault is SIGKILLed,
// storage heals, Vault restarts and every connection is read at once
// again. No read refreshes with a spent refresh token: the provider,
// which refuses one at once, refuses none, and every connection ends with
// its rotated refresh token stored, the WAL emptied.
// CRASH_WAL_CONNECTIONS sets the count (make test: 20; make crash: 200).
func TestCrashesWithWALRecordsAtStart(t *testing.T) {
	vaultFor(t)
	if os.Getenv("CONNECT_CRASH") != "1" {
		t.Skip("the crash tests run with CONNECT_CRASH=1 (make crash, make test)")
	}
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr is needed to make storage files refuse writes")
	}
	reliabilityCase(t, "file-storage Vault: WAL records of rotated tokens for many due connections; SIGKILL of the plugin, then of Vault; reads of every connection arrive at once after each",
		"no read refreshes with a spent refresh token (the provider refuses none); every rotated refresh token is served, then stored; the WAL is emptied")
	n := 20
	if v, err := strconv.Atoi(os.Getenv("CRASH_WAL_CONNECTIONS")); err == nil && v > 0 {
		n = v
	}
	fs, as, dir := fileVaultWithOAuth(t, "walcrash", false)
	c := fs.Client.Logical()
	ids := make([]string, n)
	var files []string
	for i := range ids {
		ids[i] = fmt.Sprintf("w%04d", i)
		if _, err := c.Write("connect/connections/walcrash/"+ids[i], map[string]any{
			"access_token": "at-initial", "refresh_token": as.IssueRefreshToken(), "expires_in": 60}); err != nil {
			t.Fatal(err)
		}
		files = append(files, storedFile(t, dir, "connections/walcrash/_"+ids[i]))
	}
	healed := false
	for _, f := range files {
		chattr(t, "+i", f)
	}
	heal := func() {
		for _, f := range files {
			chattr(t, "-i", f)
		}
		healed = true
	}
	t.Cleanup(func() {
		if !healed {
			heal()
		}
	})
	rotated := make([]string, n)
	eachAtOnce(n, func(i int) {
		if _, err := c.Write("connect/connections/walcrash/"+ids[i]+"/refresh", nil); err != nil {
			t.Errorf("forced refresh of %s: %v", ids[i], err)
		}
		rt, err := readRefreshToken(c, "connect/connections/walcrash/"+ids[i]+"/raw")
		if err != nil {
			t.Error(err)
		}
		rotated[i] = rt
	})
	if t.Failed() {
		t.FailNow()
	}
	if got := len(walFiles(t, dir)); got < n {
		t.Fatalf("%d WAL records for %d unsaved rotations", got, n)
	}
	refusals := as.Refusals()
	readAll := func(when string) {
		eachAtOnce(n, func(i int) {
			if got, err := readRefreshToken(c, "connect/connections/walcrash/"+ids[i]+"/raw"); err != nil || got != rotated[i] {
				t.Errorf("%s: %s does not serve its rotated refresh token (%v)", when, ids[i], err)
			}
		})
		if got := as.Refusals() - refusals; got != 0 {
			t.Fatalf("%s: the provider refused %d spent refresh token(s)", when, got)
		}
	}

	for _, pid := range fs.PluginPIDs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	readAll("after the plugin's SIGKILL, storage refusing")

	fs.Kill()
	heal()
	if err := fs.Restart(); err != nil {
		t.Fatalf("restart: %v\n%s", err, tailFile(filepath.Join(dir, "vault.log")))
	}
	c = fs.Client.Logical()
	readAll("after Vault's SIGKILL and restart")
	waitForEmptyWAL(t, dir)
	for i, id := range ids {
		if !as.RefreshTokenValid(rotated[i]) {
			t.Errorf("%s: its stored refresh token is not valid", id)
		}
	}
	t.Logf("figure|%s: %d connections with WAL records at start, read at once after a plugin and a Vault SIGKILL: 0 refusals", t.Name(), n)
}

// eachAtOnce runs f for 0..n-1 from 16 goroutines and waits for all.
func eachAtOnce(n int, f func(i int)) {
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				f(i)
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}
