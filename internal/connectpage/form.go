// SPDX-License-Identifier: MPL-2.0

// Package connectpage is the hosted connect page's view: which inputs an
// integration's form has, how a posted form's values and a write's error
// map onto them, and the page's HTML (one template, one stylesheet, its
// Content-Security-Policy). It knows nothing of Vault: it takes plain
// values (an integration's names and schemas, posted values, errors, a
// session's display values) and returns a Page, bytes and headers, that
// the plugin's handler answers with.
package connectpage

import (
	"fmt"
	"strings"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// Integration is what the page needs of an integration: its names, how it
// connects, its schemas, and for OAUTH2 the authorization URL template and
// allowed hosts its form's policy names.
type Integration struct {
	Name        string
	DisplayName string
	AuthMode    catalog.AuthMode
	// CredentialsSchema and ConnectionConfigSchema describe its inputs.
	CredentialsSchema      catalog.ValueSchema
	ConnectionConfigSchema catalog.ValueSchema
	AuthURL                string
	AllowedHosts           []string
}

// Form input name prefixes: a credential and a connection config key.
const (
	credentialInputPrefix = "cred."
	configInputPrefix     = "config."
)

// Input is one input of an integration's form.
type Input struct {
	// Name is the form field; Key the schema key it fills.
	Name, Key string
	Field     catalog.SchemaField
	// Secret inputs are type=password and never rendered back.
	Secret bool
	// WriteField is the connection write field a credential input sets
	// (api_key, username, …); "" for a CUSTOM credential (a key of the
	// credentials object) and a config input.
	WriteField string
	// ErrorKeys are how a write's error names the input, e.g.
	// "connection_config.subdomain" or "api_key".
	ErrorKeys []string
}

// Form is the inputs of one integration's form; Unsupported says why the
// page cannot connect it, when it cannot.
type Form struct {
	Credentials []Input
	Config      []Input
	Unsupported string
}

// credentialSchemaDefaults are the credential inputs of a mode whose
// integration has no credentials_schema.
var credentialSchemaDefaults = map[catalog.AuthMode]catalog.ValueSchema{
	catalog.APIKey: {"api_key": {Title: "API key", Secret: true}},
	catalog.Basic:  {"username": {Title: "User name"}, "password": {Title: "Password", Secret: true, Optional: true}},
}

// credentialFieldOf maps a credentials_schema key to the connection write
// field that sets it, for the modes whose credentials are fields of their
// own; CUSTOM keys go into the credentials object.
var credentialFieldOf = map[catalog.AuthMode]map[string]string{
	catalog.APIKey:   {"api_key": "api_key"},
	catalog.Basic:    {"username": "username", "password": "password"},
	catalog.OAuth2CC: {"client_id": "client_id", "client_secret": "client_secret"},
}

// alwaysSecret are write fields that are secret whatever a schema says.
var alwaysSecret = map[string]bool{"api_key": true, "password": true, "client_secret": true}

// FormFor lists the inputs of in's form.
func FormFor(in Integration) Form {
	var f Form
	switch in.AuthMode {
	case catalog.APIKey, catalog.Basic, catalog.Custom, catalog.OAuth2CC:
		schema := in.CredentialsSchema
		if len(schema) == 0 {
			schema = credentialSchemaDefaults[in.AuthMode]
		}
		if in.AuthMode == catalog.Custom && len(schema) == 0 {
			f.Unsupported = "This integration does not describe its credentials (credentials_schema), so they cannot be entered here."
			return f
		}
		for _, key := range schema.Keys() {
			field := schema[key]
			errKeys := []string{"credentials." + key}
			write := ""
			if in.AuthMode != catalog.Custom {
				write = credentialFieldOf[in.AuthMode][key]
				if write == "" {
					continue // not a credential this mode stores
				}
				errKeys = append(errKeys, write)
			}
			f.Credentials = append(f.Credentials, Input{
				Name: credentialInputPrefix + key, Key: key, Field: field,
				Secret:     field.Secret || alwaysSecret[write],
				WriteField: write,
				ErrorKeys:  errKeys,
			})
		}
	case catalog.OAuth2:
	default:
		f.Unsupported = fmt.Sprintf("The connect page does not connect %s integrations.", in.AuthMode)
		return f
	}
	for _, key := range in.ConnectionConfigSchema.Keys() {
		field := in.ConnectionConfigSchema[key]
		f.Config = append(f.Config, Input{
			Name: configInputPrefix + key, Key: key, Field: field, Secret: field.Secret,
			ErrorKeys: []string{"connection_config." + key},
		})
	}
	return f
}

// inputs are the form's inputs, credentials first.
func (f Form) inputs() []Input {
	return append(append([]Input(nil), f.Credentials...), f.Config...)
}

// postedValue is one posted value as a request's data holds a form's: a
// string, or the first of several.
func postedValue(posted map[string]any, name string) string {
	switch v := posted[name].(type) {
	case string:
		return v
	case []string:
		if len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// PostedConfig is the connection config a form gives; empty inputs are
// left out, so that an optional key stays absent and a default applies.
func (f Form) PostedConfig(posted map[string]any) map[string]any {
	cfg := map[string]any{}
	for _, in := range f.Config {
		if v := postedValue(posted, in.Name); v != "" {
			cfg[in.Key] = v
		}
	}
	return cfg
}

// Errors places a write's error next to the input it names, worded with
// the input's label ("API key must be a key that starts with …") rather
// than the field's name; an error that names no input is the form's.
func (f Form) Errors(msg string) (byInput map[string]string, general string) {
	for _, in := range f.inputs() {
		for _, key := range in.ErrorKeys {
			rest, ok := strings.CutPrefix(msg, key)
			if ok && (rest == "" || rest[0] == ' ' || rest[0] == ':') {
				label := in.Label()
				rest = strings.TrimSuffix(rest, " ("+in.Field.Title+")")
				return map[string]string{in.Name: label + rest}, ""
			}
		}
	}
	return nil, msg
}

// Label is what the page calls an input: its schema title, else its key.
func (in Input) Label() string {
	if in.Field.Title != "" {
		return in.Field.Title
	}
	return in.Key
}

// KeptValues are the posted values rendered back after an error: never a
// secret one.
func (f Form) KeptValues(posted map[string]any) map[string]string {
	out := map[string]string{}
	for _, in := range f.inputs() {
		if !in.Secret {
			out[in.Name] = postedValue(posted, in.Name)
		}
	}
	return out
}

// ScrubPosted removes every posted secret value from a message, in case a
// provider's error repeats what it was sent: through safetext.Scrub, the
// one scrubber, so an echo in another case or encoding is withheld too.
func (f Form) ScrubPosted(msg string, posted map[string]any) string {
	var secrets []string
	for _, in := range f.inputs() {
		if v := postedValue(posted, in.Name); in.Secret && v != "" {
			secrets = append(secrets, v)
		}
	}
	return safetext.Scrub(msg, secrets...)
}
