// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/refresh"
)

// The base layer's entries: what the store keeps, and the rules of a
// connection entry that every layer reads.

// sameClient reports whether a and b have the same client of their own
// (or both none).
func sameClient(a, b *connectionEntry) bool {
	return a.Credentials.ClientID == b.Credentials.ClientID && a.Credentials.ClientSecret == b.Credentials.ClientSecret
}

// hasOwnClient reports whether c brings its own OAuth client: only
// OAUTH2_CC connections may, and one that has none uses the integration's.
// c may be nil.
func (c *connectionEntry) hasOwnClient() bool {
	return c != nil && c.AuthMode == catalog.OAuth2CC && c.Credentials.ClientID != ""
}

// storageFormat is the format of the entries this build writes; entries
// of 0.1.0 carry none (format 0) and read as format 0. Raise it when an
// entry's stored shape changes so that an older build would misread it,
// convert the older formats where the entry is read (connectionEntry's
// upgrade, or after checkFormat), and say so in docs/upgrading.md. A build
// refuses an entry of a later format than its own rather than misread it.
const storageFormat = 1

// formatVersion is the format a stored entry was written in. It always
// encodes as storageFormat: an entry is only ever written from this build's
// type, after being read (and upgraded) into it, whatever format it was
// read in.
type formatVersion int

// MarshalJSON writes this build's format.
func (formatVersion) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, storageFormat, 10), nil
}

// entryFormat, embedded in every stored entry, carries its format_version.
type entryFormat struct {
	FormatVersion formatVersion `json:"format_version"`
}

// checkFormat refuses an entry of a newer format than this build's, and
// otherwise forgets the format read: in memory every entry is of this
// build's format, as one just made is.
func (f *entryFormat) checkFormat() error {
	if err := newerFormat(int(f.FormatVersion)); err != nil {
		return err
	}
	f.FormatVersion = 0
	return nil
}

// newerFormat is the error for an entry of format, nil when this build
// reads it.
func newerFormat(format int) error {
	if format <= storageFormat {
		return nil
	}
	return fmt.Errorf("%w: the entry is of storage format %d, this version of the plugin reads formats up to %d; run the version that wrote it (docs/upgrading.md)",
		errNewerFormat, format, storageFormat)
}

// formatted is a stored entry with a format (entryFormat embedded).
type formatted interface{ checkFormat() error }

// configEntry is the mount-wide configuration.
type configEntry struct {
	entryFormat
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
	// MaxPendingEvents bounds each webhook receiver's deliveries waiting
	// in the event outbox.
	MaxPendingEvents int `json:"max_pending_events,omitempty"`
	// OAuthCompletion says who stores the connection of an authorization
	// started through authorize: the application (completionApplication,
	// the default, also when empty), after it has checked that the browser
	// that came back is its user's, or the callback itself
	// (completionCallback), which cannot tell whose browser it is.
	OAuthCompletion string `json:"oauth_completion,omitempty"`
}

// The values of config's oauth_completion.
const (
	completionApplication = "application"
	completionCallback    = "callback"
)

// applicationCompletes reports whether an authorization started through
// authorize is completed by the application (connections/.../complete).
func (c *configEntry) applicationCompletes() bool {
	return c.OAuthCompletion != completionCallback
}

// oauthCompletion is the setting as shown: never empty.
func (c *configEntry) oauthCompletion() string {
	if c.applicationCompletes() {
		return completionApplication
	}
	return completionCallback
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
	// defaultMaxPendingEvents bounds the pending deliveries (an event
	// counts once per receiver) of a mount: a day of retries to a receiver
	// that is down, at a few events a second, without filling storage.
	defaultMaxPendingEvents = 100000
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
		MaxPendingEvents:         defaultMaxPendingEvents,
	}
}

// integrationEntry is one external API and the way to authenticate to it.
type integrationEntry struct {
	entryFormat
	Name         string           `json:"name"`
	AuthMode     catalog.AuthMode `json:"auth_mode"`
	ClientID     string           `json:"client_id,omitempty"`
	ClientSecret string           `json:"client_secret,omitempty"`
	catalog.EndpointSettings
	// AllowedScopes are scopes authorize may request besides Scopes.
	AllowedScopes []string `json:"allowed_scopes,omitempty"`
	// Provider names a catalog entry whose settings fill the fields left
	// empty here.
	Provider string `json:"provider,omitempty"`
	// DisablePKCE is how earlier versions stored pkce=false; an entry that
	// has it is read as PKCE false.
	DisablePKCE bool `json:"disable_pkce,omitempty"`
	// DisplayName is what the connect page calls the integration
	// ("GitHub"); empty: the catalog provider's name, else Name.
	DisplayName string `json:"display_name,omitempty"`
	// APP (GitHub-App style) settings.
	AppID      string `json:"app_id,omitempty"`
	PrivateKey string `json:"private_key,omitempty"`
	// Proxy holds the rules of the proxy (connections/<i>/<id>/proxy/…);
	// without proxy_paths the integration has none.
	Proxy     proxySettings `json:"proxy,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// proxySettings are an integration's proxy rules and bounds; a zero bound
// means its default (see the proxy flow).
type proxySettings struct {
	// Paths are globs under the API base a call may reach, e.g. /v1/*.
	Paths []string `json:"paths,omitempty"`
	// Methods are the upstream methods allowed; empty means GET.
	Methods []string `json:"methods,omitempty"`
	// Headers are caller headers passed on besides the built-in ones.
	Headers []string `json:"headers,omitempty"`
	// Retries bounds the retries of an idempotent call; nil means the
	// default, 0 none.
	Retries *int `json:"retries,omitempty"`
	// RetryAfterMax is the longest Retry-After the proxy waits for.
	RetryAfterMax time.Duration `json:"retry_after_max,omitempty"`
	// MaxResponse bounds the provider's answer, in bytes.
	MaxResponse int64 `json:"max_response,omitempty"`
	// Timeout bounds a call, retries and waits included.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// displayName is what people call the integration: its own display name,
// else its catalog provider's, else its name.
func (in *integrationEntry) displayName() string {
	switch {
	case in.DisplayName != "":
		return in.DisplayName
	case catalog.DisplayName(in.Provider) != "":
		return catalog.DisplayName(in.Provider)
	}
	return in.Name
}

// pendingAuthorization is a pending authorization as stored, under the SHA-256
// of its state so that storage never holds a usable state value.
type pendingAuthorization struct {
	entryFormat
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
	// MergeConnectionConfig sets ConnectionConfig's keys over the
	// connection's config as it is when the callback stores it, keeping its
	// other keys: a connect page's reconnect.
	MergeConnectionConfig bool `json:"merge_connection_config,omitempty"`
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
	// Tags replace the connection's tags when ReplaceTags is set.
	Tags        map[string]string `json:"tags,omitempty"`
	ReplaceTags bool              `json:"replace_tags,omitempty"`
	ReturnURL   string            `json:"return_url,omitempty"`
	ExpiresAt   time.Time         `json:"expires_at"`
	// SessionHash names the connect session that started the
	// authorization: the callback checks it is still usable, marks it
	// connected and shows the page's success with its return_url.
	SessionHash string `json:"session_hash,omitempty"`
	// BrowserBindingHash is the SHA-256 (hex) of what binds the
	// authorization to the browser that started it: the connect page's
	// cookie (SessionHash set), or authorize's browser_binding, which the
	// application gives again to complete.
	BrowserBindingHash string `json:"browser_binding_hash,omitempty"`
	// CreateOnly: the authorization may create its connection, never
	// replace one (a connect session without reconnect); checked under
	// the connection's lock when it is stored.
	CreateOnly bool `json:"create_only,omitempty"`
	// ApplicationCompletes: authorize was called while config's
	// oauth_completion was "application", so the callback keeps the
	// tokens for complete instead of storing the connection.
	ApplicationCompletes bool `json:"application_completes,omitempty"`
	// Held is set on a pending completion (stored under the hash of its
	// completion value, never of a state): the tokens the callback
	// obtained, kept until the application completes or they expire.
	Held *heldTokens `json:"held,omitempty"`
}

// heldTokens are the tokens of an authorization the application has yet
// to complete, with the values the provider's redirect carried for the
// connection's config. Stored seal-wrapped, for at most state_ttl.
type heldTokens struct {
	AccessToken  string         `json:"access_token"`
	RefreshToken string         `json:"refresh_token,omitempty"`
	TokenType    string         `json:"token_type,omitempty"`
	Expiry       time.Time      `json:"expiry,omitempty"`
	Raw          map[string]any `json:"raw,omitempty"`
	FromCallback map[string]any `json:"from_callback,omitempty"`
	// IssuedConfig is the whole connection config the code was exchanged
	// under, where the tokens are revoked if no connection ever holds them.
	IssuedConfig map[string]any `json:"issued_config,omitempty"`
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
	entryFormat
	Integration  string           `json:"integration"`
	ConnectionID string           `json:"connection_id"`
	AuthMode     catalog.AuthMode `json:"auth_mode"`
	Credentials  credentials      `json:"credentials"`
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

	// ProxyCalls counts the calls proxied with this connection's credential
	// up to the last save; the store adds the calls since (kept in memory)
	// on its next save of the entry, so a call costs no storage write.
	ProxyCalls int64 `json:"proxy_calls,omitempty"`
	// LastProxyCallAt is when the last of ProxyCalls was made.
	LastProxyCallAt time.Time `json:"last_proxy_call_at,omitempty"`

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
	// CreateRequestID is the id of the Vault request that created the
	// connection through connections/<integration>/<connection_id>. When
	// the plugin process dies under a request, Vault starts a new one and
	// hands it the same request again, and answers the client with that
	// retry: a retry that finds the connection its first attempt saved is
	// still the create, and records connection.created (the first attempt
	// may have died before recording it). Not secret (Vault's audit log
	// shows it). Empty for other creates and in entries of earlier versions.
	CreateRequestID string `json:"create_request_id,omitempty"`

	// issued marks credentials a provider has just issued, which the store
	// keeps even when saving them fails. Never stored.
	issued bool
	// issuedBy is the integration, as the write read it, whose provider
	// issued the credentials of a write in this change (a first token, or
	// one for a moved grant): the store saves them only while that
	// integration is stored unchanged, and otherwise revokes them with it
	// (and with the connection's own client, if any). Never stored.
	issuedBy *integrationEntry
	// events are the lifecycle events the change that returned this entry
	// caused, recorded by the store once it is saved. Never stored.
	events []pendingEvent
}

// upgrade brings an entry stored by an earlier version up to date as it is
// loaded, and refuses one of a newer format (errNewerFormat), which this
// build would misread. Format 0 (0.1.0) and 1 differ only in the format's
// presence. APP connections kept their installation in connection_config:
// the config key is dropped whatever else holds: when the entry has its own
// installation the key is a stray one (earlier versions let the config
// sub-path, which customers may write, add it), and it must not decide
// which installation the connection mints for.
func (c *connectionEntry) upgrade() error {
	if err := c.checkFormat(); err != nil {
		return err
	}
	if c.AuthMode != catalog.App || c.ConnectionConfig == nil {
		return nil
	}
	v, ok := c.ConnectionConfig[appInstallationKey]
	if !ok {
		return nil
	}
	if c.InstallationID == "" && v != nil {
		c.InstallationID = fmt.Sprint(v)
	}
	delete(c.ConnectionConfig, appInstallationKey)
	return nil
}

// upgrade brings an integration stored by an earlier version up to date as
// it is loaded: credentials_schema named the API key apiKey, where
// connection writes and errors say api_key.
func (in *integrationEntry) upgrade() {
	in.UpgradeCredentialsSchema(in.AuthMode)
}

// upgradeStoredProvider brings an operator's provider stored by an earlier
// version up to date as it is loaded, as integrationEntry.upgrade does.
func upgradeStoredProvider(p *catalog.Provider) {
	p.UpgradeCredentialsSchema(p.AuthMode)
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
	cp.Tags = cloneMap(c.Tags)
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

// refreshStatus is a connection's standing with its provider; the refresh
// rules (internal/refresh) own its values and what moves a connection
// between them.
type refreshStatus = refresh.Status

const (
	refreshOK        = refresh.OK
	refreshFailing   = refresh.Failing
	refreshExhausted = refresh.Exhausted
	refreshReauth    = refresh.Reauth
)

// sameJSON reports whether two values encode to the same JSON.
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// formatTime is how entries' times are shown, in responses, warnings and
// logs alike: RFC 3339 in UTC, empty for the zero time (never set).
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// nonNilStrings, nonNilMap and nonNilObject give an entry's unset slice or
// map as an empty one, so that responses and stored copies show [] or {}
// rather than null.
func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilObject(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// connectionPrefix is where connection entries are stored. A connection's
// storage key is also its name in every layer: the store's locks and cache,
// the engine's queue and the WAL.
const connectionPrefix = "connections/"

// connectionsPrefix is where an integration's connections are stored.
func connectionsPrefix(integration string) string {
	return connectionPrefix + integration + "/"
}

// connectionKey is a connection's storage key.
func connectionKey(integration, id string) string {
	return connectionsPrefix(integration) + id
}

// mergedConnectionConfig is base with the given keys set over it, in a new
// map: a connect page reconnect's config (see MergeConnectionConfig).
func mergedConnectionConfig(base, given map[string]any) map[string]any {
	merged := make(map[string]any, len(base)+len(given))
	for k, v := range base {
		merged[k] = v
	}
	for k, v := range given {
		merged[k] = v
	}
	return merged
}
