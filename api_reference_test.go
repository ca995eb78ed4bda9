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
