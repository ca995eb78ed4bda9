// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// TestPluginReportsItsVersion: the plugin reports the version its build
// gave it. Registered without -version, Vault takes it from the binary;
// `vault plugin info` and `vault secrets list -detailed` show it; a
// registration under another version is refused as a mismatch; one with
// -version and -sha256, as docs/upgrading.md registers, mounts with
// -plugin-version and runs that version.
func TestPluginReportsItsVersion(t *testing.T) {
	s := vaultFor(t)
	semver := regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

	version := runningVersion(t, s, "connect/")
	if !semver.MatchString(version) {
		t.Fatalf("connect/ runs version %q: not a semantic version with a v", version)
	}
	if got := strings.TrimSpace(s.mustCLI(t, "plugin", "info", "-field=version", "-version="+version, "secret", "connect")); got != version {
		t.Fatalf("vault plugin info shows version %q, the mount runs %q", got, version)
	}

	sum, err := vaultdev.FileSHA256(s.PluginDir + "/" + vaultdev.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	out := s.failCLI(t, "plugin", "register", "-sha256="+sum, "-command="+vaultdev.PluginName, "-version=v9.9.9", "secret", "connect-versioned")
	if !strings.Contains(out, "did not match") || !strings.Contains(out, version) {
		t.Fatalf("registering under another version: %s", out)
	}

	s.mustCLI(t, "plugin", "register", "-sha256="+sum, "-command="+vaultdev.PluginName, "-version="+version, "secret", "connect-versioned")
	t.Cleanup(func() { s.cli(nil, "plugin", "deregister", "-version="+version, "secret", "connect-versioned") })
	s.mustCLI(t, "secrets", "enable", "-path=connect-versioned", "-plugin-version="+version, "connect-versioned")
	t.Cleanup(func() { s.cli(nil, "secrets", "disable", "connect-versioned") })
	if got := runningVersion(t, s, "connect-versioned/"); got != version {
		t.Fatalf("a mount pinned to %s runs %q", version, got)
	}
}

// runningVersion is the plugin version the mount at path runs, as `vault
// secrets list -detailed` shows it.
func runningVersion(t *testing.T, s *vaultServer, path string) string {
	t.Helper()
	var mounts map[string]struct {
		Running string `json:"running_plugin_version"`
	}
	if err := json.Unmarshal([]byte(s.mustCLI(t, "secrets", "list", "-detailed", "-format=json")), &mounts); err != nil {
		t.Fatal(err)
	}
	return mounts[path].Running
}
