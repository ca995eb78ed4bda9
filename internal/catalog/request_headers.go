// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/headertemplate"
)

// validateUsage checks connection_config_schema, credentials_schema and
// request_headers against the auth mode.
func (es EndpointSettings) validateUsage(mode AuthMode) error {
	if err := es.ConnectionConfigSchema.Validate("connection_config_schema"); err != nil {
		return err
	}
	if len(es.CredentialsSchema) > 0 {
		allowed, ok := mode.credentialsSchemaKeys()
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
	for _, name := range slices.Sorted(maps.Keys(es.RequestHeaders)) {
		if _, err := ParseRequestHeader(name, es.RequestHeaders[name], mode); err != nil {
			return err
		}
	}
	return nil
}

// ParseRequestHeader parses one request header template and checks that the
// mode's connections have every variable it uses.
func ParseRequestHeader(name, tmpl string, mode AuthMode) (*headertemplate.Template, error) {
	if !headertemplate.HeaderNameRe.MatchString(name) {
		return nil, fmt.Errorf("request_headers: %q is not an HTTP header name", printable(name))
	}
	t, err := headertemplate.Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("request_headers.%s: %s", name, err)
	}
	for _, v := range t.Variables() {
		if modes, plain := headerVariableModes(v); plain && mode != "" && !slices.Contains(modes, mode) {
			return nil, fmt.Errorf("request_headers.%s: ${%s} is not a credential of %s connections", name, v, mode)
		}
		if strings.HasPrefix(v, "credentials.") && mode != "" && mode != Custom {
			return nil, fmt.Errorf("request_headers.%s: ${%s} is for CUSTOM connections", name, v)
		}
	}
	return t, nil
}
