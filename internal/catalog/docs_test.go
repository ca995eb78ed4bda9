// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "write docs/providers.md from the catalog instead of checking it")

// TestProvidersDocIsCurrent fails when docs/providers.md no longer matches
// the catalog: run `go generate ./...`, which runs it with -update.
func TestProvidersDocIsCurrent(t *testing.T) {
	file := filepath.Join("..", "..", providersDocFile)
	want := providersReference()
	if *update {
		if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	committed, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != want {
		t.Errorf("%s is out of date: run `go generate ./...`", providersDocFile)
	}
}

// The table has a row per provider, and its cells say which keys are
// optional and which have defaults.
func TestProvidersReferenceRows(t *testing.T) {
	doc := providersReference()
	for _, name := range Names() {
		if !strings.Contains(doc, "| `"+name+"` | "+string(builtin[name].AuthMode)+" |") {
			t.Errorf("no row for %s", name)
		}
	}
	cell := schemaKeysCell(ValueSchema{"region": {DefaultValue: "eu"}, "port": {Optional: true}, "subdomain": {}})
	if want := "`port` *optional*, `region` (default `eu`), `subdomain`"; cell != want {
		t.Errorf("schemaKeysCell = %q, want %q", cell, want)
	}
	if got := docsHost("https://developer.example.com/docs/oauth"); got != "developer.example.com" {
		t.Errorf("docsHost = %q", got)
	}
}
