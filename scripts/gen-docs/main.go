// SPDX-License-Identifier: MPL-2.0

// Command gen-docs writes the API reference, docs/api.md, from the path
// definitions; `go generate ./...` runs it. docs/providers.md is written
// by internal/catalog's own go:generate.
package main

import (
	"log"
	"os"

	connect "github.com/connect-vault/vault-plugin-secrets-connect"
)

func main() {
	for file, content := range connect.GeneratedDocs() {
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
