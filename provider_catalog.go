package connect

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/hashicorp/vault/sdk/logical"
)

// The built-in catalog is embedded so that `provider=github` works on any
// Vault with no files to install. Operators add or override entries at
// providers/<name>; an integration names one with `provider` and its own
// non-empty fields win over the provider's.
//
//go:embed provider_catalog.json
var catalogJSON []byte

var builtinProviders = mustLoadCatalog(catalogJSON)

func mustLoadCatalog(b []byte) map[string]*providerEntry {
	var raw map[string]*providerEntry
	if err := json.Unmarshal(b, &raw); err != nil {
		panic(fmt.Sprintf("provider_catalog.json: %v", err))
	}
	for name, p := range raw {
		p.Name = name
		if err := validateProvider(p); err != nil {
			panic(fmt.Sprintf("provider_catalog.json: %s: %v", name, err))
		}
	}
	return raw
}

// lookupProvider returns the operator's provider of that name, else the
// built-in one, else nil.
func lookupProvider(ctx context.Context, s logical.Storage, name string) (*providerEntry, error) {
	p, err := getStoredProvider(ctx, s, name)
	if err != nil || p != nil {
		return p, err
	}
	if b, ok := builtinProviders[name]; ok {
		cp := *b
		return &cp, nil
	}
	return nil, nil
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
	for n := range builtinProviders {
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

func mergeProvider(in *integrationEntry, p *providerEntry) *integrationEntry {
	out := *in
	if out.AuthMode == "" {
		out.AuthMode = p.AuthMode
	}
	orString(&out.AuthURL, p.AuthURL)
	orString(&out.TokenURL, p.TokenURL)
	orString(&out.RevocationURL, p.RevocationURL)
	orString(&out.AuthStyle, p.AuthStyle)
	orString(&out.APIBaseURL, p.APIBaseURL)
	if len(out.Scopes) == 0 {
		out.Scopes = p.Scopes
	}
	out.AuthParams = mergeMaps(p.AuthParams, in.AuthParams)
	out.TokenParams = mergeMaps(p.TokenParams, in.TokenParams)
	out.TokenResponseConfig = mergeMaps(p.TokenResponseConfig, in.TokenResponseConfig)
	return &out
}

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
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

// validateProvider checks what each auth mode needs of a provider.
func validateProvider(p *providerEntry) error {
	if _, err := parseAuthMode(string(p.AuthMode)); err != nil {
		return err
	}
	return validateEndpoints(p.AuthMode, map[string]string{
		"auth_url":       p.AuthURL,
		"token_url":      p.TokenURL,
		"revocation_url": p.RevocationURL,
		"api_base_url":   p.APIBaseURL,
	}, p.AuthStyle)
}

// validateEndpoints checks the URLs an auth mode requires and that every URL
// given is a valid template.
func validateEndpoints(mode authMode, urls map[string]string, authStyle string) error {
	var required []string
	switch mode {
	case authModeOAuth2:
		required = []string{"auth_url", "token_url"}
	case authModeOAuth2CC:
		required = []string{"token_url"}
	}
	for _, f := range required {
		if urls[f] == "" {
			return fmt.Errorf("%s is required for auth_mode %s", f, mode)
		}
	}
	for _, f := range []string{"auth_url", "token_url", "revocation_url", "api_base_url"} {
		if urls[f] != "" {
			if err := validateURLTemplate(f, urls[f]); err != nil {
				return err
			}
		}
	}
	if authStyle != "" {
		if _, ok := authStyles[authStyle]; !ok {
			return fmt.Errorf("auth_style %q is not one of auto, header, params", printable(authStyle))
		}
	}
	return nil
}
