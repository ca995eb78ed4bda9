// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// walOutage is how long storage refuses the connection: longer than the
// plugin's WAL rollback minimum age (3 minutes) plus one period of Vault's
// rollback manager (1 minute), so that the rollback runs in the process
// that still holds the tokens unsaved.
const walOutage = 4*time.Minute + 20*time.Second

// TestRotatedTokenSurvivesOutageAndRestartOnFileStorage: Vault with file
// storage. The provider rotates a connection's refresh token twice while
// the connection's file is immutable, so every save of it fails while the
// WAL records are written; the outage outlasts the WAL rollback's minimum
// age. Then Vault is SIGKILLed, the file heals and Vault restarts: the
// connection reads back with the latest refresh token, which the provider
// accepts.
func TestRotatedTokenSurvivesOutageAndRestartOnFileStorage(t *testing.T) {
	vaultFor(t)
	if os.Getenv("CONNECT_CRASH") != "1" {
		t.Skip("the file-storage outage test runs with CONNECT_CRASH=1 (make test, make crash)")
	}
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr is needed to make a storage file refuse writes")
	}
	reliabilityCase(t, "file-storage Vault: the connection's file refuses writes for longer than the WAL rollback age while the provider rotates the refresh token twice; then SIGKILL of Vault and a restart",
		"the connection reads back with the latest refresh token, which the provider accepts")
	fs, as, dir := fileVaultWithOAuth(t, "wal", false)
	c := fs.Client.Logical()
	spent := as.IssueRefreshToken()
	if _, err := c.Write("connect/connections/wal/c1", map[string]any{
		"access_token": "at-initial", "refresh_token": spent, "expires_in": 3600}); err != nil {
		t.Fatal(err)
	}

	file := storedFile(t, dir, "connections/wal/_c1")
	chattr(t, "+i", file)
	healed := false
	t.Cleanup(func() {
		if !healed {
			chattr(t, "-i", file) // or the temporary directory cannot be removed
		}
	})
	if _, err := c.Write("connect/connections/wal/c1/metadata", map[string]any{"probe": "outage"}); err == nil {
		t.Fatal("a write of the immutable connection file succeeded: the outage is not real")
	}

	for range 2 {
		if _, err := c.Write("connect/connections/wal/c1/refresh", nil); err != nil {
			t.Fatalf("forced refresh during the outage: %v", err)
		}
	}
	sec, err := c.Read("connect/connections/wal/c1/raw")
	if err != nil || sec == nil {
		t.Fatalf("read during the outage: %v", err)
	}
	latest, _ := sec.Data["refresh_token"].(string)
	if !as.RefreshTokenValid(latest) || as.RefreshTokenValid(spent) {
		t.Fatal("the forced refreshes did not rotate the refresh token")
	}
	if len(walFiles(t, dir)) == 0 {
		t.Fatal("no WAL record was written for the unsaved tokens")
	}

	t.Logf("storage refuses the connection for %v, past the WAL rollback age", walOutage)
	time.Sleep(walOutage)
	if len(walFiles(t, dir)) == 0 {
		t.Fatal("the rollback deleted the WAL record while the tokens were still unsaved")
	}

	fs.Kill()
	chattr(t, "-i", file)
	healed = true
	if err := fs.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	var stored string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if sec, err := fs.Client.Logical().Read("connect/connections/wal/c1/raw"); err == nil && sec != nil {
			if stored, _ = sec.Data["refresh_token"].(string); stored == latest {
				break
			}
		}
	}
	if stored != latest {
		t.Fatal("after the restart the connection does not hold the latest refresh token")
	}
	if _, err := fs.Client.Logical().Write("connect/connections/wal/c1/refresh", nil); err != nil {
		t.Fatalf("the stored refresh token does not work: %v", err)
	}
}

// fileVaultWithOAuth starts a Vault on file storage in a temporary dir (so
// that a test can make one key's file refuse writes with chattr, which
// Raft cannot), a loopback OAuth provider, and an OAUTH2 integration of
// that name using it; withRevocation adds the provider's revocation_url.
func fileVaultWithOAuth(t *testing.T, integration string, withRevocation bool) (*vaultdev.RaftServer, *oauthtest.Server, string) {
	t.Helper()
	dir := t.TempDir()
	fs, err := vaultdev.StartFile(os.Getenv("VAULT_BIN"), os.Getenv("PLUGIN_DIR"), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fs.Kill)
	as := newAuthServer(t)
	fields := map[string]any{"auth_mode": "OAUTH2", "client_id": as.ClientID,
		"client_secret": as.ClientSecret, "auth_url": as.AuthURL(), "token_url": as.TokenURL(), "auth_style": "header"}
	if withRevocation {
		fields["revocation_url"] = as.RevocationURL()
	}
	if _, err := fs.Client.Logical().Write("connect/integrations/"+integration, fields); err != nil {
		t.Fatal(err)
	}
	return fs, as, dir
}

// storedFile is the file of a key of the connect mount in file storage.
func storedFile(t *testing.T, dir, key string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "data", "logical", "*", filepath.FromSlash(key)))
	if err != nil || len(files) != 1 {
		t.Fatalf("finding %s in file storage: %v %v", key, files, err)
	}
	return files[0]
}

// walFiles are the WAL records of the connect mount in file storage.
func walFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "data", "logical", "*", "wal", "_*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// chattr sets or clears a file's attribute; +i makes it refuse every write,
// even from root, as a failing disk or a read-only volume does.
func chattr(t *testing.T, attr, file string) {
	t.Helper()
	if out, err := exec.Command("chattr", attr, file).CombinedOutput(); err != nil {
		t.Fatalf("chattr %s %s: %v %s", attr, file, err, out)
	}
}

// TestNothingStaleAfterKillsOnFileStorage: Vault with file storage whose
// connection file refuses writes while the provider (which refuses a spent
// refresh token at once) rotates the refresh token. An edit of the
// connection held unsaved fails and changes nothing; a delete storage
// refuses fails with nothing revoked and the connection still usable. Then
// the plugin is SIGKILLed and read at once while storage still refuses,
// then Vault is SIGKILLed, storage heals and Vault restarts, read at once
// again: no read ever refreshes with the spent refresh token, the rotated
// one is served and stored, and the WAL is emptied.
func TestNothingStaleAfterKillsOnFileStorage(t *testing.T) {
	vaultFor(t)
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr is needed to make a storage file refuse writes")
	}
	reliabilityCase(t, "file-storage Vault: the connection's file refuses writes while the provider rotates; an edit and a delete meanwhile; SIGKILL of the plugin, then of Vault, each followed at once by reads",
		"the edit and the delete fail and change nothing (nothing revoked); no read refreshes with the spent refresh token; the rotated one is served and stored; the WAL is emptied")
	fs, as, dir := fileVaultWithOAuth(t, "wal", true)
	c := fs.Client.Logical()
	spent := as.IssueRefreshToken()
	// Due at once (inside the refresh margin): a read after a restart
	// would refresh it with whatever storage holds.
	if _, err := c.Write("connect/connections/wal/c1", map[string]any{
		"access_token": "at-initial", "refresh_token": spent, "expires_in": 60, "metadata": map[string]any{"owner": "before"}}); err != nil {
		t.Fatal(err)
	}
	file := storedFile(t, dir, "connections/wal/_c1")
	chattr(t, "+i", file)
	healed := false
	t.Cleanup(func() {
		if !healed {
			chattr(t, "-i", file)
		}
	})

	if _, err := c.Write("connect/connections/wal/c1/refresh", nil); err != nil {
		t.Fatalf("forced refresh while storage refuses the connection: %v", err)
	}
	rotated := rawRefreshToken(t, c, "connect/connections/wal/c1/raw")
	if rotated == spent || !as.RefreshTokenValid(rotated) || as.RefreshTokenValid(spent) {
		t.Fatal("the forced refresh did not rotate the refresh token")
	}
	if _, err := c.Write("connect/connections/wal/c1/metadata", map[string]any{"owner": "lost"}); err == nil {
		t.Fatal("an edit of the connection held unsaved answered 2xx while storage refuses it")
	}
	if _, err := c.Delete("connect/connections/wal/c1"); err == nil {
		t.Fatal("a delete storage refuses answered 2xx")
	}
	if got := as.Revoked(); len(got) != 0 {
		t.Fatalf("the failed delete revoked %d token(s)", len(got))
	}
	refusals := as.Refusals()

	t.Log("SIGKILL of the plugin; reads at once, storage still refusing")
	for _, pid := range fs.PluginPIDs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if got := rawRefreshToken(t, c, "connect/connections/wal/c1/raw"); got != rotated {
		t.Fatal("after the plugin's restart the read did not serve the rotated refresh token")
	}

	t.Log("SIGKILL of Vault; storage heals; reads at once")
	fs.Kill()
	chattr(t, "-i", file)
	healed = true
	if err := fs.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	c = fs.Client.Logical()
	if got := rawRefreshToken(t, c, "connect/connections/wal/c1/raw"); got != rotated {
		t.Fatal("after Vault's restart the read did not serve the rotated refresh token")
	}
	if as.Refusals() != refusals || !as.RefreshTokenValid(rotated) {
		t.Fatalf("a read refreshed with the spent refresh token: %d refusals", as.Refusals()-refusals)
	}
	sec, err := c.Read("connect/connections/wal/c1/metadata")
	if err != nil || sec == nil || sec.Data["owner"] != "before" {
		t.Fatalf("metadata after the restarts: %v %v", sec, err)
	}
	waitForEmptyWAL(t, dir)
	if _, err := c.Write("connect/connections/wal/c1/refresh", nil); err != nil {
		t.Fatalf("the stored refresh token does not work: %v", err)
	}
	if _, err := c.Delete("connect/connections/wal/c1"); err != nil {
		t.Fatalf("delete once storage heals: %v", err)
	}
	if len(as.Revoked()) == 0 {
		t.Fatal("the delete did not revoke the tokens")
	}
}

// rawRefreshToken reads a connection's raw refresh token, trying again
// while the plugin starts or holds the read back for its WAL (503), for
// at most 30 s.
func rawRefreshToken(t *testing.T, c *api.Logical, path string) string {
	t.Helper()
	rt, err := readRefreshToken(c, path)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// readRefreshToken is rawRefreshToken for goroutines other than the
// test's: it returns the error.
func readRefreshToken(c *api.Logical, path string) (string, error) {
	var lastErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		sec, err := c.Read(path)
		if err == nil && sec != nil {
			rt, _ := sec.Data["refresh_token"].(string)
			return rt, nil
		}
		lastErr = err
	}
	return "", fmt.Errorf("reading %s: %v", path, lastErr)
}

// waitForEmptyWAL waits for the WAL records of file storage in dir to be
// applied and deleted.
func waitForEmptyWAL(t *testing.T, dir string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); len(walFiles(t, dir)) > 0; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d WAL records left", len(walFiles(t, dir)))
		}
	}
}
