// SPDX-License-Identifier: MPL-2.0

// Command gen-docs writes the generated pages of docs/ (the API reference
// and the provider catalog) from the code; `go generate ./...` runs it.
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
