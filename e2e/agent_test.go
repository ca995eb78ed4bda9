// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAgentRendersRefreshedTokens runs examples/agent/agent.hcl with the
// real Vault Agent: AppRole auto-auth, two templates; a forced refresh
// makes the agent rewrite both files with the new token.
func TestAgentRendersRefreshedTokens(t *testing.T) {
	s := vaultFor(t)
	as := oauthIntegrations(t, s, "agent")
	s.cli(nil, "auth", "enable", "approle")
	rt := as.IssueRefreshToken()
	s.mustCLI(t, "write", "connect/connections/agent-gh/acme", "access_token=first-token", "refresh_token="+rt)

	work := t.TempDir()
	policy := filepath.Join(work, "policy.hcl")
	os.WriteFile(policy, []byte(`path "connect/connections/agent-gh/acme" { capabilities = ["read"] }`), 0o600)
	s.mustCLI(t, "policy", "write", "agent-reader", policy)
	s.mustCLI(t, "write", "auth/approle/role/agent", "token_policies=agent-reader", "token_ttl=10m")
	roleID := strings.TrimSpace(s.mustCLI(t, "read", "-field=role_id", "auth/approle/role/agent/role-id"))
	secretID := strings.TrimSpace(s.mustCLI(t, "write", "-f", "-field=secret_id", "auth/approle/role/agent/secret-id"))
	os.WriteFile(filepath.Join(work, "role-id"), []byte(roleID), 0o600)
	os.WriteFile(filepath.Join(work, "secret-id"), []byte(secretID), 0o600)

	// The example, with this test's files, integration and a short interval.
	_, file, _, _ := runtime.Caller(0)
	example, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "examples", "agent", "agent.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	config := strings.NewReplacer(
		"/etc/vault-agent/", work+"/",
		"/run/app/", work+"/",
		"connect/connections/github/acme", "connect/connections/agent-gh/acme",
		`static_secret_render_interval = "1m"`, `static_secret_render_interval = "1s"`,
	).Replace(string(example))
	configFile := filepath.Join(work, "agent.hcl")
	os.WriteFile(configFile, []byte(config), 0o600)

	var logs bytes.Buffer
	cmd := exec.Command(s.Bin, "agent", "-config="+configFile)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+s.addr, "VAULT_TOKEN=")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	})

	tokenFile, headerFile := filepath.Join(work, "github-token"), filepath.Join(work, "github-auth-header")
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; agent log:\n%s", what, tail(logs.String(), 3000))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	read := func(path string) string { b, _ := os.ReadFile(path); return string(b) }
	waitFor("the first render", func() bool {
		return read(tokenFile) == "first-token" && read(headerFile) == "Authorization: Bearer first-token"
	})

	forced := jsonOut(t, s, "write", "-f", "connect/connections/agent-gh/acme/refresh")["data"].(map[string]any)["access_token"].(string)
	if !as.AccessTokenValid(forced) {
		t.Fatal("forced refresh did not issue a token")
	}
	waitFor("the re-render after the refresh", func() bool {
		return read(tokenFile) == forced && read(headerFile) == "Authorization: Bearer "+forced
	})
	if info, _ := os.Stat(tokenFile); info.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", info.Mode().Perm())
	}
}
