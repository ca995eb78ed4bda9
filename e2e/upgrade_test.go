// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// The upgrade tests: the previous release of the plugin (the commit named
// in scripts/upgrade/from, built once into bin/upgrade/<commit>/) writes
// every kind of entry as version A; the mount is tuned to this tree's build
// (version B) and reloaded, as docs/upgrading.md tells operators; every
// entry must read the same, and work. Then back to A.

// previousReleaseVersion is the version the previous release is registered
// under; 0.1.0's binary reports none of its own.
const previousReleaseVersion = "v0.1.0"

// repoRoot is the repository's top directory.
// previousRelease builds the plugin of the commit scripts/upgrade/from
// names, once: bin/upgrade/<commit>/ keeps it. It returns the commit and
// the binary's path, or skips when the commit is not in this clone (a
// failure with CONNECT_UPGRADE=1, as make test and make upgrade set).
func previousRelease(t *testing.T) (string, string) {
	t.Helper()
	root := repoRoot()
	b, err := os.ReadFile(filepath.Join(root, "scripts", "upgrade", "from"))
	if err != nil {
		t.Fatal(err)
	}
	commit := strings.TrimSpace(string(b))
	bin := filepath.Join(root, "bin", "upgrade", commit, vaultdev.PluginName)
	if _, err := os.Stat(bin); err == nil {
		return commit, bin
	}
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", commit+"^{commit}").CombinedOutput(); err != nil {
		if os.Getenv("CONNECT_UPGRADE") == "1" {
			t.Fatalf("the previous release %s is not in this clone: %v %s", commit, err, out)
		}
		t.Skipf("the previous release %s is not in this clone (fetch it, or CONNECT_UPGRADE=1 to fail)", commit)
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", fmt.Sprintf("git -C %q archive %s | tar -x -C %q", root, commit, src))
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v %s", commit, err, out)
	}
	start := time.Now()
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", bin+".tmp", "./cmd/"+vaultdev.PluginName)
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v %s", commit, err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built the previous release %s in %v", commit, time.Since(start).Round(time.Second))
	return commit, bin
}

// upgradeNode is a Vault node whose plugin directory holds both versions:
// this tree's build under the plugin's own name and the previous release
// beside it; both are registered as "connect" with their versions, and the
// mount upgrade/ runs A.
type upgradeNode struct {
	*vaultdev.RaftServer
	a, b string // versions
}

// startUpgradeNode starts Vault with the given start function (Raft or
// file storage) on a plugin directory with both builds, registers the
// previous release as A and mounts it at upgrade/.
func startUpgradeNode(t *testing.T, start func(bin, pluginDir, dir string) (*vaultdev.RaftServer, error)) *upgradeNode {
	t.Helper()
	commit, prevBin := previousRelease(t)
	pluginDir := t.TempDir()
	copyFile(t, filepath.Join(os.Getenv("PLUGIN_DIR"), vaultdev.PluginName), filepath.Join(pluginDir, vaultdev.PluginName))
	prevName := vaultdev.PluginName + "-" + commit
	copyFile(t, prevBin, filepath.Join(pluginDir, prevName))
	node, err := start(os.Getenv("VAULT_BIN"), pluginDir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Kill)
	u := &upgradeNode{RaftServer: node, a: previousReleaseVersion}
	// The start registered this tree's build without -version: Vault took
	// the version the binary reports.
	u.b = u.registeredVersion(t, vaultdev.PluginName)
	if err := node.RegisterPlugin(prevName, "connect", "-version="+u.a); err != nil {
		t.Fatal(err)
	}
	u.cli(t, "secrets", "enable", "-path=upgrade", "-plugin-version="+u.a, "connect")
	u.assertRunning(t, u.a)
	return u
}

// registeredVersion is the version Vault registered the binary file under.
func (u *upgradeNode) registeredVersion(t *testing.T, file string) string {
	t.Helper()
	var list struct {
		Details []struct {
			Type    string `json:"type"`
			Name    string `json:"name"`
			Version string `json:"version"`
			Builtin bool   `json:"builtin"`
		} `json:"details"`
	}
	if err := json.Unmarshal([]byte(u.cli(t, "plugin", "list", "-format=json", "secret")), &list); err != nil {
		t.Fatal(err)
	}
	plugins := list.Details
	for _, p := range plugins {
		if p.Type != "secret" || p.Name != "connect" || p.Builtin || p.Version == "" {
			continue
		}
		command := strings.TrimSpace(u.cli(t, "plugin", "info", "-field=command", "-version="+p.Version, "secret", "connect"))
		if filepath.Base(command) == file {
			return p.Version
		}
	}
	t.Fatalf("%s is registered under no version: %v", file, plugins)
	return ""
}

func (u *upgradeNode) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := u.CLI(nil, args...)
	if err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// use tunes upgrade/ to version and reloads it, as an upgrade does.
func (u *upgradeNode) use(t *testing.T, version string) {
	t.Helper()
	u.cli(t, "secrets", "tune", "-plugin-version="+version, "upgrade/")
	u.cli(t, "plugin", "reload", "-type=secret", "-plugin=connect")
	u.assertRunning(t, version)
}

// assertRunning checks that upgrade/ runs version (vault secrets list
// -detailed shows it; a reload restarts the plugin in the background).
func (u *upgradeNode) assertRunning(t *testing.T, version string) {
	t.Helper()
	var running string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var mounts map[string]struct {
			Running string `json:"running_plugin_version"`
		}
		json.Unmarshal([]byte(u.cli(t, "secrets", "list", "-detailed", "-format=json")), &mounts)
		if running = mounts["upgrade/"].Running; running == version {
			// A read through the mount: the plugin answers again.
			if _, err := u.Client.Logical().Read("upgrade/config"); err == nil {
				return
			}
		}
	}
	t.Fatalf("upgrade/ runs %q, want %q", running, version)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// read reads a path of upgrade/ and returns its data, or the error text.
func (u *upgradeNode) read(path string) (map[string]any, error) {
	sec, err := u.Client.Logical().Read("upgrade/" + path)
	if err != nil {
		return nil, err
	}
	if sec == nil {
		return nil, fmt.Errorf("%s: not found", path)
	}
	return sec.Data, nil
}

func (u *upgradeNode) write(t *testing.T, path string, body map[string]any) map[string]any {
	t.Helper()
	sec, err := u.Client.Logical().Write("upgrade/"+path, body)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if sec == nil {
		return nil
	}
	return sec.Data
}

// hookCounter is a webhook receiver that refuses deliveries (503) until
// it is opened, and counts each event id's attempts and acceptances.
type hookCounter struct {
	*httptest.Server
	mu       sync.Mutex
	open     bool
	seen     map[string]bool // ids attempted while closed
	accepted map[string]bool
}

func newHookCounter(t *testing.T) *hookCounter {
	h := &hookCounter{seen: map[string]bool{}, accepted: map[string]bool{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		id := r.Header.Get("webhook-id")
		h.mu.Lock()
		defer h.mu.Unlock()
		if !h.open {
			h.seen[id] = true
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.accepted[id] = true
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookCounter) setOpen() { h.mu.Lock(); h.open = true; h.mu.Unlock() }

// undelivered are the ids refused while closed and not accepted since.
func (h *hookCounter) undelivered() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for id := range h.seen {
		if !h.accepted[id] {
			out = append(out, id)
		}
	}
	return out
}

// upgradeFixture is what A wrote: the paths to read back and the
// connections whose tokens refresh.
type upgradeFixture struct {
	as          *oauthtest.Server
	hooks       *hookCounter
	paths       []string // read back and compared
	refreshable []string // connections/<integration>/<id>
	pendingURL  string   // the pending authorization's URL at the provider
	connectURL  string   // the connect session's page
}

// writeEverything writes, with the version upgrade/ runs, an entry of every
// kind: an integration and a connection of each auth mode with metadata,
// config and tags, an operator-defined provider, the mount's config, a
// pending authorization, a connect session and a webhook receiver with
// events pending.
func writeEverything(t *testing.T, u *upgradeNode) *upgradeFixture {
	t.Helper()
	f := &upgradeFixture{as: newAuthServer(t), hooks: newHookCounter(t)}
	as := f.as
	callback := u.Addr + "/v1/upgrade/oauth/callback"
	as.RegisterRedirectURI(callback)
	u.write(t, "config", map[string]any{"redirect_url": callback, "public_url": u.Addr + "/v1/upgrade",
		"allowed_return_urls": "https://app.example.test/done"})
	u.write(t, "providers/acme-api", map[string]any{"auth_mode": "API_KEY", "api_base_url": as.URL,
		"request_headers": map[string]any{"X-Api-Key": "${apiKey}"}})

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	as.SetApp("31337", &key.PublicKey)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	notePEM(keyPEM)

	integrations := map[string]map[string]any{
		"oauth": {"auth_mode": "OAUTH2", "client_id": as.ClientID, "client_secret": as.ClientSecret, "scopes": "repo",
			"auth_url": as.AuthURL(), "token_url": as.TokenURL(), "revocation_url": as.RevocationURL()},
		"machine": {"auth_mode": "OAUTH2_CC", "client_id": as.ClientID, "client_secret": as.ClientSecret, "token_url": as.TokenURL()},
		"app":     {"provider": "github-app", "app_id": "31337", "private_key": string(keyPEM), "api_base_url": as.URL},
		"apikey":  {"provider": "acme-api"},
		"basic":   {"auth_mode": "BASIC", "api_base_url": as.URL},
		"custom":  {"auth_mode": "CUSTOM", "api_base_url": as.URL},
	}
	for name, body := range integrations {
		u.write(t, "integrations/"+name, body)
		f.paths = append(f.paths, "integrations/"+name)
	}
	connections := map[string]map[string]any{
		"oauth/org:1":   {"access_token": "at-upgrade-" + rand.Text(), "refresh_token": as.IssueRefreshToken(), "expires_in": 7200},
		"machine/t1":    {},
		"app/inst":      {"installation_id": "555"},
		"apikey/acme":   {"api_key": "sk_upgrade_" + rand.Text()},
		"basic/acme":    {"username": "bot", "password": "pw-" + rand.Text()},
		"custom/acme":   {"credentials": map[string]any{"key_id": "k1", "secret": "s-" + rand.Text()}},
		"oauth/ann@x.y": {"access_token": "at-upgrade-" + rand.Text(), "refresh_token": as.IssueRefreshToken(), "expires_in": 7200},
	}
	for name, body := range connections {
		body["tags"] = map[string]any{"organization_id": "org:" + name, "end_user_id": "42"}
		u.write(t, "connections/"+name, body)
		u.write(t, "connections/"+name+"/metadata", map[string]any{"customer": "Acme " + name, "plan": "pro", "seats": 12})
		if !strings.HasPrefix(name, "app/") {
			u.write(t, "connections/"+name+"/config", map[string]any{"region": "eu", "tier": 3})
		}
		for _, sub := range []string{"", "/raw", "/metadata", "/config"} {
			f.paths = append(f.paths, "connections/"+name+sub)
		}
		if !strings.HasPrefix(name, "apikey/") && !strings.HasPrefix(name, "basic/") && !strings.HasPrefix(name, "custom/") {
			f.refreshable = append(f.refreshable, "connections/"+name)
		}
	}
	f.paths = append(f.paths, "config", "providers/acme-api")

	f.pendingURL = u.write(t, "connections/oauth/pending/authorize", map[string]any{
		"tags": map[string]any{"end_user_id": "7"}})["authorization_url"].(string)
	session := u.write(t, "sessions", map[string]any{"connection_id": "sess-1", "integrations": "apikey",
		"tags": map[string]any{"end_user_id": "8"}, "metadata": map[string]any{"plan": "trial"}, "ttl": "2h"})
	f.connectURL = session["connect_url"].(string)
	f.paths = append(f.paths, "sessions/"+session["session_id"].(string))

	// The receiver last, then changes of credentials (connection.updated,
	// connection.created) whose events it refuses until after the upgrade,
	// so that their retries are due soon.
	u.write(t, "webhooks/app", map[string]any{"url": f.hooks.URL})
	f.paths = append(f.paths, "webhooks/app")
	u.write(t, "connections/apikey/acme", map[string]any{"api_key": "sk_upgrade_" + rand.Text()})
	u.write(t, "connections/basic/acme", map[string]any{"password": "pw-" + rand.Text()})
	u.write(t, "connections/apikey/evented", map[string]any{"api_key": "sk_upgrade_" + rand.Text()})
	f.paths = append(f.paths, "connections/apikey/evented")
	waitUntil(t, "the receiver refused the pending events", func() bool { return len(f.hooks.undelivered()) >= 3 })
	return f
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// readBack reads every path and every list of upgrade/.
func (u *upgradeNode) readBack(t *testing.T, f *upgradeFixture) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, p := range f.paths {
		data, err := u.read(p)
		if err != nil {
			out[p] = "error: " + err.Error()
			continue
		}
		out[p] = data
	}
	for _, list := range []string{"integrations", "connections/oauth", "connections/apikey", "webhooks", "providers"} {
		sec, err := u.Client.Logical().List("upgrade/" + list)
		if err != nil || sec == nil {
			out["LIST "+list] = fmt.Sprintf("error: %v", err)
			continue
		}
		out["LIST "+list] = sec.Data["keys"]
	}
	return out
}

// deliveryFigures are a webhook receiver's figures of its delivery
// activity, which goes on across the upgrade: checked on their own (they
// carry over and only grow), not compared.
var deliveryFigures = []string{"pending", "delivered", "failed", "dead", "last_attempt_at", "last_delivery_at", "last_status", "last_error"}

// volatile are the fields that differ between two reads by one version
// with nothing written between them (figures relative to the time of the
// read), and the receiver's delivery figures. They are left out of the
// comparisons across versions.
func volatile(first, second map[string]any) map[string]bool {
	out := map[string]bool{}
	for _, k := range deliveryFigures {
		out["webhooks/app "+k] = true
	}
	for p, v := range first {
		a, okA := v.(map[string]any)
		b, okB := second[p].(map[string]any)
		if !okA || !okB {
			continue
		}
		for k := range a {
			if !reflect.DeepEqual(a[k], b[k]) {
				out[p+" "+k] = true
			}
		}
	}
	return out
}

// sameReads compares what was read before with what is read after, field
// by field of what before held (a later version may add fields), skipping
// the volatile ones. downgrade compares only the fields both reads hold (an
// earlier version does not show a later one's fields) and accepts, in place
// of a read, the clear refusal of an entry of a newer format.
func sameReads(t *testing.T, what string, before, after map[string]any, skip map[string]bool, downgrade bool) int {
	t.Helper()
	compared := 0
	paths := make([]string, 0, len(before))
	for p := range before {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if s, isErr := after[p].(string); isErr && strings.HasPrefix(s, "error:") {
			if downgrade && strings.Contains(s, "newer version of the plugin") {
				continue
			}
			t.Errorf("%s: %s: %s", what, p, s)
			continue
		}
		a, isMap := before[p].(map[string]any)
		if !isMap {
			if !reflect.DeepEqual(before[p], after[p]) {
				t.Errorf("%s: %s: %v, then %v", what, p, before[p], after[p])
			}
			compared++
			continue
		}
		b, _ := after[p].(map[string]any)
		for k, v := range a {
			_, shown := b[k]
			if skip[p+" "+k] || downgrade && !shown || !shown && notShownSince(p, a, k) {
				continue
			}
			if !reflect.DeepEqual(v, b[k]) {
				t.Errorf("%s: %s field %s: %v, then %v", what, p, k, v, b[k])
			}
		}
		compared++
	}
	return compared
}

// oauthEndpointFields are the endpoint settings only OAuth modes use.
var oauthEndpointFields = map[string]bool{
	"auth_url": true, "token_url": true, "revocation_url": true, "scopes": true, "auth_params": true,
	"token_params": true, "refresh_url": true, "refresh_params": true, "auth_style": true, "scope_separator": true,
	"pkce": true, "token_request_format": true, "callback_config": true, "token_response_config": true,
	"redirect_uri_value": true,
}

// notShownSince reports whether field k of the read at p is one a later
// version no longer shows by design, so its absence is no loss: since
// v0.2.0 a provider's read shows only its auth mode's fields (an API-key
// provider no longer shows OAuth's, which it never used).
func notShownSince(p string, before map[string]any, k string) bool {
	mode, _ := before["auth_mode"].(string)
	return strings.HasPrefix(p, "providers/") && mode != "OAUTH2" && mode != "OAUTH2_CC" && oauthEndpointFields[k]
}

// TestUpgradeFromPreviousReleaseOnRaft: on integrated storage, the previous
// release (A) writes every kind of entry; the mount is tuned to this build
// (B) and reloaded: every entry reads the same, tokens refresh, the
// pending events are delivered, the pending authorization completes and
// the connect session's page opens. Then back to A: every entry, B's
// writes too, reads as B read it (or is refused as of a newer format).
func TestUpgradeFromPreviousReleaseOnRaft(t *testing.T) {
	vaultFor(t)
	reliabilityCase(t, "upgrade on integrated storage from the previous release to this build (tune -plugin-version, plugin reload), and back",
		"every entry reads the same, tokens refresh, pending events are delivered, the pending authorization completes; back on the previous release everything reads as before")
	u := startUpgradeNode(t, vaultdev.StartRaft)
	t.Logf("A = %s, B = %s", u.a, u.b)
	f := writeEverything(t, u)

	first := u.readBack(t, f)
	time.Sleep(1100 * time.Millisecond)
	skip := volatile(first, u.readBack(t, f))
	t.Logf("left out of the comparison (vary between two reads by A, or delivery figures): %v", sortedKeys(skip))
	pending := len(f.hooks.undelivered())

	u.use(t, u.b)
	f.hooks.setOpen()
	upgraded := u.readBack(t, f)
	read := sameReads(t, "A → B", first, upgraded, skip, false)

	// Tokens refresh: each OAuth, client-credentials and App connection
	// gets a new token the provider accepts.
	for _, c := range f.refreshable {
		data := u.write(t, c+"/refresh", nil)
		tok, _ := data["access_token"].(string)
		was, _ := upgraded[c].(map[string]any)
		if tok == "" || tok == was["access_token"] || !f.as.AccessTokenValid(tok) {
			t.Errorf("%s: the refresh with B gave %q", c, tok)
		}
	}
	// The pending authorization completes through B's callback.
	if final, status, body := browse(t, f.pendingURL); status != http.StatusOK || !strings.Contains(body, "Connected") {
		t.Errorf("the pending authorization's callback with B: %d %s %s", status, final, tail(body, 500))
	}
	pend, err := u.read("connections/oauth/pending")
	if err != nil || !f.as.AccessTokenValid(fmt.Sprint(pend["access_token"])) || fmt.Sprint(pend["tags"]) != "map[end_user_id:7]" {
		t.Errorf("the connection the pending authorization completes: %v %v", pend, err)
	}
	// The connect session's page opens with B.
	if status, page := getPage(t, f.connectURL); status != http.StatusOK || !strings.Contains(page, "apikey") {
		t.Errorf("connect page with B: %d %s", status, tail(page, 300))
	}
	// The events A could not deliver are delivered by B.
	waitUntil(t, "B delivered the events A left pending", func() bool { return len(f.hooks.undelivered()) == 0 })
	// The receiver's figures carried over: its failures under A are still
	// counted, the deliveries are added, nothing is left pending.
	failedOnA := number(first["webhooks/app"], "failed")
	waitUntil(t, "the receiver's figures show the deliveries", func() bool {
		hook, err := u.read("webhooks/app")
		return err == nil && number(hook, "pending") == 0 && number(hook, "delivered") >= int64(pending) && number(hook, "failed") >= failedOnA
	})
	if failedOnA == 0 {
		t.Errorf("A counted no failed attempt for %d refused events", pending)
	}
	t.Logf("upgrade figures: %d paths written and read back (%d compared), %d connections refreshed, %d pending events delivered",
		len(f.paths), read, len(f.refreshable), pending)

	// B → A: the entries B wrote (refreshed connections, the authorized
	// one) read on A as on B.
	f.paths = append(f.paths, "connections/oauth/pending")
	onB := u.readBack(t, f)
	time.Sleep(1100 * time.Millisecond)
	skipB := volatile(onB, u.readBack(t, f))
	u.use(t, u.a)
	back := u.readBack(t, f)
	sameReads(t, "B → A", onB, back, skipB, true)
	// What A showed before the upgrade, it shows still.
	for p, v := range first {
		was, _ := v.(map[string]any)
		now, _ := back[p].(map[string]any)
		for k := range was {
			if _, ok := now[k]; !ok && now != nil {
				t.Errorf("B → A: %s no longer shows %s", p, k)
			}
		}
	}
	for _, c := range f.refreshable {
		if data, err := u.read(c); err == nil && !f.as.AccessTokenValid(fmt.Sprint(data["access_token"])) {
			t.Errorf("%s on A after B: token %v not valid", c, data["access_token"])
		}
	}
	// And forward again: what A read back B still reads.
	u.use(t, u.b)
	sameReads(t, "A → B again", back, u.readBack(t, f), skipB, false)
}

// TestUpgradeRollsForwardPreviousReleasesWAL: the previous release holds
// a rotated refresh token that storage refused to save (the connection's
// file is immutable, as e2e/wal_test.go injects it; only file storage can
// refuse one key), so only its WAL record has it. After the upgrade to this
// build and the storage's recovery, this build stores the record's token,
// which the provider accepts.
func TestUpgradeRollsForwardPreviousReleasesWAL(t *testing.T) {
	vaultFor(t)
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr is needed to make a storage file refuse writes")
	}
	reliabilityCase(t, "the previous release leaves a rotated refresh token only in its WAL record (the connection's file refuses writes); upgrade to this build, storage recovers",
		"this build stores the WAL record's refresh token, which the provider accepts")
	var dir string
	u := startUpgradeNode(t, func(bin, pluginDir, d string) (*vaultdev.RaftServer, error) {
		dir = d
		return vaultdev.StartFile(bin, pluginDir, d)
	})
	as := newAuthServer(t)
	u.write(t, "integrations/wal", map[string]any{"auth_mode": "OAUTH2", "client_id": as.ClientID,
		"client_secret": as.ClientSecret, "auth_url": as.AuthURL(), "token_url": as.TokenURL()})
	spent := as.IssueRefreshToken()
	u.write(t, "connections/wal/c1", map[string]any{"access_token": "at-initial", "refresh_token": spent, "expires_in": 3600})
	u.write(t, "connections/wal/c1/metadata", map[string]any{"customer": "Acme"})

	file := storedFile(t, dir, "connections/wal/_c1")
	chattr(t, "+i", file)
	healed := false
	t.Cleanup(func() {
		if !healed {
			chattr(t, "-i", file)
		}
	})
	u.write(t, "connections/wal/c1/refresh", nil)
	sec, err := u.read("connections/wal/c1/raw")
	if err != nil {
		t.Fatal(err)
	}
	latest, _ := sec["refresh_token"].(string)
	if !as.RefreshTokenValid(latest) || as.RefreshTokenValid(spent) || len(walFiles(t, dir)) == 0 {
		t.Fatal("the refresh with A did not leave its rotated token in a WAL record")
	}

	// B starts while storage still refuses the connection: it keeps the
	// record. Once storage recovers, its next start stores it.
	u.use(t, u.b)
	if len(walFiles(t, dir)) == 0 {
		t.Fatal("B dropped A's WAL record while the connection could not be saved")
	}
	chattr(t, "-i", file)
	healed = true
	u.cli(t, "plugin", "reload", "-type=secret", "-plugin=connect")
	var stored string
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if sec, err := u.read("connections/wal/c1/raw"); err == nil {
			if stored, _ = sec["refresh_token"].(string); stored == latest {
				break
			}
		}
	}
	if stored != latest {
		t.Fatalf("B did not store the refresh token of A's WAL record")
	}
	if meta, err := u.read("connections/wal/c1/metadata"); err != nil || meta["customer"] != "Acme" {
		t.Fatalf("metadata after the roll-forward: %v %v", meta, err)
	}
	if data := u.write(t, "connections/wal/c1/refresh", nil); !as.AccessTokenValid(fmt.Sprint(data["access_token"])) {
		t.Fatal("the stored refresh token does not work")
	}
	if n := len(walFiles(t, dir)); n != 0 {
		t.Fatalf("%d WAL records left after the roll-forward", n)
	}
}

// number is a numeric field of a read's data, 0 when absent.
func number(data any, field string) int64 {
	m, _ := data.(map[string]any)
	n, _ := m[field].(json.Number)
	v, _ := n.Int64()
	return v
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
