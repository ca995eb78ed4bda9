// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/headertemplate"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// A connection read tells the client how to call the provider: base_url
// (the integration's api_base_url, filled from the connection's config) and
// headers (its request_headers, rendered with the connection's credential),
// so application code calls any provider the same way.

// integrationRendering is what a connection read needs of its integration
// to render base_url and headers: parsed once and cached, since every read
// uses it.
type integrationRendering struct {
	// integration is the effective integration: its URL templates and
	// allowed_hosts bound base_url and config edits.
	integration *integrationEntry
	// templates are the integration's URLs with their host policy, built
	// once: base_url is rendered under it on every read.
	templates provider.Endpoints
	baseURL   string
	headers   map[string]*headertemplate.Template
}

// newIntegrationRendering parses in's URL and header templates.
func newIntegrationRendering(in *integrationEntry) *integrationRendering {
	u := &integrationRendering{integration: in, templates: in.endpointTemplates().WithPolicy(), baseURL: in.APIBaseURL, headers: map[string]*headertemplate.Template{}}
	for name, tmpl := range in.RequestHeaders {
		if t, err := catalog.ParseRequestHeader(name, tmpl, in.AuthMode); err == nil {
			u.headers[name] = t
		}
	}
	return u
}

// render fills base_url and headers into a connection read. What cannot be
// rendered for this connection (a config key it lacks) is left out with a
// warning that names the key, never a value.
func (u *integrationRendering) render(c *connectionEntry, data map[string]any) []string {
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
	for _, name := range slices.Sorted(maps.Keys(u.headers)) {
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
			return cr.Password, c.AuthMode == catalog.Basic
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

// renderingCache holds each integration's integrationRendering. Integration
// and provider writes (on this node or, through invalidate, on another)
// clear it; the generation drops a fill that raced such a clear.
type renderingCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]*integrationRendering
	// missing are integrations found not to exist, kept apart so that
	// names asked for in bulk (any name a session offering every
	// integration may ask for) never push out an integration's rendering.
	missing map[string]bool
}

// maxCachedRenderings bounds the cache, and maxCachedMisses its missing
// names; past either, that part starts over.
const (
	maxCachedRenderings = 10000
	maxCachedMisses     = 1000
)

// clear forgets every integration's rendering.
func (uc *renderingCache) clear() {
	uc.mu.Lock()
	defer uc.mu.Unlock()
	uc.gen++
	uc.m, uc.missing = nil, nil
}

// get returns the integration's rendering, nil when it does not exist. A
// missing integration is remembered too (as nil), so that a name the
// unauthenticated connect page offers, deleted since, is not read from
// storage on every request; creating it clears the cache.
func (uc *renderingCache) get(ctx context.Context, s logical.Storage, integration string) (*integrationRendering, error) {
	uc.mu.Lock()
	u, gen := uc.m[integration], uc.gen
	missing := uc.missing[integration]
	uc.mu.Unlock()
	if u != nil || missing {
		return u, nil
	}
	stored, err := getIntegration(ctx, s, integration)
	if err != nil {
		return nil, err
	}
	if stored != nil {
		in, err := effectiveIntegration(ctx, s, stored)
		if err != nil {
			return nil, err
		}
		u = newIntegrationRendering(in)
	}
	uc.mu.Lock()
	defer uc.mu.Unlock()
	switch {
	case uc.gen != gen:
	case u == nil:
		if uc.missing == nil || len(uc.missing) >= maxCachedMisses {
			uc.missing = map[string]bool{}
		}
		uc.missing[integration] = true
	default:
		if uc.m == nil || len(uc.m) >= maxCachedRenderings {
			uc.m = map[string]*integrationRendering{}
		}
		uc.m[integration] = u
	}
	return u, nil
}
