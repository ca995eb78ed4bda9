// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"os"
	"testing"
)

// TestGeneratedDocsAreCurrent fails when a generated page no longer
// matches what it is generated from: run `go generate ./...`.
func TestGeneratedDocsAreCurrent(t *testing.T) {
	for file, want := range GeneratedDocs() {
		committed, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if string(committed) != want {
			t.Errorf("%s is out of date: run `go generate ./...`", file)
		}
	}
}
