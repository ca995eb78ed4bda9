// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"maps"
	"slices"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// validateEgress checks, at provider and integration writes, allowed_hosts
// and that no URL template lets a connection's config choose an arbitrary
// host (see provider.ValidateTemplateEgress).
func (es EndpointSettings) validateEgress() error {
	if err := provider.ValidateHostPatterns("allowed_hosts", es.AllowedHosts); err != nil {
		return err
	}
	for _, u := range es.urlFields() {
		if err := provider.ValidateTemplateEgress(u.field, u.tmpl, es.AllowedHosts); err != nil {
			return err
		}
	}
	return nil
}

// HostKeys lists, sorted, the connection_config keys that choose the host
// of one of the URLs: a change to their schema changes where secrets go.
func (es EndpointSettings) HostKeys() []string {
	set := map[string]bool{}
	for _, u := range es.urlFields() {
		for _, k := range provider.HostPlaceholders(u.tmpl) {
			set[k] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}
