// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"reflect"
	"testing"
)

// Each mode's writes take its own credential fields.
func TestCredentialFieldNames(t *testing.T) {
	want := map[AuthMode][]string{
		OAuth2:   {"access_token", "refresh_token", "expires_at", "expires_in", "token_type", "scopes"},
		OAuth2CC: {"client_id", "client_secret"},
		APIKey:   {"api_key"},
		Basic:    {"username", "password"},
		Custom:   {"credentials"},
		App:      {"installation_id"},
	}
	for _, m := range AuthModes {
		if got := m.CredentialFieldNames(); !reflect.DeepEqual(got, want[m]) {
			t.Errorf("%s: %v, want %v", m, got, want[m])
		}
	}
}

// Every field that holds a token, key or password is secret, and so is
// masked in UIs.
func TestCredentialSecrets(t *testing.T) {
	secret := map[string]bool{"access_token": true, "refresh_token": true, "client_secret": true, "api_key": true, "password": true}
	for _, f := range CredentialFields() {
		if f.Secret != secret[f.Name] {
			t.Errorf("%s: Secret = %v", f.Name, f.Secret)
		}
		if f.WriteOnly && !f.Secret {
			t.Errorf("%s: write-only but not secret", f.Name)
		}
	}
}

// credentials_schema describes the credentials of the modes whose
// customers bring them, under the names connection writes give them: one
// name per field.
func TestCredentialsSchemaKeys(t *testing.T) {
	for _, f := range CredentialFields() {
		if f.SchemaKey != "" && f.SchemaKey != "*" && f.SchemaKey != f.Name {
			t.Errorf("%s is %s in credentials_schema", f.Name, f.SchemaKey)
		}
	}
	for m, want := range map[AuthMode][]string{OAuth2CC: {"client_id", "client_secret"}, APIKey: {"api_key"}, Basic: {"username", "password"}, Custom: nil} {
		if got, ok := m.credentialsSchemaKeys(); !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, %v", m, got, ok)
		}
	}
	for _, m := range []AuthMode{OAuth2, App} {
		if m.HasCredentialsSchema() {
			t.Errorf("%s has a credentials_schema", m)
		}
	}
}

// A request header variable exists for the modes whose reads return its
// field.
func TestHeaderVariableModes(t *testing.T) {
	for name, want := range map[string][]AuthMode{"accessToken": {OAuth2, OAuth2CC, App}, "apiKey": {APIKey}, "password": {Basic}} {
		if got, ok := headerVariableModes(name); !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, %v", name, got, ok)
		}
	}
	if _, ok := headerVariableModes("refreshToken"); ok {
		t.Error("refreshToken is a header variable")
	}
}

// CredentialFields hands out a copy: a caller cannot change the table.
func TestCredentialFieldsIsACopy(t *testing.T) {
	CredentialFields()[0].WriteModes[0] = App
	if CredentialFields()[0].WriteModes[0] != OAuth2 {
		t.Fatal("the table changed")
	}
}

// An entry stored before credentials_schema took the API's names has its
// camelCase keys renamed as it is read; a key already under the new name
// wins, and other modes' schemas are left alone.
func TestUpgradeCredentialsSchema(t *testing.T) {
	old := EndpointSettings{CredentialsSchema: ValueSchema{"apiKey": {Title: "Key", Pattern: "k_[a-z]+"}}}
	old.UpgradeCredentialsSchema(APIKey)
	if got := old.CredentialsSchema; len(got) != 1 || got["api_key"].Title != "Key" || got["api_key"].Pattern != "k_[a-z]+" {
		t.Fatalf("upgraded = %v", got)
	}
	both := EndpointSettings{CredentialsSchema: ValueSchema{"apiKey": {Title: "old"}, "api_key": {Title: "new"}}}
	both.UpgradeCredentialsSchema(APIKey)
	if got := both.CredentialsSchema; len(got) != 1 || got["api_key"].Title != "new" {
		t.Fatalf("upgraded = %v", got)
	}
	custom := EndpointSettings{CredentialsSchema: ValueSchema{"apiKey": {}}}
	custom.UpgradeCredentialsSchema(Custom)
	if _, kept := custom.CredentialsSchema["apiKey"]; !kept {
		t.Fatal("a CUSTOM schema's own key was renamed")
	}
	var none EndpointSettings
	none.UpgradeCredentialsSchema(APIKey)
	if none.CredentialsSchema != nil {
		t.Fatal("an entry without a schema got one")
	}
}
