// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"strings"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

// scanSeedEntries are stored entries as the store writes them, of every
// shape scheduling tells apart.
func scanSeedEntries(t testing.TB) [][]byte {
	now := time.Date(2026, 12, 7, 11, 0, 0, 123456789, time.UTC)
	entries := []*connectionEntry{
		{Integration: "github", ConnectionID: "c1", AuthMode: catalog.OAuth2, Metadata: map[string]any{"a": map[string]any{"b": []any{1, "x\"}"}}},
			Credentials:      credentials{AccessToken: "at", RefreshToken: "rt", ExpiresAt: now.Add(time.Hour), Scopes: []string{"repo"}},
			RawTokenResponse: map[string]any{"refresh_token_expires_in": 3600, "scope": "repo"}, UpdatedAt: now, NextRefreshAt: now.Add(50 * time.Minute)},
		{Integration: "github", ConnectionID: "c2", AuthMode: catalog.OAuth2, Credentials: credentials{AccessToken: "at", RefreshToken: "rt"},
			RefreshStatus: refreshFailing, RefreshFailures: 3, LastRefreshError: `provider said "no" {`, NextRefreshAt: now, LastRefreshedAt: now.Add(-time.Hour)},
		{Integration: "m", ConnectionID: "c3", AuthMode: catalog.OAuth2CC, Credentials: credentials{ClientID: "id", ClientSecret: "s"}},
		{Integration: "k", ConnectionID: "c4", AuthMode: catalog.APIKey, Credentials: credentials{APIKey: "k\\\"<>&"}, Tags: map[string]string{"end_user_id": "u"}},
		{Integration: "g", ConnectionID: "c5", AuthMode: catalog.OAuth2, Credentials: credentials{AccessToken: "at", RefreshToken: "rt", ExpiresAt: now},
			RefreshStatus: refreshReauth, RawTokenResponse: map[string]any{"x_refresh_token_expires_in": nil}},
	}
	var out [][]byte
	for _, c := range entries {
		b, err := encodeEntry(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// scanMatchesDecode checks scanScheduleFields against decoding whole: where
// both read data, the fields are the same.
func scanMatchesDecode(t *testing.T, data []byte) (scanned bool) {
	t.Helper()
	f, ok := scanScheduleFields(data)
	if !ok {
		return false
	}
	c, err := decodeConnectionEntry("connections/x/y", data)
	if err != nil {
		return true // the scan is lenient with what it skips
	}
	if want := c.scheduleFields(); f != want {
		t.Fatalf("scanned %+v\nwant    %+v\nfrom %s", f, want, data)
	}
	return true
}

func TestScheduleScanReadsWhatDecodingReads(t *testing.T) {
	for _, data := range scanSeedEntries(t) {
		if !scanMatchesDecode(t, data) {
			t.Fatalf("an entry as the store writes it is left to decoding: %s", data)
		}
	}
}

// Whatever the scan cannot read exactly as encoding/json does goes to the
// whole decode: names matched without regard to case, escapes, repeated
// members, other types, compressed entries.
func TestScheduleScanLeavesDoubtToDecoding(t *testing.T) {
	for _, data := range []string{
		`{"Refresh_Status":"failing"}`,
		`{"refreſh_status":"failing"}`,
		`{"refresh_status":"fail\u0069ng"}`,
		`{"refresh_status":"ok","refresh_status":"failing"}`,
		`{"credentials":{"access_token":"a"},"credentials":{"refresh_token":"r"}}`,
		`{"credentials":{"access_token":"a","access_token":""}}`,
		`{"raw_token_response":{"refresh_expires_in":1},"raw_token_response":null}`,
		`{"auth_mode":5}`,
		`{"next_refresh_at":"yesterday"}`,
		`{"auth_mode":"OAUTH2","credentials":"x"}`,
		`{"auth_mode":"OAUTH` + "\xff" + `"}`,
		"G\x1f\x8b",
		`[1]`,
		`{"auth_mode":"OAUTH2"`,
		`{"a":}`,
		`{"raw_token_response":{"refresh_expires_i\u006e":1}}`,
	} {
		if _, ok := scanScheduleFields([]byte(data)); ok {
			t.Errorf("scanned %q itself", data)
		}
	}
	// Map keys are matched exactly, as the whole decode does.
	f, ok := scanScheduleFields([]byte(`{"auth_mode":"OAUTH2","credentials":{"refresh_token":"r"},"raw_token_response":{"Refresh_Expires_In":1,"ab":{"refresh_expires_in":1}}}`))
	if !ok || f.RefreshExpiryMember {
		t.Fatalf("scanned %+v, %v", f, ok)
	}
}

// The rebuild decodes entries whose shape the scan reads by the scan, and
// the rest whole: both give the same fields.
func TestDecodeScheduleFieldsFallsBackToTheWholeEntry(t *testing.T) {
	data := `{"Auth_Mode":"OAUTH2","credentials":{"access_token":"a","refresh_token":"r","expires_at":"2026-12-07T12:00:00Z"},"next_refresh_at":"2026-12-07T11:50:00Z"}`
	f, err := decodeScheduleFields("connections/x/y", []byte(data))
	want := time.Date(2026, 12, 7, 11, 50, 0, 0, time.UTC)
	if err != nil || f.AuthMode != catalog.OAuth2 || !f.HasAccessToken || !f.NextRefreshAt.Equal(want) {
		t.Fatalf("fields %+v, %v", f, err)
	}
	if _, err := decodeScheduleFields("connections/x/y", []byte(`{"auth_mode":7}`)); err == nil {
		t.Fatal("an undecodable entry decoded")
	}
}

func FuzzScheduleScan(f *testing.F) {
	for _, data := range scanSeedEntries(f) {
		f.Add(data)
		f.Add([]byte(strings.Replace(string(data), `"refresh_status"`, `"Refresh_status"`, 1)))
	}
	f.Add([]byte(`{"credentials":null,"raw_token_response":null,"updated_at":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		scanMatchesDecode(t, data)
	})
}
