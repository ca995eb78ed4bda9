// Package e2e runs the plugin inside a real Vault server: the binary built
// by scripts/build-vault.sh, started in dev mode on a free loopback port,
// with the plugin registered from bin/plugins and mounted at connect/.
//
// The tests run when CONNECT_E2E=1 (make test sets it); then a missing
// Vault or plugin binary is a failure, not a skip.
package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

const pluginName = "vault-plugin-secrets-connect"

// vaultServer is the running dev server shared by the tests.
type vaultServer struct {
	bin      string
	addr     string
	auditLog string
	client   *api.Client
}

var (
	srv     *vaultServer
	skipMsg string
)

func TestMain(m *testing.M) {
	if os.Getenv("CONNECT_E2E") != "1" {
		skipMsg = "end-to-end tests run with CONNECT_E2E=1 (make test)"
		os.Exit(m.Run())
	}
	s, stop, err := startVault()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting Vault:", err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	stop()
	os.Exit(code)
}

// vaultFor returns the server, or skips when end-to-end tests are off.
func vaultFor(t *testing.T) *vaultServer {
	t.Helper()
	if srv == nil {
		t.Skip(skipMsg)
	}
	return srv
}

func startVault() (*vaultServer, func(), error) {
	bin, pluginDir := os.Getenv("VAULT_BIN"), os.Getenv("PLUGIN_DIR")
	if bin == "" || pluginDir == "" {
		return nil, nil, fmt.Errorf("VAULT_BIN and PLUGIN_DIR must be set")
	}
	pluginPath := filepath.Join(pluginDir, pluginName)
	for _, p := range []string{bin, pluginPath} {
		if _, err := os.Stat(p); err != nil {
			return nil, nil, fmt.Errorf("%s: %w (run make test, which builds it)", p, err)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	work, err := os.MkdirTemp("", "connect-e2e-")
	if err != nil {
		return nil, nil, err
	}
	logPath := filepath.Join(work, "vault.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id=root",
		"-dev-listen-address="+addr, "-dev-plugin-dir="+pluginDir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that the plugin processes Vault starts go
	// down with it even if Vault does not stop them itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		logFile.Close()
		os.RemoveAll(work)
	}
	fail := func(err error) (*vaultServer, func(), error) {
		logText, _ := os.ReadFile(logPath)
		stop()
		return nil, nil, fmt.Errorf("%w\nvault log:\n%s", err, tail(string(logText), 4000))
	}

	cfg := api.DefaultConfig()
	cfg.Address = "http://" + addr
	client, err := api.NewClient(cfg)
	if err != nil {
		return fail(err)
	}
	client.SetToken("root")
	if err := waitHealthy(client); err != nil {
		return fail(err)
	}
	s := &vaultServer{bin: bin, addr: cfg.Address, auditLog: filepath.Join(work, "audit.log"), client: client}

	sum, err := fileSHA256(pluginPath)
	if err != nil {
		return fail(err)
	}
	steps := [][]string{
		// The file audit device sees every request and response; the
		// audit test checks it for plaintext secrets.
		{"audit", "enable", "file", "file_path=" + s.auditLog},
		{"plugin", "register", "-sha256=" + sum, "-command=" + pluginName, "secret", "connect"},
		{"secrets", "enable", "-path=connect", "connect"},
	}
	for _, args := range steps {
		if out, err := s.cli(nil, args...); err != nil {
			return fail(fmt.Errorf("vault %s: %v\n%s", strings.Join(args, " "), err, out))
		}
	}
	return s, stop, nil
}

func waitHealthy(c *api.Client) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if h, err := c.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("vault did not become healthy in 30s")
}

// cli runs the vault CLI against the server, as an operator would.
func (s *vaultServer) cli(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+s.addr, "VAULT_TOKEN=root", "VAULT_FORMAT=")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustCLI runs the CLI and fails the test if it exits non-zero.
func (s *vaultServer) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.cli(nil, args...)
	if err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// failCLI runs the CLI, expects it to fail and returns its output.
func (s *vaultServer) failCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.cli(nil, args...)
	if err == nil {
		t.Fatalf("vault %s succeeded, want failure:\n%s", strings.Join(args, " "), out)
	}
	return out
}

// raw sends one HTTP request to Vault and returns the status and body, for
// checks of the exact status code.
func (s *vaultServer) raw(t *testing.T, method, path string, body []byte, contentType string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.addr+"/v1/"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", "root")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
