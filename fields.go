// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// segment matches one path segment. It is deliberately broader than a valid
// name so that a bad name reaches the handler and gets a 400 that says why,
// instead of an "unsupported path" 404.
func segment(name string) string {
	return fmt.Sprintf("(?P<%s>[^/]+)", name)
}

// connectionPattern matches connections/<integration>/<connection_id>.
var connectionPattern = "connections/" + segment("integration") + "/" + segment("connection_id")

func integrationNameField() *framework.FieldSchema {
	return &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Name of the integration.",
		Required:    true,
	}
}

func connectionIDField() *framework.FieldSchema {
	return &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Connection id, unique within its integration: letters, digits and . _ @ : + = - (up to 255), e.g. a UUID, an e-mail address or org:123.",
		Required:    true,
	}
}

// connectionPathFields are the fields of every connections/<i>/<id>/… path.
func connectionPathFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"integration":   integrationNameField(),
		"connection_id": connectionIDField(),
	}
}

// connectionNames reads and validates the integration and connection id of a
// request path.
func connectionNames(d *framework.FieldData) (string, string, error) {
	integration := pathSegment(d, "integration")
	if err := validateIntegrationName(integration); err != nil {
		return "", "", err
	}
	id := pathSegment(d, "connection_id")
	if err := validateConnectionID(id); err != nil {
		return "", "", err
	}
	return integration, id, nil
}

// pathSegment is a field the path's pattern captures: the framework puts
// the URL's segment in d.Raw, always a string and over any body field of the
// same name, so it is read there without FieldData.Get's conversion by
// reflection, which was a tenth of a connection read's time in the plugin.
// "" when the path captured none.
func pathSegment(d *framework.FieldData, field string) string {
	v, _ := d.Raw[field].(string)
	return v
}

// connectionNamesWithBody is connectionNames for a request with a body (a
// write), which must also be within the payload limit.
func connectionNamesWithBody(req *logical.Request, d *framework.FieldData) (string, string, error) {
	integration, id, err := connectionNames(d)
	if err != nil {
		return "", "", err
	}
	return integration, id, checkPayloadSize(req.Data)
}

// fieldValuesOf is the fields a request gives, as Vault converted them
// (FieldData.GetOk), for a flow to apply (integrations, providers).
func fieldValuesOf(d *framework.FieldData) fieldValues {
	f := fieldValues{
		Strings: map[string]string{}, Lists: map[string][]string{}, Pairs: map[string]map[string]string{},
		Objects: map[string]map[string]any{}, Bools: map[string]bool{}, Ints: map[string]int{},
	}
	for name := range d.Schema {
		v, ok := d.GetOk(name)
		if !ok {
			continue
		}
		switch v := v.(type) {
		case string:
			f.Strings[name] = v
		case []string:
			f.Lists[name] = v
		case map[string]string:
			f.Pairs[name] = v
		case map[string]any:
			f.Objects[name] = v
		case bool:
			f.Bools[name] = v
		case int:
			f.Ints[name] = v
		}
	}
	return f
}

// validateAbsoluteURL accepts http and https URLs with a host.
func validateAbsoluteURL(field, raw string) error {
	return provider.ValidateAbsoluteURL(field, raw)
}

// endpointResponseFields are the settings providers and integrations share.
func endpointResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"auth_mode":                str("OAUTH2, OAUTH2_CC, API_KEY, BASIC, CUSTOM or APP."),
		"auth_url":                 str("Authorization endpoint."),
		"token_url":                str("Token endpoint."),
		"revocation_url":           str("RFC 7009 revocation endpoint."),
		"scopes":                   typed(framework.TypeStringSlice, "Default OAuth scopes."),
		"auth_params":              typed(framework.TypeMap, "Extra query parameters of the authorization request."),
		"token_params":             typed(framework.TypeMap, "Extra form parameters of every token request."),
		"auth_style":               str("How the client authenticates at the token endpoint: auto, header or params."),
		"token_response_config":    typed(framework.TypeMap, "Token response members copied into connection config."),
		"api_base_url":             str("The provider's API (base_url of connection reads); for APP also where installation tokens come from."),
		"request_headers":          typed(framework.TypeMap, "Header name → template: how a client puts the credential on a request."),
		"connection_config_schema": typed(framework.TypeMap, "The connection_config keys connections need, and how they are checked."),
		"credentials_schema":       typed(framework.TypeMap, "OAUTH2_CC, API_KEY, BASIC, CUSTOM: the credential fields, and how they are checked."),
		"scope_separator":          str("How scopes are joined in requests; empty means a space."),
		"refresh_url":              str("Where refresh requests go; empty means token_url."),
		"refresh_params":           typed(framework.TypeMap, "Extra form parameters of refresh requests only."),
		"pkce":                     typed(framework.TypeBool, "Whether the authorization flow uses PKCE."),
		"token_request_format":     str("How token requests encode their body: form (empty) or json."),
		"callback_config":          typed(framework.TypeStringSlice, "Callback query parameters copied into the connection's config."),
		"redirect_uri_value":       str("OAUTH2: what is sent as redirect_uri instead of config's redirect_url (a provider's registered name); empty means redirect_url."),
		"issuer":                   str("OAUTH2: the authorization server's issuer identifier; an iss on the callback (RFC 9207) must equal it."),
		"allowed_hosts":            typed(framework.TypeStringSlice, "Hosts, besides the URLs' literal ones, that a connection's config may point the URLs at."),
	}
}

// fieldShapes say in words what a field of each type takes: a value that
// does not convert is refused with its field's name and one of these,
// never with Vault's conversion text, which quotes the value (a secret put
// in the wrong field would be echoed) and names Go types.
var fieldShapes = map[framework.FieldType]string{
	framework.TypeBool:                 "true or false",
	framework.TypeInt:                  "a whole number",
	framework.TypeInt64:                "a whole number",
	framework.TypeFloat:                "a number",
	framework.TypeDurationSecond:       "a duration such as 90s, 15m or 1h, or a number of seconds",
	framework.TypeSignedDurationSecond: "a duration such as 90s, -15m or 1h, or a number of seconds",
	framework.TypeMap:                  "a JSON object",
	framework.TypeKVPairs:              "an object of string values or a list of key=value pairs",
	framework.TypeStringSlice:          "a list of strings or one comma-separated string",
	framework.TypeCommaStringSlice:     "a list of strings or one comma-separated string",
	framework.TypeSlice:                "a list",
	framework.TypeCommaIntSlice:        "a list of whole numbers",
	framework.TypeTime:                 "a time in RFC 3339 form, such as 2026-01-31T12:00:00Z",
	framework.TypeHeader:               "an object of header names to values",
}

// checkFieldShapes refuses, before any handler runs, a request whose field
// does not convert to its type, naming the field and its shape in words.
func checkFieldShapes(fields map[string]*framework.FieldSchema, raw map[string]any) error {
	d := &framework.FieldData{Raw: raw, Schema: fields}
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		schema, ok := fields[name]
		if !ok {
			continue
		}
		if _, _, err := d.GetOkErr(name); err != nil {
			shape := fieldShapes[schema.Type]
			if shape == "" {
				shape = "a " + schema.Type.String()
			}
			return fmt.Errorf("%s must be %s", name, shape)
		}
	}
	return nil
}
