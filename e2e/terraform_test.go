// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// tofu runs OpenTofu in dir with the environment the example expects.
func tofu(t *testing.T, env []string, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Getenv("TOFU_BIN"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("tofu %s: %v", strings.Join(args, " "), err)
	return "", -1
}

// TestTerraformExample applies examples/terraform with a real OpenTofu and
// the real Terraform Vault provider, checks the result with the vault CLI,
// checks that a second plan is empty, and destroys it.
func TestTerraformExample(t *testing.T) {
	s := vaultFor(t)
	if os.Getenv("TOFU_BIN") == "" || os.Getenv("TF_PROVIDER_DIR") == "" {
		if os.Getenv("CONNECT_TF_E2E") == "1" {
			t.Fatal("TOFU_BIN and TF_PROVIDER_DIR must be set (make tf-e2e builds them)")
		}
		t.Skip("the Terraform test runs with TOFU_BIN and TF_PROVIDER_DIR (make test, make tf-e2e)")
	}
	_, file, _, _ := runtime.Caller(0)
	example := filepath.Join(filepath.Dir(file), "..", "examples", "terraform")
	work := t.TempDir()
	for _, name := range []string{"main.tf", "variables.tf", "outputs.tf"} {
		b, err := os.ReadFile(filepath.Join(example, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(work, name), b, 0o644)
	}
	// The provider comes from a local directory, without init or registry.
	cliConfig := filepath.Join(work, "tofu.rc")
	providerDir, _ := filepath.Abs(os.Getenv("TF_PROVIDER_DIR"))
	os.WriteFile(cliConfig, []byte(fmt.Sprintf(`provider_installation {
  dev_overrides {
    "hashicorp/vault" = %q
  }
  direct {}
}
`, providerDir)), 0o644)
	sum, err := vaultdev.FileSHA256(filepath.Join(os.Getenv("PLUGIN_DIR"), vaultdev.PluginName))
	if err != nil {
		t.Fatal(err)
	}
	// The version the binary reports, as the dev server's connect/ runs it.
	version := runningVersion(t, s, "connect/")
	env := []string{"TF_CLI_CONFIG_FILE=" + cliConfig, "TF_IN_AUTOMATION=1", "VAULT_ADDR=" + s.addr, "VAULT_TOKEN=root",
		"TF_VAR_plugin_sha256=" + sum, "TF_VAR_plugin_version=" + version, "TF_VAR_plugin_name=connect-tf", "TF_VAR_mount_path=connect-tf",
		"TF_VAR_acme_stripe_api_key=sk_tf_e2e_key"}

	start := time.Now()
	if out, code := tofu(t, env, work, "apply", "-auto-approve", "-input=false", "-no-color"); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, tail(out, 4000))
	}
	t.Logf("apply took %v", time.Since(start))
	// The versioned plugin, and the mount pinned to it.
	if got := runningVersion(t, s, "connect-tf/"); got != version {
		t.Fatalf("connect-tf/ runs version %q, want %q", got, version)
	}
	var mount struct {
		Data struct {
			PluginVersion string `json:"plugin_version"`
		} `json:"data"`
	}
	json.Unmarshal([]byte(s.mustCLI(t, "read", "-format=json", "sys/mounts/connect-tf")), &mount)
	if mount.Data.PluginVersion != version {
		t.Fatalf("connect-tf/ is pinned to %q, want %q", mount.Data.PluginVersion, version)
	}
	if got := strings.TrimSpace(s.mustCLI(t, "read", "-field=api_key", "connect-tf/connections/stripe/acme")); got != "sk_tf_e2e_key" {
		t.Fatalf("connection api_key = %q", got)
	}
	in := data(t, s, "connect-tf/integrations/github")
	if in["client_secret_set"] != true || in["provider"] != "github" || in["auth_url"] != "https://github.com/login/oauth/authorize" {
		t.Fatalf("integration = %v", in)
	}
	// The mount passes the headers the connect page and the callback need.
	tune := data(t, s, "sys/mounts/connect-tf/tune")
	if h := fmt.Sprint(tune["passthrough_request_headers"], tune["allowed_response_headers"]); !strings.Contains(h, "Cookie") ||
		!strings.Contains(h, "Origin") || !strings.Contains(h, "Set-Cookie") || !strings.Contains(h, "Location") {
		t.Fatalf("mount tune: %v", tune)
	}
	if got := data(t, s, "connect-tf/config")["refresh_margin"]; fmt.Sprint(got) != "900" {
		t.Fatalf("config refresh_margin = %v", got)
	}
	if out, _ := tofu(t, env, work, "output", "-raw", "acme_plan"); strings.TrimSpace(out) != "enterprise" {
		t.Fatalf("data source output: %s", out)
	}
	// A second plan has nothing to do: no perpetual diff from the
	// write-only client_secret or the fields reads add.
	if out, code := tofu(t, env, work, "plan", "-detailed-exitcode", "-input=false", "-no-color"); code != 0 {
		t.Fatalf("second plan: exit %d\n%s", code, tail(out, 4000))
	}
	if out, code := tofu(t, env, work, "destroy", "-auto-approve", "-input=false", "-no-color"); code != 0 {
		t.Fatalf("destroy: exit %d\n%s", code, tail(out, 4000))
	}
	if out := s.mustCLI(t, "secrets", "list"); strings.Contains(out, "connect-tf/") {
		t.Fatalf("mount left after destroy:\n%s", out)
	}
	if out, err := s.cli(nil, "plugin", "info", "-version="+version, "secret", "connect-tf"); err == nil {
		t.Fatalf("plugin still registered after destroy:\n%s", out)
	}
}
