// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// providerWriter writes and deletes operator-defined providers (custom
// catalog entries and overrides of built-ins). A provider's URLs are where
// its integrations send their secrets, so a change that lets an
// integration reach a host it did not before is refused unless forced.
type providerWriter struct {
	// renderings are dropped after every change: they are built from
	// integrations and their providers.
	renderings *renderingCache
}

// providerInput is one provider write or delete as plain values: its
// name, the fields a write gives, and force (the operator accepts that
// integrations of the provider may reach new hosts).
type providerInput struct {
	Name   string
	Fields fieldValues
	Force  bool
}

// builtinProviderError refuses the delete of a built-in provider that has
// no override.
type builtinProviderError struct{ name string }

func (e *builtinProviderError) Error() string {
	return fmt.Sprintf("provider %q is built in and cannot be deleted; write to it to override it", e.name)
}

// write adds a provider or overrides one, and returns it with the
// integrations, sorted, that may now reach new hosts. An override of a
// built-in starts from the built-in's settings, so a write may change one
// field and keep the rest. Errors of the input are userErrors; nothing is
// changed on any error.
func (w *providerWriter) write(ctx context.Context, s logical.Storage, input providerInput) (*catalog.Provider, []string, error) {
	name := input.Name
	existing, err := lookupProvider(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	p := &catalog.Provider{Name: name}
	var old *catalog.Provider
	if existing != nil {
		cp := *existing
		old, p = &cp, existing
	}
	if err := applyProviderFields(p, input.Fields); err != nil {
		return nil, nil, badInput(err)
	}
	widened, err := integrationsWidened(ctx, s, name, old, p)
	if err != nil {
		return nil, nil, err
	}
	affected := slices.Sorted(maps.Keys(widened))
	if len(affected) > 0 && !input.Force {
		return nil, nil, &userError{fmt.Sprintf("this write lets integrations of provider %q send credentials to hosts they did not reach before (%s); pass force=true to do it anyway",
			name, describeWidening(widened))}
	}
	defer w.renderings.clear()
	if err := putStoredProvider(ctx, s, p); err != nil {
		return nil, nil, err
	}
	return p, affected, nil
}

// delete deletes an operator-defined provider; for an override of a
// built-in, the built-in applies again. It returns the integrations,
// sorted, that used it (nil when none did or there was nothing to
// delete). A built-in without override is a builtinProviderError.
func (w *providerWriter) delete(ctx context.Context, s logical.Storage, input providerInput) ([]string, error) {
	name := input.Name
	stored, err := getStoredProvider(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if stored == nil {
		if catalog.Lookup(name) != nil {
			return nil, &builtinProviderError{name}
		}
		return nil, nil
	}
	// What applies after the delete: the built-in, or nothing.
	after := catalog.Lookup(name)
	widened, err := integrationsWidened(ctx, s, name, stored, after)
	if err != nil {
		return nil, err
	}
	affected := slices.Sorted(maps.Keys(widened))
	if len(affected) > 0 && !input.Force {
		return nil, &userError{fmt.Sprintf("integrations %s use provider %q, and deleting it changes where they send credentials (%s); pass force=true to delete it anyway",
			strings.Join(affected, ", "), name, describeWidening(widened))}
	}
	defer w.renderings.clear()
	if err := deleteStoredProvider(ctx, s, name); err != nil {
		return nil, err
	}
	return affected, nil
}

// applyProviderFields applies the fields a write gives to p and checks
// the result.
func applyProviderFields(p *catalog.Provider, f fieldValues) error {
	if raw, ok := f.Strings["auth_mode"]; ok {
		mode, err := catalog.ParseAuthMode(raw)
		if err != nil {
			return err
		}
		p.AuthMode = mode
	}
	if p.AuthMode == "" {
		return fmt.Errorf("auth_mode is required: one of %s", catalog.JoinModes(catalog.AuthModes))
	}
	if err := applyEndpointFields(&p.EndpointSettings, f); err != nil {
		return err
	}
	if v, ok := f.Bools["tokens_expire"]; ok {
		p.TokensExpire = v
	}
	return p.Validate()
}

// integrationsWidened maps each integration of provider name whose reach
// (see egressWidening) grows when the provider changes from before to
// after (nil: the provider does not exist) to the settings that widen it.
func integrationsWidened(ctx context.Context, s logical.Storage, name string, before, after *catalog.Provider) (map[string][]string, error) {
	names, err := listIntegrations(ctx, s)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, n := range names {
		in, err := getIntegration(ctx, s, n)
		if err != nil {
			return nil, err
		}
		if in == nil || in.Provider != name {
			continue
		}
		if fields := egressWidening(in, before, after); len(fields) > 0 {
			out[n] = fields
		}
	}
	return out, nil
}

// egressWidening lists the settings through which in, merged with after
// instead of before, may send credentials somewhere new: a URL whose host
// changed or appeared, an allowed_hosts pattern added, or a changed schema
// of a connection_config key that chooses a host. A provider that goes away
// (after nil) widens everything: what replaces it is unknown.
func egressWidening(in *integrationEntry, before, after *catalog.Provider) []string {
	if after == nil {
		return []string{"the provider itself"}
	}
	var was catalog.EndpointSettings
	if before != nil {
		was = mergeProvider(in, before).EndpointSettings
	}
	now := mergeProvider(in, after).EndpointSettings
	var out []string
	wasHosts, nowHosts := was.EndpointHosts(), now.EndpointHosts()
	for _, f := range slices.Sorted(maps.Keys(nowHosts)) {
		if nowHosts[f] != "" && nowHosts[f] != wasHosts[f] {
			out = append(out, f)
		}
	}
	for _, pattern := range now.AllowedHosts {
		if !provider.PatternCovered(pattern, was.AllowedHosts) {
			out = append(out, "allowed_hosts")
			break
		}
	}
	wasKeys := was.HostKeys()
	for _, key := range now.HostKeys() {
		switch {
		case !slices.Contains(wasKeys, key):
			// A URL's host now takes a key it did not (a renamed
			// placeholder escapes the old key's schema).
			out = append(out, "host placeholder "+key)
		case !sameJSON(was.ConnectionConfigSchema[key], now.ConnectionConfigSchema[key]):
			out = append(out, "connection_config_schema."+key)
		}
		// Values a redirect or a token response supplies choose the host
		// too once they are copied into that key.
		if slices.Contains(now.CallbackConfig, key) && !slices.Contains(was.CallbackConfig, key) {
			out = append(out, "callback_config."+key)
		}
		if _, ok := now.TokenResponseConfig[key]; ok && now.TokenResponseConfig[key] != was.TokenResponseConfig[key] {
			out = append(out, "token_response_config."+key)
		}
	}
	return out
}

// describeWidening says, per integration, what widens its reach.
func describeWidening(widened map[string][]string) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(widened)) {
		parts = append(parts, fmt.Sprintf("%s: %s", n, strings.Join(widened[n], ", ")))
	}
	return strings.Join(parts, "; ")
}
