// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// The built-in catalog is embedded so that `provider=github` works on any
// Vault with no files to install. Operators add or override entries at
// providers/<name>; an integration names one with `provider` and its own
// non-empty fields win over the provider's.
//
//go:embed provider_catalog.json
var catalogJSON []byte

// builtin are the catalog's entries by name, checked once at start: an
// entry that does not validate is a bug in the plugin, not an operator's.
var builtin = mustLoadCatalog(catalogJSON)

// Provider describes how to talk to one external API: the catalog's
// built-in entries and operators' own use the same fields as integrations.
type Provider struct {
	Name     string   `json:"name"`
	AuthMode AuthMode `json:"auth_mode"`
	EndpointSettings
	// TokensExpire says whether the provider's access tokens expire (and so
	// whether connections need refreshing at all).
	TokensExpire bool   `json:"tokens_expire"`
	Docs         string `json:"docs,omitempty"`
	// Checked is the day (YYYY-MM-DD) a built-in entry was last checked
	// against the provider's own documentation at Docs.
	Checked string `json:"checked,omitempty"`
}

// mustLoadCatalog decodes and validates the embedded catalog, naming each
// entry after its key.
func mustLoadCatalog(b []byte) map[string]*Provider {
	var raw map[string]*Provider
	if err := json.Unmarshal(b, &raw); err != nil {
		panic(fmt.Sprintf("provider_catalog.json: %v", err))
	}
	for name, p := range raw {
		p.Name = name
		if err := p.Validate(); err != nil {
			panic(fmt.Sprintf("provider_catalog.json: %s: %v", name, err))
		}
	}
	return raw
}

// Lookup returns a copy of the built-in provider of that name, nil when
// there is none. The copy's maps and lists are the catalog's: read them,
// replace them, never change them in place.
func Lookup(name string) *Provider {
	p, ok := builtin[name]
	if !ok {
		return nil
	}
	cp := *p
	return &cp
}

// Names lists the built-in providers, sorted.
func Names() []string {
	return slices.Sorted(maps.Keys(builtin))
}

// Validate checks what the provider's auth mode needs of it: a known mode,
// and endpoint settings that are valid for it.
func (p *Provider) Validate() error {
	if _, err := ParseAuthMode(string(p.AuthMode)); err != nil {
		return err
	}
	return p.EndpointSettings.Validate(p.AuthMode)
}
