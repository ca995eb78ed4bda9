// SPDX-License-Identifier: MPL-2.0

// Package vaultdev runs a real Vault dev server for the end-to-end tests and
// the benchmarks: the binary from scripts/build-vault.sh on a free loopback
// port, with a plugin directory, a file audit device and the connect plugin
// registered and mounted at connect/.
package vaultdev

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// PluginName is the plugin binary's file name in the plugin directory.
const PluginName = "vault-plugin-secrets-connect"

// Server is a running dev server.
type Server struct {
	Bin       string
	PluginDir string
	Addr      string // http://127.0.0.1:port
	AuditLog  string
	Client    *api.Client
	// Token is the root token the CLI runs with.
	Token string

	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	work    string
}

// Start starts Vault with a file audit device and mounts the connect plugin
// at connect/.
func Start(bin, pluginDir string) (*Server, error) {
	return StartWith(bin, pluginDir, true)
}

// StartWith is Start with the audit device optional: the benchmarks measure
// the plugin, not the audit log's HMACs and file writes.
func StartWith(bin, pluginDir string, audit bool) (*Server, error) {
	for _, p := range []string{bin, filepath.Join(pluginDir, PluginName)} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %w (make test builds it)", p, err)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "connect-vault-")
	if err != nil {
		return nil, err
	}
	s := &Server{Bin: bin, PluginDir: pluginDir, Addr: fmt.Sprintf("http://127.0.0.1:%d", port), Token: "root",
		AuditLog: filepath.Join(work, "audit.log"), logPath: filepath.Join(work, "vault.log"), work: work}
	if s.logFile, err = os.Create(s.logPath); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "server", "-dev", "-dev-root-token-id=root",
		"-dev-listen-address="+strings.TrimPrefix(s.Addr, "http://"), "-dev-plugin-dir="+pluginDir)
	s.cmd.Stdout, s.cmd.Stderr = s.logFile, s.logFile
	// Its own process group, so that the plugin processes Vault starts go
	// down with it even if Vault does not stop them itself.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	if err := s.setUp(audit); err != nil {
		logText, _ := os.ReadFile(s.logPath)
		s.Stop()
		return nil, fmt.Errorf("%w\nvault log:\n%s", err, tail(string(logText), 4000))
	}
	return s, nil
}

func (s *Server) setUp(audit bool) error {
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	client, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	client.SetToken("root")
	s.Client = client
	if err := waitHealthy(client); err != nil {
		return err
	}
	if err := s.RegisterPlugin(PluginName, "connect"); err != nil {
		return err
	}
	steps := [][]string{{"secrets", "enable", "-path=connect", "connect"}, append([]string{"secrets", "tune"}, append(MountHeaderFlags, "connect/")...)}
	if audit {
		// The file audit device sees every request and response.
		steps = append(steps, []string{"audit", "enable", "file", "file_path=" + s.AuditLog})
	}
	for _, args := range steps {
		if out, err := s.CLI(nil, args...); err != nil {
			return fmt.Errorf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// RegisterPlugin registers the secrets plugin binary file as name, with
// extra flags such as -version=v1.2.3.
func (s *Server) RegisterPlugin(file, name string, flags ...string) error {
	sum, err := FileSHA256(filepath.Join(s.PluginDir, file))
	if err != nil {
		return err
	}
	args := append([]string{"plugin", "register", "-sha256=" + sum, "-command=" + file}, flags...)
	if out, err := s.CLI(nil, append(args, "secret", name)...); err != nil {
		return fmt.Errorf("registering %s: %v\n%s", file, err, out)
	}
	return nil
}

// Stop stops Vault and every process it started.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
		}
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
	os.RemoveAll(s.work)
}

// LogText is everything Vault and the plugins it started have logged so far.
func (s *Server) LogText() (string, error) {
	b, err := os.ReadFile(s.logPath)
	return string(b), err
}

// CLI runs the vault CLI against the server with the root token, as an
// operator would.
func (s *Server) CLI(stdin []byte, args ...string) (string, error) {
	return s.CLIAs(s.Token, stdin, args...)
}

// CLIAs runs the vault CLI with another token ("" for none).
func (s *Server) CLIAs(token string, stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(s.Bin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+s.Addr, "VAULT_TOKEN="+token, "VAULT_FORMAT=")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FileSHA256 is the hex SHA-256 of a file, as plugin registration wants.
func FileSHA256(path string) (string, error) {
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

// MountHeaderFlags are the tune flags that let Vault pass the headers the
// connect page and the OAuth callback use: the browser's Origin and
// Cookie to the plugin, its Location and Set-Cookie back (see
// docs/deployment.md). Without them the page refuses every post.
var MountHeaderFlags = []string{
	"-passthrough-request-headers=Cookie", "-passthrough-request-headers=Origin",
	"-allowed-response-headers=Set-Cookie", "-allowed-response-headers=Location",
}
