// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

func TestSameClientComparesIDAndSecret(t *testing.T) {
	withClient := func(id, secret string) *connectionEntry {
		return &connectionEntry{AuthMode: catalog.OAuth2CC, Credentials: credentials{ClientID: id, ClientSecret: secret}}
	}
	for _, tc := range []struct {
		a, b *connectionEntry
		same bool
	}{
		{withClient("", ""), withClient("", ""), true},
		{withClient("id", "s"), withClient("id", "s"), true},
		{withClient("id", "s"), withClient("id", "other"), false},
		{withClient("id", "s"), withClient("other", "s"), false},
		{withClient("id", "s"), withClient("", ""), false},
	} {
		if got := sameClient(tc.a, tc.b); got != tc.same {
			t.Errorf("sameClient(%+v, %+v) = %v", tc.a.Credentials, tc.b.Credentials, got)
		}
	}
}

func TestHasOwnClientOnlyForClientCredentialsWithAnID(t *testing.T) {
	var none *connectionEntry
	if none.hasOwnClient() {
		t.Error("nil entry has its own client")
	}
	if (&connectionEntry{AuthMode: catalog.OAuth2, Credentials: credentials{ClientID: "id"}}).hasOwnClient() {
		t.Error("an OAUTH2 connection has its own client")
	}
	if (&connectionEntry{AuthMode: catalog.OAuth2CC}).hasOwnClient() {
		t.Error("an OAUTH2_CC connection without client_id has its own client")
	}
	if !(&connectionEntry{AuthMode: catalog.OAuth2CC, Credentials: credentials{ClientID: "id"}}).hasOwnClient() {
		t.Error("an OAUTH2_CC connection with client_id has no client of its own")
	}
}

// A clone's maps and slices are its own: the cache holds the original.
func TestCloneSharesNoMapOrSlice(t *testing.T) {
	c := &connectionEntry{
		Credentials:      credentials{Scopes: []string{"repo"}, Custom: map[string]string{"k": "v"}},
		RawTokenResponse: map[string]any{"scope": "repo"},
		Metadata:         map[string]any{"team": "a"},
		ConnectionConfig: map[string]any{"subdomain": "acme"},
	}
	cp := c.clone()
	cp.Credentials.Scopes[0] = "admin"
	cp.Credentials.Custom["k"] = "changed"
	cp.RawTokenResponse["scope"] = "admin"
	cp.Metadata["team"] = "b"
	cp.ConnectionConfig["subdomain"] = "evil"
	if c.Credentials.Scopes[0] != "repo" || c.Credentials.Custom["k"] != "v" || c.RawTokenResponse["scope"] != "repo" ||
		c.Metadata["team"] != "a" || c.ConnectionConfig["subdomain"] != "acme" {
		t.Fatalf("changing the clone changed the original: %+v", c)
	}
}

func TestSameJSON(t *testing.T) {
	if !sameJSON(map[string]any{"a": 1, "b": []string{"x"}}, map[string]any{"b": []string{"x"}, "a": 1}) {
		t.Error("equal values differ")
	}
	if sameJSON(map[string]any{"a": 1}, map[string]any{"a": "1"}) {
		t.Error("a number and a string are the same")
	}
	if sameJSON(func() {}, func() {}) {
		t.Error("values that do not encode are the same")
	}
}

func TestFormatTime(t *testing.T) {
	if got := formatTime(time.Time{}); got != "" {
		t.Errorf("zero time = %q, want empty", got)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	if got := formatTime(at); got != "2026-03-04T04:06:07Z" {
		t.Errorf("formatTime = %q, want UTC RFC 3339", got)
	}
}

func TestNonNilGivesEmptyValues(t *testing.T) {
	if s := nonNilStrings(nil); s == nil || len(s) != 0 {
		t.Errorf("nonNilStrings(nil) = %#v", s)
	}
	if m := nonNilMap(nil); m == nil || len(m) != 0 {
		t.Errorf("nonNilMap(nil) = %#v", m)
	}
	if m := nonNilObject(nil); m == nil || len(m) != 0 {
		t.Errorf("nonNilObject(nil) = %#v", m)
	}
	if m := nonNilObject(map[string]any{"a": 1}); m["a"] != 1 {
		t.Errorf("nonNilObject changed a value: %#v", m)
	}
}

// An integration and a provider stored when credentials_schema named the
// API key apiKey are read under the API's name (api_key): their reads show
// it, and a connection write is checked against it and refused under the
// name the caller wrote, in words.
func TestOldCamelCaseCredentialsSchemaIsUpgraded(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	old := `{"auth_mode":"API_KEY","credentials_schema":{"apiKey":{"title":"Key","pattern":"k_[a-z]+","secret":true}},"request_headers":{"X-Key":"${apiKey}"},"api_base_url":"https://api.example.test"}`
	for key, raw := range map[string]string{
		"providers/old-prov":         `{"name":"old-prov",` + old[1:],
		"integrations/old-key":       `{"name":"old-key","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z",` + old[1:],
		"integrations/old-from-prov": `{"name":"old-from-prov","provider":"old-prov","auth_mode":"API_KEY","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`,
	} {
		if err := e.storage.Put(ctx, &logical.StorageEntry{Key: key, Value: []byte(raw)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{"integrations/old-key", "integrations/old-from-prov", "providers/old-prov"} {
		schema, _ := e.mustDo(logical.ReadOperation, path, nil)["credentials_schema"].(map[string]any)
		if _, ok := schema["api_key"]; !ok || len(schema) != 1 {
			t.Errorf("%s: credentials_schema = %v, want api_key only", path, schema)
		}
	}
	for _, integration := range []string{"old-key", "old-from-prov"} {
		msg := e.mustFail(logical.UpdateOperation, "connections/"+integration+"/acme", map[string]any{"api_key": "K_WRONG"}, http.StatusBadRequest)
		if !strings.Contains(msg, "credentials.api_key is not in the form this field takes") || strings.Contains(msg, "apiKey") || strings.Contains(msg, "K_WRONG") {
			t.Errorf("%s: error = %q", integration, msg)
		}
		e.mustDo(logical.UpdateOperation, "connections/"+integration+"/acme", map[string]any{"api_key": "k_right"})
		data := e.mustDo(logical.ReadOperation, "connections/"+integration+"/acme", nil)
		if h, _ := data["headers"].(map[string]any); h["X-Key"] != "k_right" {
			t.Errorf("%s: headers = %v", integration, data["headers"])
		}
	}
	// An unrelated update stores the upgraded shape: the old name is gone.
	e.mustDo(logical.UpdateOperation, "integrations/old-key", map[string]any{"api_base_url": "https://api2.example.test"})
	raw, err := e.storage.Get(ctx, "integrations/old-key")
	if err != nil || raw == nil || strings.Contains(string(raw.Value), "apiKey\"") || !strings.Contains(string(raw.Value), `"api_key"`) {
		t.Fatalf("stored after an update: %s (%v)", raw.Value, err)
	}
}
