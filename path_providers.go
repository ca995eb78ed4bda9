// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathProviders(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "providers/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "providers",
			},
			Operations:      onlyOperation(logical.ListOperation, b.pathProviderList, "list", listResponseFields("provider names")),
			HelpSynopsis:    "List the providers: the built-in catalog and the operator's own.",
			HelpDescription: "Lists provider names, sorted. key_info gives each one's auth_mode and whether it is built in or defined here.",
		},
		{
			Pattern: "providers/" + segment("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "provider",
			},
			Fields:          providerFields(),
			ExistenceCheck:  b.providerExists,
			Operations:      entryOperations(b.pathProviderRead, b.pathProviderWrite, b.pathProviderDelete, providerResponseFields()),
			HelpSynopsis:    "Read a provider, or add, override or delete an operator-defined one.",
			HelpDescription: pathProviderHelp,
		},
	}
}

func providerFields() map[string]*framework.FieldSchema {
	fields := map[string]*framework.FieldSchema{
		"name": {Type: framework.TypeString, Description: "Name of the provider, e.g. 'zendesk'.", Required: true},
		"tokens_expire": {
			Type:        framework.TypeBool,
			Description: "Whether the provider's access tokens expire.",
		},
		"force": {
			Type:        framework.TypeBool,
			Description: "Allow a write that moves an endpoint (auth_url, token_url, revocation_url, api_base_url) to another host while integrations use it: their client secrets, tokens and app JWTs go to the new host from then on.",
		},
	}
	// The rest mean what they mean on an integration.
	inFields := integrationFields()
	for _, f := range []string{"auth_mode", "auth_url", "token_url", "revocation_url", "scopes", "auth_params", "token_params", "auth_style", "token_response_config", "api_base_url", "scope_separator", "refresh_url", "refresh_params", "pkce", "token_request_format", "callback_config", "connection_config_schema", "credentials_schema", "request_headers", "allowed_hosts"} {
		fields[f] = inFields[f]
	}
	return fields
}

func (b *backend) providerExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	p, err := lookupProvider(ctx, req.Storage, d.Get("name").(string))
	return p != nil, err
}

func (b *backend) pathProviderList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := providerNames(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	keyInfo := make(map[string]any, len(names))
	for _, n := range names {
		// One read: an operator's entry, else the built-in of that name.
		p, err := getStoredProvider(ctx, req.Storage, n)
		if err != nil {
			return nil, err
		}
		builtin := p == nil
		if builtin {
			p = builtinProviders[n]
		}
		if p == nil {
			continue
		}
		keyInfo[n] = map[string]any{"auth_mode": string(p.AuthMode), "builtin": builtin}
	}
	return logical.ListResponseWithInfo(names, keyInfo), nil
}

func (b *backend) pathProviderRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateIntegrationName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	stored, err := getStoredProvider(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	p := stored
	if p == nil {
		if p = builtinProviders[name]; p == nil {
			return nil, nil
		}
	}
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	data := providerResponse(p)
	data["builtin"] = stored == nil
	data["redirect_url"] = cfg.RedirectURL
	data["required_config_keys"] = nonNilStrings(p.requiredConfigKeys())
	resp := &logical.Response{Data: data}
	if cfg.RedirectURL == "" && p.AuthMode == authModeOAuth2 {
		resp.AddWarning("redirect_url is not configured: write this mount's external oauth/callback address to config; it is the redirect URL to register with the provider")
	}
	return resp, nil
}

// providerResponse looks the same for built-in and operator-defined
// providers, so either can be read and copied into the other.
func providerResponse(p *providerEntry) map[string]any {
	return map[string]any{
		"name":                     p.Name,
		"auth_mode":                string(p.AuthMode),
		"auth_url":                 p.AuthURL,
		"token_url":                p.TokenURL,
		"revocation_url":           p.RevocationURL,
		"scopes":                   nonNilStrings(p.Scopes),
		"auth_params":              nonNilMap(p.AuthParams),
		"token_params":             nonNilMap(p.TokenParams),
		"auth_style":               p.AuthStyle,
		"token_response_config":    nonNilMap(p.TokenResponseConfig),
		"api_base_url":             p.APIBaseURL,
		"scope_separator":          p.ScopeSeparator,
		"refresh_url":              p.RefreshURL,
		"refresh_params":           nonNilMap(p.RefreshParams),
		"pkce":                     p.usesPKCE(),
		"token_request_format":     p.TokenRequestFormat,
		"callback_config":          nonNilStrings(p.CallbackConfig),
		"connection_config_schema": nonNilSchema(p.ConnectionConfigSchema),
		"credentials_schema":       nonNilSchema(p.CredentialsSchema),
		"request_headers":          nonNilMap(p.RequestHeaders),
		"allowed_hosts":            nonNilStrings(p.AllowedHosts),
		"tokens_expire":            p.TokensExpire,
		"docs":                     p.Docs,
	}
}

// pathProviderWrite adds a provider or overrides one. An override of a
// built-in starts from the built-in's settings, so a write may change one
// field and keep the rest.
func (b *backend) pathProviderWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateIntegrationName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := checkPayloadSize(req.Data); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	existing, err := lookupProvider(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	p := &providerEntry{Name: name}
	if existing != nil {
		p = existing
	}
	var before map[string]string
	if existing != nil {
		before = existing.endpointHosts()
	}
	if err := applyProviderFields(p, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	var affected []string
	if moved := movedEndpoints(before, p.endpointHosts()); len(moved) > 0 {
		if affected, err = integrationsInheriting(ctx, req.Storage, name, moved); err != nil {
			return nil, err
		}
		if len(affected) > 0 && !d.Get("force").(bool) {
			return logical.ErrorResponse("this write moves %s of provider %q to another host, and integrations %s send credentials there; pass force=true to do it anyway",
				strings.Join(moved, ", "), name, strings.Join(affected, ", ")), nil
		}
	}
	defer b.usageCache.clear()
	if err := putStoredProvider(ctx, req.Storage, p); err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: providerResponse(p)}
	if len(affected) > 0 {
		resp.Data["affected_integrations"] = affected
		resp.AddWarning(fmt.Sprintf("integrations %s now send credentials to the new host of %s", strings.Join(affected, ", "), name))
	}
	return resp, nil
}

// movedEndpoints lists the endpoint fields whose host differs between two
// endpointHosts results; an endpoint that had no URL before is not moved.
func movedEndpoints(before, after map[string]string) []string {
	var moved []string
	for field, host := range before {
		if host != "" && after[field] != host {
			moved = append(moved, field)
		}
	}
	sort.Strings(moved)
	return moved
}

// integrationsInheriting lists the integrations of a provider that take at
// least one of fields from it rather than setting it themselves.
func integrationsInheriting(ctx context.Context, s logical.Storage, providerName string, fields []string) ([]string, error) {
	names, err := listIntegrations(ctx, s)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		in, err := getIntegration(ctx, s, n)
		if err != nil {
			return nil, err
		}
		if in == nil || in.Provider != providerName {
			continue
		}
		own := in.endpointHosts()
		for _, f := range fields {
			if own[f] == "" {
				out = append(out, n)
				break
			}
		}
	}
	return out, nil
}

func applyProviderFields(p *providerEntry, d *framework.FieldData) error {
	if raw, ok := d.GetOk("auth_mode"); ok {
		mode, err := parseAuthMode(raw.(string))
		if err != nil {
			return err
		}
		p.AuthMode = mode
	}
	if p.AuthMode == "" {
		return fmt.Errorf("auth_mode is required: one of %s", joinModes(allAuthModes))
	}
	if err := applyEndpointFields(&p.endpointSettings, d); err != nil {
		return err
	}
	if v, ok := d.GetOk("tokens_expire"); ok {
		p.TokensExpire = v.(bool)
	}
	return validateProvider(p)
}

// pathProviderDelete deletes an operator-defined provider; for an override
// of a built-in, the built-in applies again.
func (b *backend) pathProviderDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	stored, err := getStoredProvider(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if stored == nil {
		if _, builtin := builtinProviders[name]; builtin {
			return nil, logical.CodedError(http.StatusBadRequest, fmt.Sprintf("provider %q is built in and cannot be deleted; write to it to override it", name))
		}
		return nil, nil
	}
	defer b.usageCache.clear()
	return nil, deleteStoredProvider(ctx, req.Storage, name)
}

const pathProviderHelp = `
A provider describes how to talk to one external API: auth_mode,
authorization, token, refresh and revocation URLs, default scopes and how
they are joined (scope_separator), extra parameters (auth_params,
token_params, refresh_params), token_request_format (form or json), pkce,
token_response_config (token response members copied into a connection's
config, e.g. Salesforce's instance_url), callback_config (redirect query
parameters copied likewise, e.g. QuickBooks' realmId) and whether tokens
expire. The engine ships a catalog of common providers; operators add their
own or override a built-in one by writing here (a write to a built-in name
starts from the built-in settings). Deleting an override restores the
built-in.

URLs may contain ${connectionConfig.<key>} placeholders, filled from each
connection's configuration when used:

    https://${connectionConfig.subdomain}.zendesk.com/oauth/tokens

An integration names a provider with provider=<name>; its own non-empty
fields override the provider's.

This is a privileged path: a provider's URLs are where integrations send
their client secrets, refresh tokens and app JWTs. A write that moves an
endpoint to another host while integrations inherit it is refused unless
force=true, and the answer lists the affected integrations. Grant it to
operators only.
`
