// SPDX-License-Identifier: MPL-2.0

// Command gen-provider-docs writes the table of the built-in provider catalog
// (docs/providers.md); `go generate ./...` runs it.
package main

import (
	"flag"
	"log"
	"os"

	connect "github.com/connect-vault/vault-plugin-secrets-connect"
)

func main() {
	out := flag.String("o", "docs/providers.md", "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, []byte(connect.ProviderCatalogReference()), 0o644); err != nil {
		log.Fatal(err)
	}
}
