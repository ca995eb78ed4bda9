// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// writeFields is a connection write's request data as the writer gets it
// from its handler.
func writeFields(t *testing.T, raw map[string]any) connectionInput {
	t.Helper()
	in, err := connectionInputOf(&framework.FieldData{Raw: raw, Schema: connectionFields()})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// A connection's own client: id and secret go together, a new id never
// goes with the previous client's secret, and both empty hand the
// connection back to the integration's client.
func TestApplyConnectionClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		before  credentials
		raw     map[string]any
		wantErr string // empty: accepted
		want    credentials
	}{
		{"both", credentials{}, map[string]any{"client_id": "id", "client_secret": "s"}, "", credentials{ClientID: "id", ClientSecret: "s"}},
		{"new id without its secret", credentials{ClientID: "old", ClientSecret: "old-s"}, map[string]any{"client_id": "new"}, "client_secret is required with a new client_id", credentials{}},
		{"id alone", credentials{}, map[string]any{"client_id": "id"}, "client_secret is required with a new client_id", credentials{}},
		{"secret alone", credentials{}, map[string]any{"client_secret": "s"}, "client_id is required with client_secret", credentials{}},
		{"a new secret for the same id", credentials{ClientID: "id", ClientSecret: "s"}, map[string]any{"client_secret": "s2"}, "", credentials{ClientID: "id", ClientSecret: "s2"}},
		{"both empty: the integration's", credentials{ClientID: "id", ClientSecret: "s"}, map[string]any{"client_id": "", "client_secret": ""}, "", credentials{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cr := tc.before
			err := applyConnectionClient(&cr, writeFields(t, tc.raw))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			case tc.wantErr == "" && (cr.ClientID != tc.want.ClientID || cr.ClientSecret != tc.want.ClientSecret):
				t.Fatalf("client = %q/%q, want %q/%q", cr.ClientID, cr.ClientSecret, tc.want.ClientID, tc.want.ClientSecret)
			}
		})
	}
}

// Imported tokens: one expiry, a new access token drops the old expiry, and
// the type defaults to Bearer.
func TestApplyOAuthImport(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cr := credentials{AccessToken: "old", ExpiresAt: now.Add(time.Hour)}
	if err := applyOAuthImport(&cr, writeFields(t, map[string]any{"access_token": "new"}), now); err != nil {
		t.Fatal(err)
	}
	if cr.AccessToken != "new" || !cr.ExpiresAt.IsZero() || cr.TokenType != "Bearer" {
		t.Fatalf("after a new access token: %+v", cr)
	}
	if err := applyOAuthImport(&cr, writeFields(t, map[string]any{"expires_in": 60}), now); err != nil || !cr.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("expires_in: %v, %v", cr.ExpiresAt, err)
	}
	err := applyOAuthImport(&cr, writeFields(t, map[string]any{"expires_in": 60, "expires_at": "2026-01-02T04:00:00Z"}), now)
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("both expiries: %v", err)
	}
	err = applyOAuthImport(&cr, writeFields(t, map[string]any{"expires_at": "tomorrow\x00"}), now)
	if err == nil || strings.Contains(err.Error(), "\x00") || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("a bad expires_at: %v", err)
	}
	empty := credentials{}
	if err := applyOAuthImport(&empty, writeFields(t, map[string]any{"refresh_token": "r"}), now); err == nil || !strings.Contains(err.Error(), "access_token is required") {
		t.Fatalf("no access token: %v", err)
	}
}

// Writes are checked against the schemas: a missing required key, or a
// value failing pattern or enum, is a 400 naming the key, and nothing
// changes.
func TestConnectionSchemasAreEnforced(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "providers/sub", map[string]any{
		"auth_mode": "OAUTH2",
		"auth_url":  "https://${connectionConfig.subdomain}.sub.test/authorize",
		"token_url": "https://${connectionConfig.subdomain}.sub.test/token",
		"connection_config_schema": map[string]any{
			"subdomain": map[string]any{"type": "string", "pattern": "[a-z0-9-]+"},
			"tier":      map[string]any{"type": "string", "enum": []any{"free", "pro"}, "default_value": "free"},
			"seats":     map[string]any{"type": "number", "optional": true},
		},
	})
	e.mustDo(logical.CreateOperation, "integrations/s", map[string]any{"provider": "sub", "client_id": "cid"})
	e.mustDo(logical.CreateOperation, "providers/basic", map[string]any{
		"auth_mode":          "BASIC",
		"credentials_schema": map[string]any{"username": map[string]any{"pattern": "[^@]+@[^@]+"}, "password": map[string]any{"secret": true}},
	})
	e.mustDo(logical.CreateOperation, "integrations/b", map[string]any{"provider": "basic"})
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": "https://vault.test/v1/connect/oauth/callback", "oauth_completion": "callback"})
	e.mustDo(logical.CreateOperation, "connections/s/acme", map[string]any{"access_token": "at", "connection_config": map[string]any{"subdomain": "acme"}})

	before := e.snapshot()
	e.assertRejected([]rejection{
		{"authorize without the key", "connections/s/new/authorize", map[string]any{}, "connection_config.subdomain is required"},
		{"authorize with a bad value", "connections/s/new/authorize", map[string]any{"connection_config": map[string]any{"subdomain": "a.b/c"}}, "connection_config.subdomain is not in the form this field takes"},
		{"create without the key", "connections/s/other", map[string]any{"access_token": "at"}, "connection_config.subdomain is required"},
		{"create outside the enum", "connections/s/other", map[string]any{"access_token": "at", "connection_config": map[string]any{"subdomain": "x", "tier": "gold"}}, "connection_config.tier must be one of"},
		{"not a number", "connections/s/acme", map[string]any{"connection_config": map[string]any{"subdomain": "acme", "seats": "many"}}, "connection_config.seats must be a number"},
		{"config write drops it", "connections/s/acme/config", map[string]any{"tier": "pro"}, "connection_config.subdomain is required"},
		{"config patch removes it", "connections/s/acme/config", map[string]any{"subdomain": nil}, "connection_config.subdomain is required"},
		{"credential pattern", "connections/b/c1", map[string]any{"username": "no-at-sign", "password": "p"}, "credentials.username is not in the form this field takes"},
		{"password required", "connections/b/c1", map[string]any{"username": "a@b"}, "credentials.password is required"},
	}, "secret-marker-never-sent")
	e.assertUnchanged(before)

	// Valid edits pass; the default fills nothing it need not.
	e.mustDo(logical.PatchOperation, "connections/s/acme/config", map[string]any{"seats": 12})
	e.mustDo(logical.CreateOperation, "connections/b/c1", map[string]any{"username": "a@b", "password": "p"})
	if out := e.mustDo(logical.UpdateOperation, "connections/s/new/authorize", map[string]any{"connection_config": map[string]any{"subdomain": "newco"}}); !strings.Contains(out["authorization_url"].(string), "https://newco.sub.test/authorize?") {
		t.Fatalf("authorize = %v", out)
	}
}

// Which fields a write gives is what its body names, a null value
// included, through the API and an import item alike: a null expires_in
// is a field an API_KEY connection refuses, and an OAUTH2 write accepts
// beside expires_at (null reads as not given, so it is not a second
// expiry); a null metadata and empty tags clear them.
func TestConnectionInputGivesWhatTheBodyNames(t *testing.T) {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	e.mustDo(logical.CreateOperation, "integrations/github", oauthIntegration("https://github.test/token"))

	msg := e.mustFail(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"api_key": "k", "expires_in": nil}, 400)
	if !strings.Contains(msg, "expires_in does not apply") {
		t.Fatalf("a null expires_in on API_KEY: %q", msg)
	}
	out := e.mustDo(logical.UpdateOperation, "import/stripe", map[string]any{"connections": []any{
		map[string]any{"connection_id": "a", "api_key": "k", "expires_in": nil},
	}})
	if got := out["results"].([]any)[0].(map[string]any); got["status"] != "failed" || !strings.Contains(got["error"].(string), "expires_in does not apply") {
		t.Fatalf("an import item with a null expires_in: %v", got)
	}

	e.mustDo(logical.UpdateOperation, "connections/github/acme", map[string]any{
		"access_token": "at", "expires_at": "2030-01-02T03:04:05Z", "expires_in": nil,
		"metadata": map[string]any{"plan": "pro"}, "tags": map[string]any{"org": "acme"},
	})
	got := e.mustDo(logical.UpdateOperation, "connections/github/acme", map[string]any{"metadata": nil, "tags": map[string]any{}})
	if got["expires_at"] != "2030-01-02T03:04:05Z" || len(got["metadata"].(map[string]any)) != 0 || len(got["tags"].(map[string]string)) != 0 {
		t.Fatalf("after a null metadata and empty tags: expires_at %v, metadata %v, tags %v", got["expires_at"], got["metadata"], got["tags"])
	}
}
