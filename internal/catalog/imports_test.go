// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"os/exec"
	"strings"
	"testing"
)

// The catalog is the layer below Vault's request handling: neither it nor
// anything it imports may use Vault's sdk/framework or sdk/logical, or the
// plugin's root package. go list -deps reads the whole import graph, so an
// indirect use through another package fails too.
func TestCatalogImportsNoVaultSDK(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	self := "github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	if len(deps) == 0 || deps[len(deps)-1] != self {
		t.Fatalf("go list -deps did not list the catalog last: %v", deps)
	}
	forbidden := []string{
		"github.com/hashicorp/vault/sdk/framework",
		"github.com/hashicorp/vault/sdk/logical",
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("internal/catalog depends on %s", dep)
			}
		}
		if dep == "github.com/connect-vault/vault-plugin-secrets-connect" {
			t.Errorf("internal/catalog depends on the plugin's root package")
		}
	}
}
