// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"strings"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// The connect page's forms: which inputs an integration's form has, how a
// posted form becomes the fields of a connection write, and which input an
// error belongs to. The write itself is writeConnection's
// (path_connect_ui_write.go), as for any connection write: the same checks,
// the same store, the same events.

// Form input name prefixes: a credential and a connection config key.
const (
	credentialInputPrefix = "cred."
	configInputPrefix     = "config."
)

// pageInput is one input of an integration's form.
type pageInput struct {
	// Name is the form field; Key the schema key it fills.
	Name, Key string
	Field     catalog.SchemaField
	// Secret inputs are type=password and never rendered back.
	Secret bool
	// ErrorKey is how a write's error names the input, e.g.
	// "connection_config.subdomain" or "api_key".
	ErrorKeys []string
}

// pageForm is the inputs of one integration's form; Unsupported says why
// the page cannot connect it, when it cannot.
type pageForm struct {
	Credentials []pageInput
	Config      []pageInput
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

// formFor lists the inputs of in's form.
func formFor(in *integrationEntry) pageForm {
	var f pageForm
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
			f.Credentials = append(f.Credentials, pageInput{
				Name: credentialInputPrefix + key, Key: key, Field: field,
				Secret:    field.Secret || alwaysSecret[write],
				ErrorKeys: errKeys,
			})
		}
	case catalog.OAuth2:
	default:
		f.Unsupported = fmt.Sprintf("The connect page does not connect %s integrations.", in.AuthMode)
		return f
	}
	for _, key := range in.ConnectionConfigSchema.Keys() {
		field := in.ConnectionConfigSchema[key]
		f.Config = append(f.Config, pageInput{
			Name: configInputPrefix + key, Key: key, Field: field, Secret: field.Secret,
			ErrorKeys: []string{"connection_config." + key},
		})
	}
	return f
}

// postedConfig is the connection config a form gives; empty inputs are
// left out, so that an optional key stays absent and a default applies.
func (f pageForm) postedConfig(data map[string]any) map[string]any {
	cfg := map[string]any{}
	for _, in := range f.Config {
		if v := queryValue(data, in.Name); v != "" {
			cfg[in.Key] = v
		}
	}
	return cfg
}

// connectionWriteFields turns a posted form into the fields of a
// connection write, as `vault write connections/<i>/<id>` takes them.
func (f pageForm) connectionWriteFields(mode catalog.AuthMode, data map[string]any, sess *sessionEntry) map[string]any {
	raw := map[string]any{}
	custom := map[string]any{}
	for _, in := range f.Credentials {
		v := queryValue(data, in.Name)
		if !in.Secret {
			v = strings.TrimSpace(v)
		}
		if v == "" {
			continue
		}
		if mode == catalog.Custom {
			custom[in.Key] = v
		} else {
			raw[credentialFieldOf[mode][in.Key]] = v
		}
	}
	if mode == catalog.Custom {
		raw["credentials"] = custom
	}
	if len(f.Config) > 0 {
		raw["connection_config"] = f.postedConfig(data)
	}
	if !sess.Reconnect {
		if sess.Metadata != nil {
			raw["metadata"] = sess.Metadata
		}
		if len(sess.Tags) > 0 {
			raw["tags"] = sess.Tags
		}
	}
	return raw
}

// formErrors places a write's error next to the input it names, worded
// with the input's label ("API key must be a key that starts with …") rather
// than the field's name; an error that names no input is the form's.
func (f pageForm) formErrors(msg string) (byInput map[string]string, general string) {
	for _, in := range append(append([]pageInput(nil), f.Credentials...), f.Config...) {
		for _, key := range in.ErrorKeys {
			rest, ok := strings.CutPrefix(msg, key)
			if ok && (rest == "" || rest[0] == ' ' || rest[0] == ':') {
				label := in.label()
				rest = strings.TrimSuffix(rest, " ("+in.Field.Title+")")
				return map[string]string{in.Name: label + rest}, ""
			}
		}
	}
	return nil, msg
}

// label is what the page calls an input: its schema title, else its key.
func (in pageInput) label() string {
	if in.Field.Title != "" {
		return in.Field.Title
	}
	return in.Key
}

// keptValues are the posted values rendered back after an error: never a
// secret one.
func (f pageForm) keptValues(data map[string]any) map[string]string {
	out := map[string]string{}
	for _, in := range append(append([]pageInput(nil), f.Credentials...), f.Config...) {
		if !in.Secret {
			out[in.Name] = queryValue(data, in.Name)
		}
	}
	return out
}

// scrubPosted removes every posted secret value from a message, in case a
// provider's error repeats what it was sent: through safetext.Scrub, the
// one scrubber, so an echo in another case or encoding is withheld too.
func (f pageForm) scrubPosted(msg string, data map[string]any) string {
	var secrets []string
	for _, in := range append(append([]pageInput(nil), f.Credentials...), f.Config...) {
		if v := queryValue(data, in.Name); in.Secret && v != "" {
			secrets = append(secrets, v)
		}
	}
	return safetext.Scrub(msg, secrets...)
}
