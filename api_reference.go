// SPDX-License-Identifier: MPL-2.0

package connect

import "github.com/connect-vault/vault-plugin-secrets-connect/internal/apidoc"

//go:generate go run ./scripts/gen-docs

// GeneratedDocs maps each generated page of docs/ to its content.
func GeneratedDocs() map[string]string {
	return map[string]string{
		"docs/api.md": APIReference(),
	}
}

// APIReference is the Markdown reference of every path, generated from the
// path definitions into docs/api.md.
func APIReference() string {
	return apidoc.Render("connect", "API reference",
		"Every path of the engine, mounted at `connect/`. Fields marked *path* are part of the URL; "+
			"*query* fields go in the query string (and `vault list`/`vault read` take them as arguments); the rest are the JSON body.",
		newBackend().Paths)
}
