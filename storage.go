// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/hashicorp/vault/sdk/logical"
)

// Storage layout (connections/ is with the connection entry, in entries.go).
// Every entry is JSON; Vault's barrier encrypts it, and the
// integration and connection prefixes are also listed as SealWrapStorage so
// that HSM-backed Vaults wrap them with the seal as well.
const (
	configStoragePath = "config"
	integrationPrefix = "integrations/"
	providerPrefix    = "providers/"    // operator-defined providers
	statePrefix       = "oauth_states/" // pending authorizations, keyed by hashed state
	// stateIndexPrefix maps <integration>/<connection_id> to the hash of
	// the connection's one pending authorization.
	stateIndexPrefix = "oauth_state_index/"
	// stateExpiryPrefix holds an entry per pending authorization under the
	// minute it expires by, which the sweep lists (pending_authorization_sweep.go).
	stateExpiryPrefix = "oauth_state_expiry/"
)

func getConfig(ctx context.Context, s logical.Storage) (*configEntry, error) {
	cfg := defaultConfig()
	found, err := getJSON(ctx, s, configStoragePath, cfg)
	if err != nil || !found {
		return defaultConfig(), err
	}
	return cfg, nil
}

func putConfig(ctx context.Context, s logical.Storage, cfg *configEntry) error {
	return putJSON(ctx, s, configStoragePath, cfg)
}

func integrationKey(name string) string { return integrationPrefix + name }

// getIntegration returns nil, nil when the integration does not exist.
func getIntegration(ctx context.Context, s logical.Storage, name string) (*integrationEntry, error) {
	var in integrationEntry
	found, err := getJSON(ctx, s, integrationKey(name), &in)
	if err != nil || !found {
		return nil, err
	}
	in.upgrade()
	return &in, nil
}

func putIntegration(ctx context.Context, s logical.Storage, in *integrationEntry) error {
	return putJSON(ctx, s, integrationKey(in.Name), in)
}

func deleteIntegration(ctx context.Context, s logical.Storage, name string) error {
	return s.Delete(ctx, integrationKey(name))
}

func listIntegrations(ctx context.Context, s logical.Storage) ([]string, error) {
	return listSorted(ctx, s, integrationPrefix)
}

// storedProvider is an operator-defined provider as stored: the catalog's
// type with the entry's format beside its fields.
type storedProvider struct {
	catalog.Provider
	entryFormat
}

// getStoredProvider returns an operator-defined provider, nil when none.
func getStoredProvider(ctx context.Context, s logical.Storage, name string) (*catalog.Provider, error) {
	var p storedProvider
	found, err := getJSON(ctx, s, providerPrefix+name, &p)
	if err != nil || !found {
		return nil, err
	}
	upgradeStoredProvider(&p.Provider)
	return &p.Provider, nil
}

func putStoredProvider(ctx context.Context, s logical.Storage, p *catalog.Provider) error {
	return putJSON(ctx, s, providerPrefix+p.Name, &storedProvider{Provider: *p})
}

func deleteStoredProvider(ctx context.Context, s logical.Storage, name string) error {
	return s.Delete(ctx, providerPrefix+name)
}

func listStoredProviders(ctx context.Context, s logical.Storage) ([]string, error) {
	return listSorted(ctx, s, providerPrefix)
}

// listSorted lists a storage prefix in a stable order, which paging needs.
func listSorted(ctx context.Context, s logical.Storage, prefix string) ([]string, error) {
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing %q: %w", prefix, err)
	}
	sort.Strings(keys)
	return keys, nil
}

// pageAfter returns the sorted keys strictly after `after`, at most limit
// of them.
func pageAfter(sorted []string, after string, limit int) []string {
	start := 0
	if after != "" {
		start = sort.Search(len(sorted), func(i int) bool { return sorted[i] > after })
	}
	out := sorted[start:]
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func getJSON(ctx context.Context, s logical.Storage, key string, out any) (bool, error) {
	entry, err := s.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("reading %q: %w", key, err)
	}
	if entry == nil {
		return false, nil
	}
	if err := entry.DecodeJSON(out); err != nil {
		if ferr := newerFormatOf(entry.Value); ferr != nil {
			return false, fmt.Errorf("reading %q: %w", key, ferr)
		}
		return false, fmt.Errorf("decoding %q: %w", key, err)
	}
	if f, ok := out.(formatted); ok {
		if err := f.checkFormat(); err != nil {
			return false, fmt.Errorf("reading %q: %w", key, err)
		}
	}
	return true, nil
}

// newerFormatOf is the errNewerFormat of an encoded entry that did not
// decode because a newer format changed its shape, nil for any other.
func newerFormatOf(value []byte) error {
	var f struct {
		FormatVersion int `json:"format_version"`
	}
	if json.Unmarshal(value, &f) != nil {
		return nil
	}
	return newerFormat(f.FormatVersion)
}

func putJSON(ctx context.Context, s logical.Storage, key string, v any) error {
	entry, err := logical.StorageEntryJSON(key, v)
	if err != nil {
		return fmt.Errorf("encoding %q: %w", key, err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing %q: %w", key, err)
	}
	return nil
}
