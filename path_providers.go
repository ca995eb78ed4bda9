// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
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
			Description: "Allow a write or delete that lets integrations using this provider send credentials to hosts they did not reach before: an endpoint (auth, token, refresh, revocation or API URL) moved or added on another host, allowed_hosts widened, the schema of a host-choosing connection_config key changed, or the provider deleted. Their client secrets, tokens and app JWTs may go to the new hosts from then on.",
		},
	}
	// The rest mean what they mean on an integration.
	inFields := integrationFields()
	for _, f := range []string{"auth_mode", "auth_url", "token_url", "revocation_url", "scopes", "auth_params", "token_params", "auth_style", "token_response_config", "api_base_url", "scope_separator", "refresh_url", "refresh_params", "pkce", "token_request_format", "callback_config", "redirect_uri_value", "issuer", "connection_config_schema", "credentials_schema", "request_headers", "allowed_hosts"} {
		fields[f] = inFields[f]
	}
	return fields
}

func (b *backend) providerExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	p, err := lookupProvider(ctx, req.Storage, d.Get("name").(string))
	return existence(p != nil, err)
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
			p = catalog.Lookup(n)
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
		if p = catalog.Lookup(name); p == nil {
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
	data["required_config_keys"] = nonNilStrings(p.RequiredConfigKeys())
	resp := &logical.Response{Data: data}
	if cfg.RedirectURL == "" && p.AuthMode == catalog.OAuth2 {
		resp.AddWarning("redirect_url is not configured: write this mount's external oauth/callback address to config; it is the redirect URL to register with the provider")
	}
	return resp, nil
}

// providerResponse looks the same for built-in and operator-defined
// providers, so either can be read and copied into the other. Like an
// integration read it shows only the fields of the provider's auth mode:
// pkce on an API-key provider would read as a setting it has.
func providerResponse(p *catalog.Provider) map[string]any {
	data := allProviderFields(p)
	for _, f := range catalog.IntegrationFieldsNotFor(p.AuthMode, data) {
		delete(data, f)
	}
	return data
}

// allProviderFields is every setting of a provider, whatever its mode.
func allProviderFields(p *catalog.Provider) map[string]any {
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
		"pkce":                     p.UsesPKCE(),
		"token_request_format":     p.TokenRequestFormat,
		"callback_config":          nonNilStrings(p.CallbackConfig),
		"redirect_uri_value":       p.RedirectURIValue,
		"issuer":                   p.Issuer,
		"connection_config_schema": p.ConnectionConfigSchema.JSONObject(),
		"credentials_schema":       p.CredentialsSchema.JSONObject(),
		"request_headers":          nonNilMap(p.RequestHeaders),
		"allowed_hosts":            nonNilStrings(p.AllowedHosts),
		"tokens_expire":            p.TokensExpire,
		"docs":                     p.Docs,
		"checked":                  p.Checked,
	}
}

// pathProviderWrite adds a provider or overrides one: the request's fields
// as a providerInput, written by the providerWriter.
func (b *backend) pathProviderWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateIntegrationName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := checkPayloadSize(req.Data); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	p, affected, err := b.providerWriter.write(ctx, req.Storage, providerInput{Name: name, Fields: fieldValuesOf(d), Force: d.Get("force").(bool)})
	if err != nil {
		return respondError(err)
	}
	resp := &logical.Response{Data: providerResponse(p)}
	if len(affected) > 0 {
		resp.Data["affected_integrations"] = affected
		resp.AddWarning(fmt.Sprintf("integrations %s may now send credentials to new hosts of %s", strings.Join(affected, ", "), name))
	}
	return resp, nil
}

// pathProviderDelete deletes an operator-defined provider, through the
// providerWriter.
func (b *backend) pathProviderDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	affected, err := b.providerWriter.delete(ctx, req.Storage, providerInput{Name: name, Force: d.Get("force").(bool)})
	var builtin *builtinProviderError
	if errors.As(err, &builtin) {
		return nil, logical.CodedError(http.StatusBadRequest, err.Error())
	}
	if err != nil {
		return respondError(err)
	}
	if len(affected) == 0 {
		return nil, nil
	}
	resp := &logical.Response{Data: map[string]any{"affected_integrations": affected}}
	resp.AddWarning(fmt.Sprintf("integrations %s used provider %q", strings.Join(affected, ", "), name))
	return resp, nil
}

const pathProviderHelp = `
A provider describes how to talk to one external API: auth_mode,
authorization, token, refresh and revocation URLs, default scopes and how
they are joined (scope_separator), extra parameters (auth_params,
token_params, refresh_params), token_request_format (form or json), pkce,
token_response_config (token response members copied into a connection's
config, e.g. Salesforce's instance_url), callback_config (redirect query
parameters copied likewise, e.g. QuickBooks' realmId), redirect_uri_value
(sent as redirect_uri where a provider wants a registered name, eBay's
RuName) and whether tokens expire. The engine ships a catalog of common providers; operators add their
own or override a built-in one by writing here (a write to a built-in name
starts from the built-in settings). Deleting an override restores the
built-in.

URLs may contain ${connectionConfig.<key>} placeholders, filled from each
connection's configuration when used:

    https://${connectionConfig.subdomain}.zendesk.com/oauth/tokens

A placeholder may sit in the host (alone or with text in a label, in one
label or several), in a path segment (with text around it), or in the
query string, where its value is escaped. None may set the scheme, the
user information or the port, or sit in the fragment; only api_base_url
outside APP may start with one that holds a whole URL. token_params and
refresh_params values take placeholders too.

An integration names a provider with provider=<name>; its own non-empty
fields override the provider's.

This is a privileged path: a provider's URLs are where integrations send
their client secrets, refresh tokens and app JWTs. A write that moves an
endpoint to another host while integrations inherit it is refused unless
force=true, and the answer lists the affected integrations. Grant it to
operators only.
`

// providerResponseFields are what a provider read returns.
func providerResponseFields() map[string]*framework.FieldSchema {
	f := endpointResponseFields()
	f["name"] = str("Name of the provider.")
	f["tokens_expire"] = typed(framework.TypeBool, "Whether the provider's access tokens expire.")
	f["docs"] = str("The provider's documentation of these endpoints.")
	f["checked"] = str("Built-in providers: the day (YYYY-MM-DD) the entry was last checked against its documentation.")
	f["redirect_url"] = str("The redirect URL to register with the provider's OAuth app: this mount's oauth/callback (config redirect_url); empty until configured.")
	f["required_config_keys"] = typed(framework.TypeStringSlice, "The connection_config keys every connection must have: required keys of connection_config_schema and placeholders of the URLs' fallbacks.")
	f["builtin"] = typed(framework.TypeBool, "Whether this is the built-in catalog's entry (not an operator's definition or override).")
	f["affected_integrations"] = typed(framework.TypeStringSlice, "On a forced write that moved an endpoint: the integrations that now send credentials to the new host.")
	return f
}
