// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"fmt"
	"sort"
	"strings"
)

// providersDocFile is the page providersReference writes, from the
// module's root. docs_test.go keeps it current; `go generate ./...` runs
// that test with -update.
//
//go:generate go test -count=1 -run ^TestProvidersDocIsCurrent$ . -args -update
const providersDocFile = "docs/providers.md"

// providersReference is the Markdown table of the built-in catalog,
// generated into docs/providers.md.
func providersReference() string {
	var b strings.Builder
	b.WriteString("# Built-in providers\n\n")
	b.WriteString("<!-- Generated from provider_catalog.json by `go generate ./...`; do not edit. -->\n\n")
	fmt.Fprintf(&b, "The engine ships %d providers (%s). Use one with `vault write connect/integrations/<name> provider=<provider> ...`; "+
		"`vault read connect/providers/<provider>` shows the redirect URL to register, the required config keys and the default scopes. "+
		"Config keys go in each connection's `connection_config` (*optional* keys may be left out; keys with a default get it). "+
		"Each entry's endpoints come from the page linked in the Documentation column, read on the day in the last.\n\n", len(builtin), catalogModeCounts())
	b.WriteString("| Provider | Auth mode | Config keys | Credential fields | Documentation | Checked |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, name := range Names() {
		p := builtin[name]
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | [%s](%s) | %s |\n", name, p.AuthMode,
			schemaKeysCell(p.ConnectionConfigSchema), schemaKeysCell(p.CredentialsSchema), docsHost(p.Docs), p.Docs, p.Checked)
	}
	return b.String()
}

// catalogModeCounts says how many providers use each auth mode, most first.
func catalogModeCounts() string {
	counts := map[AuthMode]int{}
	for _, p := range builtin {
		counts[p.AuthMode]++
	}
	modes := make([]AuthMode, 0, len(counts))
	for m := range counts {
		modes = append(modes, m)
	}
	sort.Slice(modes, func(i, j int) bool {
		if counts[modes[i]] != counts[modes[j]] {
			return counts[modes[i]] > counts[modes[j]]
		}
		return modes[i] < modes[j]
	})
	parts := make([]string, len(modes))
	for i, m := range modes {
		parts[i] = fmt.Sprintf("%d %s", counts[m], m)
	}
	return strings.Join(parts, ", ")
}

// schemaKeysCell lists a schema's keys for a table cell, marking optional
// ones and showing defaults.
func schemaKeysCell(s ValueSchema) string {
	if len(s) == 0 {
		return "—"
	}
	keys := s.Keys()
	parts := make([]string, len(keys))
	for i, k := range keys {
		f := s[k]
		parts[i] = "`" + k + "`"
		switch {
		case f.DefaultValue != nil:
			parts[i] += fmt.Sprintf(" (default `%v`)", f.DefaultValue)
		case f.Optional:
			parts[i] += " *optional*"
		}
	}
	return strings.Join(parts, ", ")
}

// docsHost is the link text of a docs URL: its host.
func docsHost(raw string) string {
	host := strings.TrimPrefix(raw, "https://")
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	return host
}
