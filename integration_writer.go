// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// integrationWriter is the one door for writing and deleting an
// integration: the handler turns the request into an integrationInput,
// the writer checks it against the integration as stored and its
// provider, and stores it under the integration's lock (the store's), so
// that no connection create interleaves with it.
type integrationWriter struct {
	store        *connectionStore
	pendingAuths *pendingAuthorizationStore
	// renderings are dropped after every change: they are built from
	// integrations and their providers.
	renderings *renderingCache
	now        func() time.Time
}

// integrationInput is one integration write as plain values: its name
// and the fields the request gives.
type integrationInput struct {
	Name   string
	Fields fieldValues
}

// fieldValues are the fields a write gives, as Vault converted them
// (FieldData.GetOk), in one map per kind: a field is given when its
// kind's map holds it. Strings are untrimmed.
type fieldValues struct {
	Strings map[string]string
	Lists   map[string][]string
	Pairs   map[string]map[string]string
	Objects map[string]map[string]any
	Bools   map[string]bool
	// Ints holds whole numbers and durations (in seconds).
	Ints map[string]int
}

// names are the given fields, as catalog's checks of a write's fields
// take them.
func (f fieldValues) names() map[string]any {
	out := map[string]any{}
	for _, kind := range []map[string]any{anyKeys(f.Strings), anyKeys(f.Lists), anyKeys(f.Pairs), anyKeys(f.Objects), anyKeys(f.Bools), anyKeys(f.Ints)} {
		maps.Copy(out, kind)
	}
	return out
}

// anyKeys is m's keys with nil values.
func anyKeys[V any](m map[string]V) map[string]any {
	out := make(map[string]any, len(m))
	for k := range m {
		out[k] = nil
	}
	return out
}

// setString sets *dst to a string field the write gives, trimmed.
func (f fieldValues) setString(field string, dst *string) {
	if v, ok := f.Strings[field]; ok {
		*dst = strings.TrimSpace(v)
	}
}

// write creates or updates the integration input names, under its lock:
// the result of applying the input to the integration as stored. Errors
// of the input are userErrors; nothing is changed on any error.
func (w *integrationWriter) write(ctx context.Context, s logical.Storage, input integrationInput) (*integrationEntry, error) {
	defer w.store.LockIntegration(input.Name)()

	existing, err := getIntegration(ctx, s, input.Name)
	if err != nil {
		return nil, err
	}
	in, err := applyIntegrationInput(ctx, s, existing, input, w.now())
	if err != nil {
		return nil, err
	}
	defer w.renderings.clear()
	if err := putIntegration(ctx, s, in); err != nil {
		return nil, err
	}
	return in, nil
}

// delete deletes integration name with its pending authorizations, and
// with its connections when force is set; without it, one that has
// connections is refused (errHasConnections).
func (w *integrationWriter) delete(ctx context.Context, s logical.Storage, name string, force bool) error {
	// An integration a newer version wrote is refused before anything of
	// it is deleted; one that no longer decodes can still be deleted.
	if _, err := getIntegration(ctx, s, name); errors.Is(err, errNewerFormat) {
		return err
	}
	return w.store.DeleteIntegration(ctx, s, name, force, func() error {
		if err := w.pendingAuths.DeleteOfIntegration(ctx, s, name); err != nil {
			return err
		}
		defer w.renderings.clear()
		return deleteIntegration(ctx, s, name)
	})
}

// applyIntegrationInput returns the integration that results from
// applying the input to existing (nil on create). Omitted fields keep
// their values. Validation errors are userErrors; others come from
// storage. Nothing has been changed either way.
func applyIntegrationInput(ctx context.Context, s logical.Storage, existing *integrationEntry, input integrationInput, now time.Time) (*integrationEntry, error) {
	f := input.Fields
	var in integrationEntry
	if existing != nil {
		in = *existing
	} else {
		in = integrationEntry{Name: input.Name, CreatedAt: now}
	}

	f.setString("provider", &in.Provider)
	var prov *catalog.Provider
	if in.Provider != "" {
		p, err := lookupProvider(ctx, s, in.Provider)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, &userError{fmt.Sprintf("provider %q is not in the catalog: see 'vault list connect/providers'", printable(in.Provider))}
		}
		prov = p
	}
	if err := applyAuthMode(&in, existing, prov, f); err != nil {
		return nil, badInput(err)
	}
	if bad := catalog.IntegrationFieldsNotFor(in.AuthMode, f.names()); len(bad) > 0 {
		return nil, &userError{fmt.Sprintf("%s to auth_mode %s", catalog.NotApply(bad), in.AuthMode)}
	}
	if v, ok := f.Lists["allowed_scopes"]; ok {
		in.AllowedScopes = v
	}
	if v, ok := f.Strings["display_name"]; ok {
		name, err := checkDisplayName(v)
		if err != nil {
			return nil, badInput(err)
		}
		in.DisplayName = name
	}

	f.setString("client_id", &in.ClientID)
	f.setString("client_secret", &in.ClientSecret)
	f.setString("app_id", &in.AppID)
	if err := applyEndpointFields(&in.EndpointSettings, f); err != nil {
		return nil, badInput(err)
	}
	if err := applyProxyFields(&in.Proxy, f); err != nil {
		return nil, badInput(err)
	}
	if _, ok := f.Bools["pkce"]; ok {
		in.DisablePKCE = false // the new setting, in endpointSettings, says it
	}
	if v, ok := f.Strings["private_key"]; ok {
		if _, err := provider.ParseAppPrivateKey(v); err != nil {
			return nil, badInput(err)
		}
		in.PrivateKey = v
	}

	effective := &in
	if prov != nil {
		effective = mergeProvider(&in, prov)
	}
	if effective.AuthMode.IsOAuth() && effective.AuthStyle == "" {
		in.AuthStyle = "auto"
		effective.AuthStyle = "auto"
	}
	if err := validateIntegration(effective); err != nil {
		return nil, badInput(err)
	}
	if err := effective.Proxy.validate(slices.Collect(maps.Keys(effective.RequestHeaders))); err != nil {
		return nil, badInput(err)
	}
	in.UpdatedAt = now
	return &in, nil
}

// applyEndpointFields sets the endpoint settings a write (of an
// integration or a provider) gives; omitted ones keep their values.
func applyEndpointFields(es *catalog.EndpointSettings, f fieldValues) error {
	for field, dst := range map[string]*string{
		"auth_url": &es.AuthURL, "token_url": &es.TokenURL, "revocation_url": &es.RevocationURL,
		"auth_style": &es.AuthStyle, "api_base_url": &es.APIBaseURL, "refresh_url": &es.RefreshURL,
		"redirect_uri_value": &es.RedirectURIValue, "issuer": &es.Issuer,
	} {
		f.setString(field, dst)
	}
	if v, ok := f.Lists["scopes"]; ok {
		es.Scopes = v
	}
	if v, ok := f.Strings["scope_separator"]; ok {
		es.ScopeSeparator = v // not trimmed: a space is a separator
	}
	if v, ok := f.Bools["pkce"]; ok {
		on := v
		es.PKCE = &on
	}
	f.setString("token_request_format", &es.TokenRequestFormat)
	if v, ok := f.Lists["callback_config"]; ok {
		es.CallbackConfig = v
	}
	if v, ok := f.Lists["allowed_hosts"]; ok {
		es.AllowedHosts = v
	}
	for field, dst := range map[string]*map[string]string{
		"auth_params": &es.AuthParams, "token_params": &es.TokenParams, "token_response_config": &es.TokenResponseConfig,
		"refresh_params": &es.RefreshParams, "request_headers": &es.RequestHeaders,
	} {
		if v, ok := f.Pairs[field]; ok {
			*dst = v
		}
	}
	for field, dst := range map[string]*catalog.ValueSchema{
		"connection_config_schema": &es.ConnectionConfigSchema, "credentials_schema": &es.CredentialsSchema,
	} {
		if v, ok := f.Objects[field]; ok {
			s, err := catalog.DecodeValueSchema(field, v)
			if err != nil {
				return err
			}
			*dst = s
		}
	}
	return nil
}

// applyProxyFields sets the proxy settings a write gives; omitted ones
// keep their values. Methods are upper-cased; bounds are checked by
// proxySettings.validate.
func applyProxyFields(p *proxySettings, f fieldValues) error {
	if v, ok := f.Lists["proxy_paths"]; ok {
		p.Paths = v
	}
	if v, ok := f.Lists["proxy_methods"]; ok {
		p.Methods = nil
		for _, m := range v {
			p.Methods = append(p.Methods, strings.ToUpper(m))
		}
	}
	if v, ok := f.Lists["proxy_headers"]; ok {
		p.Headers = v
	}
	if v, ok := f.Ints["proxy_retries"]; ok {
		n := v
		p.Retries = &n
	}
	if v, ok := f.Ints["proxy_retry_after_max"]; ok {
		p.RetryAfterMax = time.Duration(v) * time.Second
		if p.RetryAfterMax == 0 {
			return fmt.Errorf("proxy_retry_after_max must be at least 1s; proxy_retries=0 turns retries off")
		}
	}
	if v, ok := f.Ints["proxy_max_response"]; ok {
		p.MaxResponse = int64(v)
		if p.MaxResponse < 1 {
			return fmt.Errorf("proxy_max_response must be between 1 and %d bytes", maxProxyMaxResponse)
		}
	}
	if v, ok := f.Ints["proxy_timeout"]; ok {
		p.Timeout = time.Duration(v) * time.Second
		if p.Timeout < time.Second {
			return fmt.Errorf("proxy_timeout must be between 1s and %s", maxProxyTimeout)
		}
	}
	return nil
}

// applyAuthMode sets the auth mode from the write or the provider. It is
// fixed once the integration exists: its connections hold credentials of
// that mode.
func applyAuthMode(in, existing *integrationEntry, provider *catalog.Provider, f fieldValues) error {
	if raw, ok := f.Strings["auth_mode"]; ok {
		mode, err := catalog.ParseAuthMode(raw)
		if err != nil {
			return err
		}
		in.AuthMode = mode
	} else if existing == nil && provider != nil {
		in.AuthMode = provider.AuthMode
	}
	if in.AuthMode == "" {
		return fmt.Errorf("auth_mode is required (or a provider that implies it): one of %s", catalog.JoinModes(catalog.AuthModes))
	}
	if existing != nil && in.AuthMode != existing.AuthMode {
		return fmt.Errorf("auth_mode cannot be changed from %s to %s: delete the integration and create it again", existing.AuthMode, in.AuthMode)
	}
	if provider != nil && in.AuthMode != provider.AuthMode {
		return fmt.Errorf("auth_mode %s does not match provider %q, which uses %s", in.AuthMode, provider.Name, provider.AuthMode)
	}
	return nil
}

// validateIntegration checks an integration with its provider's settings
// filled in: what each auth mode needs, and well-formed URLs.
func validateIntegration(in *integrationEntry) error {
	var required []string
	switch in.AuthMode {
	case catalog.OAuth2:
		required = []string{"client_id"}
	case catalog.OAuth2CC:
		required = clientCredentialsRequired(in)
	case catalog.App:
		required = []string{"app_id", "private_key"}
	}
	values := map[string]string{
		"client_id":     in.ClientID,
		"client_secret": in.ClientSecret,
		"app_id":        in.AppID,
		"private_key":   in.PrivateKey,
	}
	for _, f := range required {
		if values[f] == "" {
			return fmt.Errorf("%s is required for auth_mode %s", f, in.AuthMode)
		}
	}
	return in.EndpointSettings.Validate(in.AuthMode)
}

// clientCredentialsRequired lists what an OAUTH2_CC integration needs of
// its own client: id and secret, as the default of its connections; none
// when its credentials_schema requires each connection to bring its own
// (every customer creates an API client in the provider's console), unless
// it names one anyway, which then needs both halves.
func clientCredentialsRequired(in *integrationEntry) []string {
	required := in.CredentialsSchema.Required()
	eachConnectionBringsOne := slices.Contains(required, "client_id") && slices.Contains(required, "client_secret")
	if eachConnectionBringsOne && in.ClientID == "" && in.ClientSecret == "" {
		return nil
	}
	return []string{"client_id", "client_secret"}
}
