// SPDX-License-Identifier: MPL-2.0

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
	providerPrefix    = "providers/"    // operator-defined providers
	statePrefix       = "oauth_states/" // pending authorizations, keyed by hashed state
	// stateIndexPrefix maps <integration>/<connection_id> to the hash of
	// the connection's one pending authorization.
	stateIndexPrefix = "oauth_state_index/"
	// stateExpiryPrefix holds an entry per pending authorization under the
	// minute it expires by, which the sweep lists (oauth_state_sweep.go).
	stateExpiryPrefix = "oauth_state_expiry/"
)

// configEntry is the mount-wide configuration.
type configEntry struct {
	// RefreshMargin is how long before expiry a token counts as due for
	// refresh.
	RefreshMargin time.Duration `json:"refresh_margin"`
	// RedirectURL is the external address of this mount's oauth/callback,
	// registered with every provider as the OAuth redirect URI.
	RedirectURL string `json:"redirect_url,omitempty"`
	// StateTTL is how long an authorization may take, from authorize to
	// callback.
	StateTTL time.Duration `json:"state_ttl"`
	// AllowedReturnURLs are the URL prefixes a browser may be sent back to
	// after the callback.
	AllowedReturnURLs []string `json:"allowed_return_urls,omitempty"`
	// RefreshConcurrency bounds the background refreshes in flight.
	RefreshConcurrency int `json:"refresh_concurrency"`
	// IdleRefreshInterval is how long a connection whose refresh token
	// expires may go unrefreshed, so that its refresh token stays alive.
	IdleRefreshInterval time.Duration `json:"idle_refresh_interval"`
	// MaxRefreshFailures is how many failed refreshes in a row make a
	// connection "exhausted": the background stops trying.
	MaxRefreshFailures int `json:"max_refresh_failures"`
	// MaxPendingAuthorizations caps the pending authorizations (states
	// between authorize and callback) of each integration.
	MaxPendingAuthorizations int `json:"max_pending_authorizations"`
	// PublicURL is this mount's external address, e.g.
	// https://vault.example.com/v1/connect: where connect sessions' pages
	// are. Empty: derived from RedirectURL.
	PublicURL string `json:"public_url,omitempty"`
	// MaxSessions caps the mount's connect sessions.
	MaxSessions int `json:"max_sessions"`
}

const (
	defaultRefreshMargin       = 15 * time.Minute
	defaultStateTTL            = 10 * time.Minute
	defaultRefreshConcurrency  = 8
	defaultIdleRefreshInterval = 24 * time.Hour
	defaultMaxRefreshFailures  = 4
	// defaultMaxPendingAuthorizations is far above the customers that
	// start an authorization within one state_ttl, and small enough that
	// the states (each up to two 64 KiB documents) cannot fill storage.
	defaultMaxPendingAuthorizations = 10000
	// maxMaxPendingAuthorizations bounds what the limit may be set to.
	maxMaxPendingAuthorizations = 1000000
	// defaultMaxSessions bounds the connect sessions of a mount, each up to
	// two 64 KiB documents, kept until they expire (at most a day).
	defaultMaxSessions = 10000
)

func defaultConfig() *configEntry {
	return &configEntry{
		RefreshMargin:            defaultRefreshMargin,
		StateTTL:                 defaultStateTTL,
		RefreshConcurrency:       defaultRefreshConcurrency,
		IdleRefreshInterval:      defaultIdleRefreshInterval,
		MaxRefreshFailures:       defaultMaxRefreshFailures,
		MaxPendingAuthorizations: defaultMaxPendingAuthorizations,
		MaxSessions:              defaultMaxSessions,
	}
}

// endpointSettings say where and how to get tokens from an API. Providers
// and integrations both have them; an integration's non-empty ones override
// its provider's. Embedded, they are stored as fields of the entry itself.
type endpointSettings struct {
	AuthURL       string            `json:"auth_url,omitempty"`
	TokenURL      string            `json:"token_url,omitempty"`
	RevocationURL string            `json:"revocation_url,omitempty"`
	Scopes        []string          `json:"scopes,omitempty"`
	AuthParams    map[string]string `json:"auth_params,omitempty"`
	TokenParams   map[string]string `json:"token_params,omitempty"`
	AuthStyle     string            `json:"auth_style,omitempty"`
	// TokenResponseConfig maps connection config keys to token response
	// members copied into them, e.g. instance_url for Salesforce.
	TokenResponseConfig map[string]string `json:"token_response_config,omitempty"`
	// APIBaseURL is the provider's API: where APP integrations get
	// installation tokens, and, for every mode, the base_url a connection
	// read returns.
	APIBaseURL string `json:"api_base_url,omitempty"`
	// ScopeSeparator joins scopes in requests; empty means a space (RFC
	// 6749). Some large APIs want a comma.
	ScopeSeparator string `json:"scope_separator,omitempty"`
	// RefreshURL is where refresh requests go; empty means TokenURL.
	RefreshURL string `json:"refresh_url,omitempty"`
	// RefreshParams are sent with refresh requests only, after TokenParams.
	RefreshParams map[string]string `json:"refresh_params,omitempty"`
	// PKCE says whether the authorization flow uses PKCE; nil inherits
	// (and means true at the end): some providers reject code_challenge.
	PKCE *bool `json:"pkce,omitempty"`
	// TokenRequestFormat is "form" (default) or "json": how token, refresh
	// and client-credentials requests encode their body.
	TokenRequestFormat string `json:"token_request_format,omitempty"`
	// RedirectURIValue is sent as redirect_uri in the authorization
	// request and the code exchange in place of the mount's redirect_url,
	// for providers that take a registered name there (eBay's RuName); the
	// provider still sends the browser to the mount's callback, which the
	// operator registered under that name.
	RedirectURIValue string `json:"redirect_uri_value,omitempty"`
	// CallbackConfig names query parameters of the provider's redirect to
	// oauth/callback copied into the connection's config (QuickBooks'
	// realmId).
	CallbackConfig []string `json:"callback_config,omitempty"`
	// ConnectionConfigSchema describes the connection_config keys the
	// provider needs (the placeholders of its URLs among them); writes of a
	// connection's config are checked against it.
	ConnectionConfigSchema valueSchema `json:"connection_config_schema,omitempty"`
	// CredentialsSchema describes the credential fields of OAUTH2_CC
	// (client_id, client_secret: the connection's own client), API_KEY
	// (apiKey), BASIC (username, password) and CUSTOM connections.
	CredentialsSchema valueSchema `json:"credentials_schema,omitempty"`
	// RequestHeaders, with APIBaseURL, say how a client uses a connection:
	// header name → template (see internal/headertemplate). Connection reads
	// return them rendered.
	RequestHeaders map[string]string `json:"request_headers,omitempty"`
	// AllowedHosts are the hosts a connection's config may point the URLs
	// at, beyond their literal hosts: names or *.<domain> patterns. A URL
	// whose host is wholly a placeholder needs them (see egress.go).
	AllowedHosts []string `json:"allowed_hosts,omitempty"`
}

// usesPKCE is the effective pkce setting.
func (es endpointSettings) usesPKCE() bool {
	return es.PKCE == nil || *es.PKCE
}

// integrationEntry is one external API and the way to authenticate to it.
type integrationEntry struct {
	Name         string   `json:"name"`
	AuthMode     authMode `json:"auth_mode"`
	ClientID     string   `json:"client_id,omitempty"`
	ClientSecret string   `json:"client_secret,omitempty"`
	endpointSettings
	// AllowedScopes are scopes authorize may request besides Scopes.
	AllowedScopes []string `json:"allowed_scopes,omitempty"`
	// Provider names a catalog entry whose settings fill the fields left
	// empty here.
	Provider string `json:"provider,omitempty"`
	// DisablePKCE is how earlier versions stored pkce=false; an entry that
	// has it is read as PKCE false.
	DisablePKCE bool `json:"disable_pkce,omitempty"`
	// APP (GitHub-App style) settings.
	AppID      string    `json:"app_id,omitempty"`
	PrivateKey string    `json:"private_key,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// providerEntry describes how to talk to one external API: the catalog's
// built-in entries and operators' own use the same fields as integrations.
type providerEntry struct {
	Name     string   `json:"name"`
	AuthMode authMode `json:"auth_mode"`
	endpointSettings
	// TokensExpire says whether the provider's access tokens expire (and so
	// whether connections need refreshing at all).
	TokensExpire bool   `json:"tokens_expire"`
	Docs         string `json:"docs,omitempty"`
	// Checked is the day (YYYY-MM-DD) a built-in entry was last checked
	// against the provider's own documentation at Docs.
	Checked string `json:"checked,omitempty"`
}

// oauthStateEntry is one authorization in flight, stored under the SHA-256
// of its state so that storage never holds a usable state value.
type oauthStateEntry struct {
	Integration  string   `json:"integration"`
	ConnectionID string   `json:"connection_id"`
	Verifier     string   `json:"verifier,omitempty"` // PKCE code verifier
	RedirectURL  string   `json:"redirect_url"`
	Scopes       []string `json:"scopes,omitempty"`
	// ConnectionConfig replaces the connection's config when
	// ReplaceConnectionConfig is set, as authorize was given one; otherwise
	// the connection keeps the config it has when the callback stores it.
	ConnectionConfig        map[string]any `json:"connection_config,omitempty"`
	ReplaceConnectionConfig bool           `json:"replace_connection_config,omitempty"`
	// Reauthorization: the connection existed at authorize; if it is gone
	// at the callback, it was deleted meanwhile and is not re-created.
	Reauthorization bool `json:"reauthorization,omitempty"`
	// IntegrationCreatedAt tells the integration authorized against from
	// one deleted and re-created under the same name meanwhile.
	IntegrationCreatedAt time.Time `json:"integration_created_at"`
	// Metadata replaces the connection's metadata when ReplaceMetadata is
	// set; otherwise the connection keeps its own.
	Metadata        map[string]any `json:"metadata,omitempty"`
	ReplaceMetadata bool           `json:"replace_metadata,omitempty"`
	ReturnURL       string         `json:"return_url,omitempty"`
	ExpiresAt       time.Time      `json:"expires_at"`
	// SessionHash names the connect session that started the
	// authorization: the callback checks it is still usable, marks it
	// connected and shows the page's success with its return_url.
	SessionHash string `json:"session_hash,omitempty"`
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

	// OAUTH2_CC: the connection's own OAuth client, for providers whose
	// customers each create an API client and hand over its id and
	// secret. Empty: the integration's client applies. The secret is
	// write-only, like the integration's.
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`

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
	// Tags are the caller's labels for the connection (end_user_id,
	// organization_id, …): shown on reads, filterable on LIST, carried by
	// every lifecycle event. Never secret.
	Tags             map[string]string `json:"tags,omitempty"`
	ConnectionConfig map[string]any    `json:"connection_config"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
	LastRefreshedAt  time.Time         `json:"last_refreshed_at,omitempty"`

	// Refresh state, for connections whose tokens the engine renews.
	RefreshStatus    refreshStatus `json:"refresh_status,omitempty"`
	RefreshFailures  int           `json:"refresh_failures,omitempty"`
	LastRefreshError string        `json:"last_refresh_error,omitempty"`
	// NextRefreshAt is when the background refreshes the token next; zero
	// when it will not (no expiry, no refresh token, exhausted).
	NextRefreshAt time.Time `json:"next_refresh_at,omitempty"`

	// InstallationID is the APP installation the connection's tokens are
	// minted for. Only a connection write (the operator's path) sets it:
	// whoever may edit connection_config must not be able to pick another
	// customer's installation.
	InstallationID string `json:"installation_id,omitempty"`

	// RawTokenResponseNote says what of the last token response was not
	// kept (members over the size cap), so that a raw read does not pass a
	// trimmed response off as the provider's whole answer.
	RawTokenResponseNote string `json:"raw_token_response_note,omitempty"`
	// CredentialsIssuedAt is when the credentials were last set, by a
	// provider or a caller; the store stamps it, later on every change. A
	// WAL record applies only over credentials older than its own, so a
	// stale record can never undo newer ones.
	CredentialsIssuedAt time.Time `json:"credentials_issued_at,omitempty"`
	// IntegrationCreatedAt tells the integration the connection was created
	// in from one deleted and re-created under the same name since: a
	// retried save or a WAL record of the old one must not land in the new
	// one. Zero in entries of earlier versions.
	IntegrationCreatedAt time.Time `json:"integration_created_at,omitempty"`

	// issued marks credentials a provider has just issued, which the store
	// keeps even when saving them fails. Never stored.
	issued bool
}

// upgrade brings an entry stored by an earlier version up to date as it is
// loaded: APP connections kept their installation in connection_config.
// The config key is dropped whatever else holds: when the entry has its own
// installation the key is a stray one (earlier versions let the config
// sub-path, which customers may write, add it), and it must not decide
// which installation the connection mints for.
func (c *connectionEntry) upgrade() {
	if c.AuthMode != authModeApp || c.ConnectionConfig == nil {
		return
	}
	v, ok := c.ConnectionConfig[appInstallationKey]
	if !ok {
		return
	}
	if c.InstallationID == "" && v != nil {
		c.InstallationID = fmt.Sprint(v)
	}
	delete(c.ConnectionConfig, appInstallationKey)
}

// appInstallationKey is the connection field naming an APP connection's
// installation, which its connection_config may not hold.
const appInstallationKey = "installation_id"

// clone copies an entry deeply enough that the copy's maps and slices can be
// changed without touching the original (which the cache may hold).
func (c *connectionEntry) clone() *connectionEntry {
	cp := *c
	cp.Credentials.Scopes = append([]string(nil), c.Credentials.Scopes...)
	cp.Credentials.Custom = cloneMap(c.Credentials.Custom)
	cp.RawTokenResponse = cloneMap(c.RawTokenResponse)
	cp.Metadata = cloneMap(c.Metadata)
	cp.ConnectionConfig = cloneMap(c.ConnectionConfig)
	return &cp
}

func cloneMap[V any](m map[string]V) map[string]V {
	if m == nil {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
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

// getStoredProvider returns an operator-defined provider, nil when none.
func getStoredProvider(ctx context.Context, s logical.Storage, name string) (*providerEntry, error) {
	var p providerEntry
	found, err := getJSON(ctx, s, providerPrefix+name, &p)
	if err != nil || !found {
		return nil, err
	}
	return &p, nil
}

func putStoredProvider(ctx context.Context, s logical.Storage, p *providerEntry) error {
	return putJSON(ctx, s, providerPrefix+p.Name, p)
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
