// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"sort"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

// lookupProvider returns the operator's provider of that name, else the
// built-in one, else nil.
func lookupProvider(ctx context.Context, s logical.Storage, name string) (*catalog.Provider, error) {
	p, err := getStoredProvider(ctx, s, name)
	if err != nil || p != nil {
		return p, err
	}
	return catalog.Lookup(name), nil
}

// providerNames lists built-in and operator-defined providers, sorted.
func providerNames(ctx context.Context, s logical.Storage) ([]string, error) {
	stored, err := listStoredProviders(ctx, s)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var names []string
	for _, n := range stored {
		seen[n] = true
		names = append(names, n)
	}
	for _, n := range catalog.Names() {
		if !seen[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// effectiveIntegration returns in with its provider's settings in the fields
// it leaves empty. An integration without a provider is returned as is.
func effectiveIntegration(ctx context.Context, s logical.Storage, in *integrationEntry) (*integrationEntry, error) {
	if in.Provider == "" {
		return in, nil
	}
	p, err := lookupProvider(ctx, s, in.Provider)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("provider %q of integration %q no longer exists", in.Provider, in.Name)
	}
	return mergeProvider(in, p), nil
}

func mergeProvider(in *integrationEntry, p *catalog.Provider) *integrationEntry {
	out := *in
	if out.AuthMode == "" {
		out.AuthMode = p.AuthMode
	}
	out.EndpointSettings = p.EndpointSettings.OverriddenBy(in.EndpointSettings)
	return &out
}
