// SPDX-License-Identifier: MPL-2.0

// Package e2e runs the plugin inside a real Vault server: the binary built
// by scripts/build-vault.sh, started in dev mode on a free loopback port,
// with the plugin registered from bin/plugins and mounted at connect/.
//
// The tests run when CONNECT_E2E=1 (make test sets it); then a missing
// Vault or plugin binary is a failure, not a skip.
package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// vaultServer is the running dev server shared by the tests.
type vaultServer struct {
	*vaultdev.Server
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
		code := m.Run()
		stopBrowser()
		os.Exit(code)
	}
	bin, pluginDir := os.Getenv("VAULT_BIN"), os.Getenv("PLUGIN_DIR")
	if bin == "" || pluginDir == "" {
		fmt.Fprintln(os.Stderr, "e2e: VAULT_BIN and PLUGIN_DIR must be set")
		os.Exit(1)
	}
	s, err := vaultdev.Start(bin, pluginDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting Vault:", err)
		os.Exit(1)
	}
	srv = &vaultServer{Server: s, addr: s.Addr, auditLog: s.AuditLog, client: s.Client}
	code := m.Run()
	if code == 0 && os.Getenv("CONNECT_LEAK_CHECK") != "0" {
		for _, p := range checkLeaks(srv) {
			fmt.Fprintln(os.Stderr, "leak check:", p)
			code = 1
		}
	}
	stopBrowser()
	s.Stop()
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

// cli runs the vault CLI against the server.
func (s *vaultServer) cli(stdin []byte, args ...string) (string, error) {
	return s.CLI(stdin, args...)
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
	return s.request(t, "root", method, path, body, contentType)
}

// rawAs is raw with another token than root, and a JSON body if any.
func (s *vaultServer) rawAs(t *testing.T, token, method, path string, body []byte) (int, string) {
	t.Helper()
	contentType := ""
	if body != nil {
		contentType = "application/json"
	}
	return s.request(t, token, method, path, body, contentType)
}

func (s *vaultServer) request(t *testing.T, token, method, path string, body []byte, contentType string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.addr+"/v1/"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
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

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
