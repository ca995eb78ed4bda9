// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
)

// writeFields is a connection write's request data as its handler sees it.
func writeFields(raw map[string]any) *framework.FieldData {
	return &framework.FieldData{Raw: raw, Schema: connectionFields()}
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
			err := applyConnectionClient(&cr, writeFields(tc.raw))
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
	if err := applyOAuthImport(&cr, writeFields(map[string]any{"access_token": "new"}), now); err != nil {
		t.Fatal(err)
	}
	if cr.AccessToken != "new" || !cr.ExpiresAt.IsZero() || cr.TokenType != "Bearer" {
		t.Fatalf("after a new access token: %+v", cr)
	}
	if err := applyOAuthImport(&cr, writeFields(map[string]any{"expires_in": 60}), now); err != nil || !cr.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("expires_in: %v, %v", cr.ExpiresAt, err)
	}
	err := applyOAuthImport(&cr, writeFields(map[string]any{"expires_in": 60, "expires_at": "2026-01-02T04:00:00Z"}), now)
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("both expiries: %v", err)
	}
	err = applyOAuthImport(&cr, writeFields(map[string]any{"expires_at": "tomorrow\x00"}), now)
	if err == nil || strings.Contains(err.Error(), "\x00") || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("a bad expires_at: %v", err)
	}
	empty := credentials{}
	if err := applyOAuthImport(&empty, writeFields(map[string]any{"refresh_token": "r"}), now); err == nil || !strings.Contains(err.Error(), "access_token is required") {
		t.Fatalf("no access token: %v", err)
	}
}
