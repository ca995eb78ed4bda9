package connect

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Storage layout. Every entry is JSON; Vault's barrier encrypts it, and the
// integration and connection prefixes are also listed as SealWrapStorage so
// that HSM-backed Vaults wrap them with the seal as well.
const (
	configStoragePath = "config"
	integrationPrefix = "integrations/"
	connectionPrefix  = "connections/"
)

// configEntry is the mount-wide configuration.
type configEntry struct {
	// RefreshMargin is how long before expiry a token counts as due for
	// refresh.
	RefreshMargin time.Duration `json:"refresh_margin"`
}

const defaultRefreshMargin = 15 * time.Minute

func defaultConfig() *configEntry {
	return &configEntry{RefreshMargin: defaultRefreshMargin}
}

// integrationEntry is one external API and the way to authenticate to it.
type integrationEntry struct {
	Name         string            `json:"name"`
	AuthMode     authMode          `json:"auth_mode"`
	ClientID     string            `json:"client_id,omitempty"`
	ClientSecret string            `json:"client_secret,omitempty"`
	Scopes       []string          `json:"scopes,omitempty"`
	AuthURL      string            `json:"auth_url,omitempty"`
	TokenURL     string            `json:"token_url,omitempty"`
	AuthParams   map[string]string `json:"auth_params,omitempty"`
	TokenParams  map[string]string `json:"token_params,omitempty"`
	AuthStyle    string            `json:"auth_style,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
}

// credentials holds whichever secret material the integration's auth mode
// uses; the other fields stay empty.
type credentials struct {
	// OAUTH2 and OAUTH2_CC.
	AccessToken  string    `json:"access_token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitempty"` // zero: the token does not expire
	Scopes       []string  `json:"scopes,omitempty"`

	// API_KEY.
	APIKey string `json:"api_key,omitempty"`

	// BASIC.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	// CUSTOM.
	Custom map[string]string `json:"custom,omitempty"`
}

// connectionEntry is one customer's credentials for one integration.
type connectionEntry struct {
	Integration  string      `json:"integration"`
	ConnectionID string      `json:"connection_id"`
	AuthMode     authMode    `json:"auth_mode"`
	Credentials  credentials `json:"credentials"`
	// RawTokenResponse is the provider's last token response as it sent it,
	// kept because providers put useful extras there (instance URLs, ids).
	RawTokenResponse map[string]any `json:"raw_token_response,omitempty"`
	Metadata         map[string]any `json:"metadata"`
	ConnectionConfig map[string]any `json:"connection_config"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
	LastRefreshedAt  time.Time      `json:"last_refreshed_at,omitempty"`
}

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

func connectionsPrefix(integration string) string {
	return connectionPrefix + integration + "/"
}

func connectionKey(integration, id string) string {
	return connectionsPrefix(integration) + id
}

// getConnection returns nil, nil when the connection does not exist.
func getConnection(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, error) {
	var c connectionEntry
	found, err := getJSON(ctx, s, connectionKey(integration, id), &c)
	if err != nil || !found {
		return nil, err
	}
	return &c, nil
}

func putConnection(ctx context.Context, s logical.Storage, c *connectionEntry) error {
	return putJSON(ctx, s, connectionKey(c.Integration, c.ConnectionID), c)
}

func deleteConnection(ctx context.Context, s logical.Storage, integration, id string) error {
	return s.Delete(ctx, connectionKey(integration, id))
}

// listConnections returns the connection ids of one integration, sorted.
func listConnections(ctx context.Context, s logical.Storage, integration string) ([]string, error) {
	return listSorted(ctx, s, connectionsPrefix(integration))
}

func listSorted(ctx context.Context, s logical.Storage, prefix string) ([]string, error) {
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing %q: %w", prefix, err)
	}
	// Storage backends differ on ordering; paging needs a stable one.
	sort.Strings(keys)
	return keys, nil
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
		return false, fmt.Errorf("decoding %q: %w", key, err)
	}
	return true, nil
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
