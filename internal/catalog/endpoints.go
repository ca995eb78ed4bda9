// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// EndpointSettings say where and how to get tokens from an API. Providers
// and integrations both have them; an integration's non-empty ones override
// its provider's. Embedded, they are stored as fields of the entry itself.
type EndpointSettings struct {
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
	// Issuer is the authorization server's issuer identifier (RFC 8414):
	// where the provider's redirect carries an iss parameter (RFC 9207),
	// it must equal this, or the callback refuses it (a mix-up attack).
	Issuer string `json:"issuer,omitempty"`
	// ConnectionConfigSchema describes the connection_config keys the
	// provider needs (the placeholders of its URLs among them); writes of a
	// connection's config are checked against it.
	ConnectionConfigSchema ValueSchema `json:"connection_config_schema,omitempty"`
	// CredentialsSchema describes the credential fields of OAUTH2_CC
	// (client_id, client_secret: the connection's own client), API_KEY
	// (api_key), BASIC (username, password) and CUSTOM connections.
	CredentialsSchema ValueSchema `json:"credentials_schema,omitempty"`
	// RequestHeaders, with APIBaseURL, say how a client uses a connection:
	// header name → template (see internal/headertemplate). Connection reads
	// return them rendered.
	RequestHeaders map[string]string `json:"request_headers,omitempty"`
	// AllowedHosts are the hosts a connection's config may point the URLs
	// at, beyond their literal hosts: names or *.<domain> patterns. A URL
	// whose host is wholly a placeholder needs them (see endpoint_hosts.go).
	AllowedHosts []string `json:"allowed_hosts,omitempty"`
}

// UsesPKCE is the effective pkce setting.
func (es EndpointSettings) UsesPKCE() bool {
	return es.PKCE == nil || *es.PKCE
}

// OverriddenBy returns base with over's non-empty settings in their place;
// parameter maps are merged key by key.
func (base EndpointSettings) OverriddenBy(over EndpointSettings) EndpointSettings {
	out := over
	orString(&out.AuthURL, base.AuthURL)
	orString(&out.TokenURL, base.TokenURL)
	orString(&out.RevocationURL, base.RevocationURL)
	orString(&out.AuthStyle, base.AuthStyle)
	orString(&out.APIBaseURL, base.APIBaseURL)
	orString(&out.ScopeSeparator, base.ScopeSeparator)
	orString(&out.TokenRequestFormat, base.TokenRequestFormat)
	if out.PKCE == nil {
		out.PKCE = base.PKCE
	}
	if len(out.CallbackConfig) == 0 {
		out.CallbackConfig = base.CallbackConfig
	}
	orString(&out.RefreshURL, base.RefreshURL)
	orString(&out.RedirectURIValue, base.RedirectURIValue)
	orString(&out.Issuer, base.Issuer)
	if len(out.ConnectionConfigSchema) == 0 {
		out.ConnectionConfigSchema = base.ConnectionConfigSchema
	}
	if len(out.CredentialsSchema) == 0 {
		out.CredentialsSchema = base.CredentialsSchema
	}
	if len(out.AllowedHosts) == 0 {
		out.AllowedHosts = base.AllowedHosts
	}
	out.RequestHeaders = mergeMaps(base.RequestHeaders, over.RequestHeaders)
	out.RefreshParams = mergeMaps(base.RefreshParams, over.RefreshParams)
	if len(out.Scopes) == 0 {
		out.Scopes = base.Scopes
	}
	out.AuthParams = mergeMaps(base.AuthParams, over.AuthParams)
	out.TokenParams = mergeMaps(base.TokenParams, over.TokenParams)
	out.TokenResponseConfig = mergeMaps(base.TokenResponseConfig, over.TokenResponseConfig)
	return out
}

// orString sets *dst to fallback when it is empty.
func orString(dst *string, fallback string) {
	if *dst == "" {
		*dst = fallback
	}
}

// mergeMaps returns base with over's entries on top; nil when both are empty.
func mergeMaps(base, over map[string]string) map[string]string {
	if len(base) == 0 && len(over) == 0 {
		return nil
	}
	out := make(map[string]string, len(base)+len(over))
	maps.Copy(out, base)
	maps.Copy(out, over)
	return out
}

// SettingSources says, for each endpoint setting that has a value, where
// it comes from: "integration" when the integration sets it, else source
// (the provider's kind).
func SettingSources(own, base EndpointSettings, source string) map[string]string {
	out := map[string]string{}
	pick := func(field string, ownSet, baseSet bool) {
		switch {
		case ownSet:
			out[field] = "integration"
		case baseSet:
			out[field] = source
		}
	}
	pick("auth_url", own.AuthURL != "", base.AuthURL != "")
	pick("token_url", own.TokenURL != "", base.TokenURL != "")
	pick("refresh_url", own.RefreshURL != "", base.RefreshURL != "")
	pick("refresh_params", len(own.RefreshParams) > 0, len(base.RefreshParams) > 0)
	pick("scope_separator", own.ScopeSeparator != "", base.ScopeSeparator != "")
	pick("pkce", own.PKCE != nil, base.PKCE != nil)
	pick("token_request_format", own.TokenRequestFormat != "", base.TokenRequestFormat != "")
	pick("callback_config", len(own.CallbackConfig) > 0, len(base.CallbackConfig) > 0)
	pick("redirect_uri_value", own.RedirectURIValue != "", base.RedirectURIValue != "")
	pick("issuer", own.Issuer != "", base.Issuer != "")
	pick("revocation_url", own.RevocationURL != "", base.RevocationURL != "")
	pick("api_base_url", own.APIBaseURL != "", base.APIBaseURL != "")
	pick("auth_style", own.AuthStyle != "", base.AuthStyle != "")
	pick("scopes", len(own.Scopes) > 0, len(base.Scopes) > 0)
	pick("auth_params", len(own.AuthParams) > 0, len(base.AuthParams) > 0)
	pick("token_params", len(own.TokenParams) > 0, len(base.TokenParams) > 0)
	pick("token_response_config", len(own.TokenResponseConfig) > 0, len(base.TokenResponseConfig) > 0)
	pick("connection_config_schema", len(own.ConnectionConfigSchema) > 0, len(base.ConnectionConfigSchema) > 0)
	pick("credentials_schema", len(own.CredentialsSchema) > 0, len(base.CredentialsSchema) > 0)
	pick("request_headers", len(own.RequestHeaders) > 0, len(base.RequestHeaders) > 0)
	pick("allowed_hosts", len(own.AllowedHosts) > 0, len(base.AllowedHosts) > 0)
	return out
}

// Validate checks the URLs an auth mode requires and that every URL given
// is a valid template.
func (es EndpointSettings) Validate(mode AuthMode) error {
	urls := map[string]string{}
	for _, u := range es.urlFields() {
		urls[u.field] = u.tmpl
	}
	var required []string
	switch mode {
	case OAuth2:
		required = []string{"auth_url", "token_url"}
	case OAuth2CC:
		required = []string{"token_url"}
	}
	for _, f := range required {
		if urls[f] == "" {
			return fmt.Errorf("%s is required for auth_mode %s", f, mode)
		}
	}
	for _, f := range []string{"auth_url", "token_url", "refresh_url", "revocation_url"} {
		if urls[f] != "" {
			if err := provider.ValidateURLTemplate(f, urls[f]); err != nil {
				return err
			}
		}
	}
	if err := validateAPIBaseURL(es.APIBaseURL, mode); err != nil {
		return err
	}
	if err := es.validateUsage(mode); err != nil {
		return err
	}
	if err := es.validateEgress(); err != nil {
		return err
	}
	if es.AuthStyle != "" {
		if _, ok := provider.AuthStyles[es.AuthStyle]; !ok {
			return fmt.Errorf("auth_style %q is not one of auto, header, params", printable(es.AuthStyle))
		}
	}
	switch es.TokenRequestFormat {
	case "", "form", "json":
	default:
		return fmt.Errorf("token_request_format must be form or json")
	}
	for _, name := range es.CallbackConfig {
		if !callbackConfigNameRe.MatchString(name) || reservedCallbackParams[name] {
			return fmt.Errorf("callback_config: %q is not a query parameter name the callback can copy", printable(name))
		}
	}
	if err := validateRedirectURIValue(es.RedirectURIValue, mode); err != nil {
		return err
	}
	if !validScopeSeparator(es.ScopeSeparator) {
		return fmt.Errorf("scope_separator must be one of a space, ',', ';' or '+'")
	}
	if err := provider.ValidateParamTemplates("token_params", es.TokenParams); err != nil {
		return err
	}
	if err := provider.ValidateParamTemplates("refresh_params", es.RefreshParams); err != nil {
		return err
	}
	if err := es.checkParamPlaceholdersPinned(); err != nil {
		return err
	}
	if err := provider.CheckQueryParams("auth_url", es.AuthURL, provider.ReservedAuthParams); err != nil {
		return err
	}
	for field, tmpl := range map[string]string{"token_url": es.TokenURL, "refresh_url": es.RefreshURL, "revocation_url": es.RevocationURL} {
		if err := provider.CheckQueryParams(field, tmpl, provider.ReservedTokenParams); err != nil {
			return err
		}
	}
	return provider.CheckAuthParams(es.AuthParams)
}

// redirectURIValueRe is a name a provider registered in place of a
// redirect URI: visible ASCII without white space, bounded. eBay's RuNames
// are letters, digits, '-' and '_'.
var redirectURIValueRe = regexp.MustCompile(`^[!-~]{1,255}$`)

// validateRedirectURIValue checks redirect_uri_value: an authorization
// code setting, a name rather than a URL (a URL there would send the code
// somewhere the callback never sees; the mount's callback is config's
// redirect_url).
func validateRedirectURIValue(v string, mode AuthMode) error {
	switch {
	case v == "":
		return nil
	case mode != OAuth2:
		return fmt.Errorf("redirect_uri_value applies to auth_mode OAUTH2 only")
	case !redirectURIValueRe.MatchString(v):
		return fmt.Errorf("redirect_uri_value must be 1 to 255 visible ASCII characters without white space")
	case strings.Contains(v, "://"):
		return fmt.Errorf("redirect_uri_value is for a provider's registered name, not a URL: the redirect URL is config's redirect_url")
	}
	return nil
}

// RedirectURI is what the authorization request and the code exchange send
// as redirect_uri: redirect_uri_value if set, else the mount's callback.
func (es EndpointSettings) RedirectURI(mountRedirectURL string) string {
	if es.RedirectURIValue != "" {
		return es.RedirectURIValue
	}
	return mountRedirectURL
}

// callbackConfigNameRe is what a copied callback query parameter may be
// called; the callback's own parameters cannot be copied.
var (
	callbackConfigNameRe   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	reservedCallbackParams = map[string]bool{"code": true, "state": true, "error": true, "error_description": true}
)

// validScopeSeparator accepts the separators real APIs use; empty means the
// default, a space.
func validScopeSeparator(sep string) bool {
	switch sep {
	case "", " ", ",", ";", "+":
		return true
	}
	return false
}

// EndpointHosts are the scheme and host of each URL a provider's settings
// send requests or credentials to.
func (es EndpointSettings) EndpointHosts() map[string]string {
	hosts := map[string]string{}
	for _, u := range es.urlFields() {
		hosts[u.field] = provider.HostOf(u.tmpl)
	}
	return hosts
}

// urlField is one URL setting: its field name and template.
type urlField struct{ field, tmpl string }

// urlFields are the URL settings, in the order errors name them.
func (es EndpointSettings) urlFields() []urlField {
	return []urlField{
		{"auth_url", es.AuthURL}, {"token_url", es.TokenURL}, {"refresh_url", es.RefreshURL},
		{"revocation_url", es.RevocationURL}, {"api_base_url", es.APIBaseURL},
	}
}

// validateAPIBaseURL checks api_base_url. APP integrations send their app
// JWT there, so its placeholders take host labels only; in other modes it
// is only returned to clients and a placeholder may fill in a whole URL.
func validateAPIBaseURL(tmpl string, mode AuthMode) error {
	if tmpl == "" {
		return nil
	}
	if mode == App {
		return provider.ValidateURLTemplate("api_base_url", tmpl)
	}
	return provider.ValidateClientURLTemplate("api_base_url", tmpl)
}

// RequiredConfigKeys lists, sorted, the connection_config keys every
// connection needs: the schema's required keys, the placeholders of each
// URL's last alternative and those of token_params and refresh_params.
func (es EndpointSettings) RequiredConfigKeys() []string {
	set := map[string]bool{}
	for _, k := range es.ConnectionConfigSchema.Required() {
		set[k] = true
	}
	for _, u := range []string{es.AuthURL, es.TokenURL, es.RefreshURL, es.RevocationURL} {
		for _, k := range provider.RequiredPlaceholders(u) {
			set[k] = true
		}
	}
	for _, k := range append(provider.ParamPlaceholders(es.TokenParams), provider.ParamPlaceholders(es.RefreshParams)...) {
		set[k] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// checkParamPlaceholdersPinned requires every connection_config key that
// token_params or refresh_params use, or the query of a token, refresh or
// revocation URL, to have an enum or a pattern in
// connection_config_schema: whoever may write a connection's config
// chooses the value (an audience, a resource) the integration's client
// asks tokens for, so the operator says which values are the customer's to
// choose.
func (es EndpointSettings) checkParamPlaceholdersPinned() error {
	uses := map[string][]string{
		"token_params":   provider.ParamPlaceholders(es.TokenParams),
		"refresh_params": provider.ParamPlaceholders(es.RefreshParams),
		"token_url":      provider.QueryPlaceholders(es.TokenURL),
		"refresh_url":    provider.QueryPlaceholders(es.RefreshURL),
		"revocation_url": provider.QueryPlaceholders(es.RevocationURL),
	}
	for _, field := range slices.Sorted(maps.Keys(uses)) {
		for _, key := range uses[field] {
			f, ok := es.ConnectionConfigSchema[key]
			if !ok || (len(f.Enum) == 0 && f.Pattern == "") {
				return fmt.Errorf("%s uses ${connectionConfig.%s}: connection_config_schema.%s needs an enum or a pattern, since whoever writes a connection's config chooses it", field, key, key)
			}
		}
	}
	return nil
}
