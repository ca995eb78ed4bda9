// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/headertemplate"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// A connection read tells the client how to call the provider: base_url
// (the integration's api_base_url, filled from the connection's config) and
// headers (its request_headers, rendered with the connection's credential),
// so application code calls any provider the same way.

// variableModes says which auth modes have each plain header variable.
var variableModes = map[string][]authMode{
	"accessToken": {authModeOAuth2, authModeOAuth2CC, authModeApp},
	"apiKey":      {authModeAPIKey},
	"username":    {authModeBasic},
	"password":    {authModeBasic},
}

// credentialKeys are the credentials_schema keys each mode may describe;
// nil means any (CUSTOM's own keys).
var credentialKeys = map[authMode][]string{
	authModeOAuth2CC: {"client_id", "client_secret"},
	authModeAPIKey:   {"apiKey"},
	authModeBasic:    {"username", "password"},
	authModeCustom:   nil,
}

// validateUsage checks connection_config_schema, credentials_schema and
// request_headers against the auth mode.
func (es endpointSettings) validateUsage(mode authMode) error {
	if err := es.ConnectionConfigSchema.Validate("connection_config_schema"); err != nil {
		return err
	}
	if len(es.CredentialsSchema) > 0 {
		allowed, ok := credentialKeys[mode]
		if !ok {
			return fmt.Errorf("credentials_schema applies to OAUTH2_CC, API_KEY, BASIC and CUSTOM, not %s", mode)
		}
		for _, k := range es.CredentialsSchema.Keys() {
			if allowed != nil && !slices.Contains(allowed, k) {
				return fmt.Errorf("credentials_schema.%s: the credentials of %s are %s", printable(k), mode, strings.Join(allowed, ", "))
			}
		}
		if err := es.CredentialsSchema.Validate("credentials_schema"); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(es.RequestHeaders) {
		if _, err := parseRequestHeader(name, es.RequestHeaders[name], mode); err != nil {
			return err
		}
	}
	return nil
}

// parseRequestHeader parses one request header template and checks that the
// mode's connections have every variable it uses.
func parseRequestHeader(name, tmpl string, mode authMode) (*headertemplate.Template, error) {
	if !headertemplate.HeaderNameRe.MatchString(name) {
		return nil, fmt.Errorf("request_headers: %q is not an HTTP header name", printable(name))
	}
	t, err := headertemplate.Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("request_headers.%s: %s", name, err)
	}
	for _, v := range t.Variables() {
		if modes, plain := variableModes[v]; plain && mode != "" && !slices.Contains(modes, mode) {
			return nil, fmt.Errorf("request_headers.%s: ${%s} is not a credential of %s connections", name, v, mode)
		}
		if strings.HasPrefix(v, "credentials.") && mode != "" && mode != authModeCustom {
			return nil, fmt.Errorf("request_headers.%s: ${%s} is for CUSTOM connections", name, v)
		}
	}
	return t, nil
}

// clientUsage is what a connection read needs of its integration: parsed
// once and cached, since every read uses it.
type clientUsage struct {
	// integration is the effective integration: its URL templates and
	// allowed_hosts bound base_url and config edits.
	integration *integrationEntry
	// templates are the integration's URLs with their host policy, built
	// once: base_url is rendered under it on every read.
	templates provider.Endpoints
	baseURL   string
	headers   map[string]*headertemplate.Template
}

func newClientUsage(in *integrationEntry) *clientUsage {
	u := &clientUsage{integration: in, templates: in.endpointTemplates().WithPolicy(), baseURL: in.APIBaseURL, headers: map[string]*headertemplate.Template{}}
	for name, tmpl := range in.RequestHeaders {
		if t, err := parseRequestHeader(name, tmpl, in.AuthMode); err == nil {
			u.headers[name] = t
		}
	}
	return u
}

// render fills base_url and headers into a connection read. What cannot be
// rendered for this connection (a config key it lacks) is left out with a
// warning that names the key, never a value.
func (u *clientUsage) render(c *connectionEntry, data map[string]any) []string {
	var warnings []string
	cfg := u.integration.ConnectionConfigSchema.WithDefaults(c.ConnectionConfig)
	if u.baseURL != "" {
		if base, err := provider.ClientBaseURL(u.templates, cfg); err == nil {
			data["base_url"] = base
		} else {
			warnings = append(warnings, "base_url is not available: "+err.Error())
		}
	}
	if len(u.headers) == 0 {
		return warnings
	}
	headers := make(map[string]any, len(u.headers))
	lookup := connectionVariables(c, cfg)
	for _, name := range sortedKeys(u.headers) {
		v, err := u.headers[name].Render(lookup)
		if err == nil && strings.ContainsAny(v, "\r\n\x00") {
			err = fmt.Errorf("its value would hold a line break")
		}
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("header %s is not available: %s", name, err))
			continue
		}
		headers[name] = v
	}
	data["headers"] = headers
	return warnings
}

// connectionVariables looks up request header variables in a connection;
// cfg is its connection_config with the schema's defaults filled in.
func connectionVariables(c *connectionEntry, cfg map[string]any) headertemplate.Lookup {
	cr := c.Credentials
	return func(name string) (string, bool) {
		var v string
		switch {
		case name == "accessToken":
			v = cr.AccessToken
		case name == "apiKey":
			v = cr.APIKey
		case name == "username":
			v = cr.Username
		case name == "password":
			return cr.Password, c.AuthMode == authModeBasic
		case strings.HasPrefix(name, "connectionConfig."):
			if raw, ok := cfg[strings.TrimPrefix(name, "connectionConfig.")]; ok && raw != nil {
				v = fmt.Sprint(raw)
			}
		case strings.HasPrefix(name, "credentials."):
			v = cr.Custom[strings.TrimPrefix(name, "credentials.")]
		}
		return v, v != ""
	}
}

// usageCache holds each integration's clientUsage. Integration and provider
// writes (here or, through invalidate, on another node) clear it; the
// generation drops a fill that raced such a clear.
type usageCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]*clientUsage
}

// maxCachedUsages bounds the cache; past it, it starts over.
const maxCachedUsages = 10000

func (uc *usageCache) clear() {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	uc.gen++
	uc.m = nil
}

// usage returns the integration's clientUsage, nil when it does not exist.
func (b *backend) usage(ctx context.Context, s logical.Storage, integration string) (*clientUsage, error) {
	uc := &b.usageCache
	uc.mu.Lock()
	u, gen := uc.m[integration], uc.gen
	uc.mu.Unlock()
	if u != nil {
		return u, nil
	}
	stored, err := getIntegration(ctx, s, integration)
	if err != nil || stored == nil {
		return nil, err
	}
	in, err := effectiveIntegration(ctx, s, stored)
	if err != nil {
		return nil, err
	}
	u = newClientUsage(in)
	uc.mu.Lock()
	defer uc.mu.Unlock()
	if uc.gen == gen {
		if uc.m == nil || len(uc.m) >= maxCachedUsages {
			uc.m = map[string]*clientUsage{}
		}
		uc.m[integration] = u
	}
	return u, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
