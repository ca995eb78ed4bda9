// SPDX-License-Identifier: MPL-2.0

// Command gen-api-docs writes the engine's API reference (docs/api.md) from
// its path definitions; `go generate ./...` runs it.
package main

import (
	"flag"
	"log"
	"os"

	connect "github.com/connect-vault/vault-plugin-secrets-connect"
)

func main() {
	out := flag.String("o", "docs/api.md", "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, []byte(connect.APIReference()), 0o644); err != nil {
		log.Fatal(err)
	}
}
