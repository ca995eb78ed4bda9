// SPDX-License-Identifier: MPL-2.0

package catalog

import "slices"

// CredentialField is one field of a connection's credentials: the one list
// that connection writes, connection reads, their field schemas (and so
// docs/api.md), credentials_schema and request_headers take their names,
// modes and secrecy from.
type CredentialField struct {
	// Name is the field of connection writes and reads.
	Name string
	// Secret fields are masked in UIs; like every credential they leave the
	// plugin only in response data.
	Secret bool
	// WriteModes are the auth modes whose connection writes set the field.
	WriteModes []AuthMode
	// ReadModes are the auth modes whose connection reads return it.
	ReadModes []AuthMode
	// RawOnly fields are returned by the raw sub-path only: what mints
	// more tokens is read where a policy grants it on purpose.
	RawOnly bool
	// WriteOnly fields are never returned; reads say <Name>_set instead.
	WriteOnly bool
	// SchemaKey names the field in credentials_schema: its Name, one name
	// per field (older entries' camelCase keys are upgraded as they are
	// read, see UpgradeCredentialsSchema); "*" means the
	// field is an object whose own keys the schema describes (CUSTOM),
	// empty that no schema describes it.
	SchemaKey string
	// FormerSchemaKey is the name earlier versions gave the field in
	// credentials_schema, which stored entries may still hold.
	FormerSchemaKey string
	// HeaderVariable names the field in request_headers templates, e.g.
	// ${accessToken}; empty when no header uses it.
	HeaderVariable string
}

// tokenModes are the modes whose connections hold an access token.
var tokenModes = []AuthMode{OAuth2, OAuth2CC, App}

// credentialFields are the credential fields of every auth mode, in the
// order field schemas list them.
var credentialFields = []CredentialField{
	{Name: "access_token", Secret: true, WriteModes: []AuthMode{OAuth2}, ReadModes: tokenModes, HeaderVariable: "accessToken"},
	{Name: "refresh_token", Secret: true, WriteModes: []AuthMode{OAuth2}, ReadModes: tokenModes, RawOnly: true},
	{Name: "expires_at", WriteModes: []AuthMode{OAuth2}, ReadModes: tokenModes},
	{Name: "expires_in", WriteModes: []AuthMode{OAuth2}},
	{Name: "token_type", WriteModes: []AuthMode{OAuth2}, ReadModes: tokenModes},
	{Name: "scopes", WriteModes: []AuthMode{OAuth2}, ReadModes: tokenModes},
	{Name: "client_id", WriteModes: []AuthMode{OAuth2CC}, ReadModes: []AuthMode{OAuth2CC}, SchemaKey: "client_id"},
	{Name: "client_secret", Secret: true, WriteModes: []AuthMode{OAuth2CC}, ReadModes: []AuthMode{OAuth2CC}, WriteOnly: true, SchemaKey: "client_secret"},
	{Name: "api_key", Secret: true, WriteModes: []AuthMode{APIKey}, ReadModes: []AuthMode{APIKey}, SchemaKey: "api_key", FormerSchemaKey: "apiKey", HeaderVariable: "apiKey"},
	{Name: "username", WriteModes: []AuthMode{Basic}, ReadModes: []AuthMode{Basic}, SchemaKey: "username", HeaderVariable: "username"},
	{Name: "password", Secret: true, WriteModes: []AuthMode{Basic}, ReadModes: []AuthMode{Basic}, SchemaKey: "password", HeaderVariable: "password"},
	{Name: "credentials", WriteModes: []AuthMode{Custom}, ReadModes: []AuthMode{Custom}, SchemaKey: "*"},
	{Name: "installation_id", WriteModes: []AuthMode{App}, ReadModes: []AuthMode{App}},
}

// CredentialFields returns the credential fields of every auth mode, in
// the order field schemas list them.
func CredentialFields() []CredentialField {
	out := slices.Clone(credentialFields)
	for i := range out {
		out[i].WriteModes = slices.Clone(out[i].WriteModes)
		out[i].ReadModes = slices.Clone(out[i].ReadModes)
	}
	return out
}

// CredentialFieldNames lists the credential fields a connection write of
// mode accepts.
func (m AuthMode) CredentialFieldNames() []string {
	var names []string
	for _, f := range credentialFields {
		if slices.Contains(f.WriteModes, m) {
			names = append(names, f.Name)
		}
	}
	return names
}

// HasCredentialsSchema reports whether integrations of mode may describe
// their connections' credentials with a credentials_schema.
func (m AuthMode) HasCredentialsSchema() bool {
	_, ok := m.credentialsSchemaKeys()
	return ok
}

// credentialsSchemaKeys are the credentials_schema keys mode may describe;
// ok is false when the mode has no credentials_schema, and keys nil with
// ok true means any key (CUSTOM's own).
func (m AuthMode) credentialsSchemaKeys() (keys []string, ok bool) {
	for _, f := range credentialFields {
		if f.SchemaKey == "" || !slices.Contains(f.WriteModes, m) {
			continue
		}
		if f.SchemaKey == "*" {
			return nil, true
		}
		keys = append(keys, f.SchemaKey)
	}
	return keys, keys != nil
}

// headerVariableModes says which auth modes' connections have a plain
// request_headers variable; false when the name is not one.
func headerVariableModes(name string) ([]AuthMode, bool) {
	for _, f := range credentialFields {
		if f.HeaderVariable == name {
			return f.ReadModes, true
		}
	}
	return nil, false
}

// UpgradeCredentialsSchema renames, in an entry stored by an earlier
// version, the credentials_schema keys of mode's fields that had another
// name (apiKey) to the field's own (api_key). A key already under the new
// name wins. The schema is replaced, not changed in place, as it may be
// shared.
func (es *EndpointSettings) UpgradeCredentialsSchema(mode AuthMode) {
	for _, f := range credentialFields {
		old, ok := es.CredentialsSchema[f.FormerSchemaKey]
		if f.FormerSchemaKey == "" || !ok || !slices.Contains(f.WriteModes, mode) {
			continue
		}
		upgraded := make(ValueSchema, len(es.CredentialsSchema))
		for k, v := range es.CredentialsSchema {
			if k != f.FormerSchemaKey {
				upgraded[k] = v
			}
		}
		if _, has := upgraded[f.SchemaKey]; !has {
			upgraded[f.SchemaKey] = old
		}
		es.CredentialsSchema = upgraded
	}
}
