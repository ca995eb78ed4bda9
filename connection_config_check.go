// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// The egress rule (see internal/provider's HostPolicy) is enforced by the
// provider client on every request; this file applies the same rule where
// a connection's config is written, so that a config that would point a
// URL at a host outside the integration's policy is a 400 naming its key,
// not a failure at the next refresh.

// endpointTemplates are an integration's URL templates and declared
// allowed_hosts, as the provider client takes them.
func (in *integrationEntry) endpointTemplates() provider.Endpoints {
	return provider.Endpoints{
		Auth:         in.AuthURL,
		Token:        in.TokenURL,
		Refresh:      in.RefreshURL,
		Revocation:   in.RevocationURL,
		APIBase:      in.APIBaseURL,
		AllowedHosts: in.AllowedHosts,
		// Outside APP, api_base_url is only base_url on connection reads.
		ClientAPIBase: in.AuthMode != catalog.App,
	}
}

// checkConnectionConfig is the one check of a connection config that every
// surface writing one runs (connection create and update, …/config write
// and patch, import, authorize, callback_config, token_response_config):
// the integration's connection_config_schema, then the egress rule over
// every URL the config fills in.
func (in *integrationEntry) checkConnectionConfig(field string, cfg map[string]any) error {
	if err := in.ConnectionConfigSchema.Check(field, cfg); err != nil {
		return err
	}
	if err := in.checkParamConfig(cfg); err != nil {
		return err
	}
	return in.checkConfigHosts(cfg)
}

// checkParamConfig checks the values cfg gives the placeholders of the
// integration's token_params and refresh_params, as token requests would:
// a bad value is a 400 naming its key now, not a failed refresh later.
func (in *integrationEntry) checkParamConfig(cfg map[string]any) error {
	cfg = in.ConnectionConfigSchema.WithDefaults(cfg)
	if err := provider.CheckParamValues("token_params", in.TokenParams, cfg); err != nil {
		return err
	}
	return provider.CheckParamValues("refresh_params", in.RefreshParams, cfg)
}

// checkConfigHosts applies the egress rule alone, for configs whose schema
// was checked already or is not the writer's (values a provider returned).
func (in *integrationEntry) checkConfigHosts(cfg map[string]any) error {
	return provider.CheckConfigHosts(in.endpointTemplates(), in.ConnectionConfigSchema.WithDefaults(cfg))
}
