// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"os"
	"testing"
)

// TestAPIReferenceIsCurrent fails when docs/api.md no longer matches the
// path definitions: run `go generate ./...`.
func TestAPIReferenceIsCurrent(t *testing.T) {
	committed, err := os.ReadFile("docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != APIReference() {
		t.Fatal("docs/api.md is out of date: run `go generate ./...`")
	}
}

// TestProviderCatalogReferenceIsCurrent fails when docs/providers.md no
// longer matches provider_catalog.json: run `go generate ./...`.
func TestProviderCatalogReferenceIsCurrent(t *testing.T) {
	committed, err := os.ReadFile("docs/providers.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != ProviderCatalogReference() {
		t.Fatal("docs/providers.md is out of date: run `go generate ./...`")
	}
}
