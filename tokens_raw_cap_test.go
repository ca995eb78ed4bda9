// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// entryCappedStorage refuses entries over max bytes, as integrated storage
// (Raft) refuses entries over its max_entry_size of 1 MiB by default.
type entryCappedStorage struct {
	logical.Storage
	max int
}

func (s *entryCappedStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if len(entry.Value) > s.max {
		return fmt.Errorf("entry %q is %d bytes, over the %d-byte limit", entry.Key, len(entry.Value), s.max)
	}
	return s.Storage.Put(ctx, entry)
}

// hugeTokenResponse makes the loopback server add a member of about
// 1,000,000 bytes to every token answer, which keeps the answer under the
// client's 1 MiB read limit; with a connection's metadata the entry would
// be over what integrated storage takes.
const hugeMemberBytes = 1_000_000

// bigMetadata is a connection's metadata near its 64 KiB cap.
func bigMetadata() map[string]any {
	return map[string]any{"notes": strings.Repeat("m", 60<<10)}
}

// assertStoredUnderCap reads a connection straight from storage and checks
// that it was saved with the tokens the provider issued last, under the
// entry cap, with the oversized raw member dropped and a note saying so.
func assertStoredUnderCap(t *testing.T, e *testEnv, integration, id string) *connectionEntry {
	t.Helper()
	if n := e.b.store.Unsaved(); n != 0 {
		t.Fatalf("%d entries wait for storage: the issued entry was not saved", n)
	}
	c, size, err := readConnectionEntry(t.Context(), e.storage, connectionKey(integration, id))
	if err != nil || c == nil {
		t.Fatalf("stored connection: %v %v", c, err)
	}
	if size > maxConnectionEntryBytes {
		t.Fatalf("stored entry is %d bytes, over the %d-byte cap", size, maxConnectionEntryBytes)
	}
	if _, kept := c.RawTokenResponse["blob"]; kept {
		t.Fatal("the oversized raw member was stored")
	}
	if c.RawTokenResponse["access_token"] != c.Credentials.AccessToken {
		t.Fatalf("raw response lost its access_token member (%d members kept)", len(c.RawTokenResponse))
	}
	raw := e.mustDo(logical.ReadOperation, "connections/"+integration+"/"+id+"/raw", nil)
	if note, _ := raw["raw_token_response_note"].(string); !strings.Contains(note, "blob") {
		t.Fatalf("raw read has no note of the dropped member: %q", note)
	}
	return c
}

// A token answer near 1 MiB is kept whole where it matters (access and
// refresh token, expiry, scopes) and trimmed where it does not (the raw
// response), so that the entry saves under the cap, on refresh, on the
// code exchange and for client credentials alike.
func TestOversizedTokenResponseIsTrimmedNotRefused(t *testing.T) {
	t.Run("refresh", func(t *testing.T) {
		e, srv := oauthEnvOn(t, &entryCappedStorage{Storage: &logical.InmemStorage{}, max: 1 << 20})
		oldRefresh := srv.IssueRefreshToken()
		e.mustDo(logical.CreateOperation, "connections/github/acme", map[string]any{
			"access_token": "old-at", "refresh_token": oldRefresh, "expires_in": 60, "metadata": bigMetadata(),
		})
		srv.SetExtraFields(map[string]any{"blob": strings.Repeat("x", hugeMemberBytes)})
		read := e.mustDo(logical.UpdateOperation, "connections/github/acme/refresh", nil)
		c := assertStoredUnderCap(t, e, "github", "acme")
		if c.Credentials.RefreshToken == oldRefresh || !srv.RefreshTokenValid(c.Credentials.RefreshToken) {
			t.Fatal("storage does not hold the new refresh token")
		}
		if c.Credentials.AccessToken != read["access_token"] || time.Until(c.Credentials.ExpiresAt) < 50*time.Minute {
			t.Fatalf("stored token %q expiring %v, read %v", c.Credentials.AccessToken, c.Credentials.ExpiresAt, read["access_token"])
		}
	})
	t.Run("code exchange", func(t *testing.T) {
		e, srv := oauthEnvOn(t, &entryCappedStorage{Storage: &logical.InmemStorage{}, max: 1 << 20})
		configureCallback(e, srv)
		srv.SetExtraFields(map[string]any{"blob": strings.Repeat("x", hugeMemberBytes)})
		q := consent(t, e, "connections/github/acme/authorize", map[string]any{"metadata": bigMetadata()})
		if status, page, _ := callback(e, q); status != http.StatusOK {
			t.Fatalf("callback: %d %s", status, page)
		}
		c := assertStoredUnderCap(t, e, "github", "acme")
		if !srv.RefreshTokenValid(c.Credentials.RefreshToken) {
			t.Fatal("storage does not hold the issued refresh token")
		}
	})
	t.Run("many members, one mapped into the config", func(t *testing.T) {
		e, srv := oauthEnvOn(t, &entryCappedStorage{Storage: &logical.InmemStorage{}, max: 1 << 20})
		e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"token_response_config": map[string]any{"region": "blob"}})
		oldRefresh := srv.IssueRefreshToken()
		e.mustDo(logical.CreateOperation, "connections/github/acme", map[string]any{
			"access_token": "old-at", "refresh_token": oldRefresh, "expires_in": 60, "connection_config": map[string]any{"region": "eu"},
		})
		extra := map[string]any{"blob": strings.Repeat("x", 200<<10), "refresh_token_expires_in": 86400}
		// Many members smaller than the standard ones, which are kept
		// longest.
		for i := range 20000 {
			extra[fmt.Sprintf("m%05d", i)] = 1
		}
		srv.SetExtraFields(extra)
		e.mustDo(logical.UpdateOperation, "connections/github/acme/refresh", nil)
		c := assertStoredUnderCap(t, e, "github", "acme")
		if _, kept := c.RawTokenResponse["refresh_token_expires_in"]; !kept {
			t.Fatal("a member the engine reads was dropped before the bulk")
		}
		if c.ConnectionConfig["region"] != "eu" {
			t.Fatal("a member over the config cap was copied into connection_config")
		}
		for _, want := range []string{"more", "connection_config.region"} {
			if !strings.Contains(c.RawTokenResponseNote, want) {
				t.Errorf("note %q does not say %q", c.RawTokenResponseNote, want)
			}
		}
		if !srv.RefreshTokenValid(c.Credentials.RefreshToken) || c.Credentials.RefreshToken == oldRefresh {
			t.Fatal("storage does not hold the new refresh token")
		}
	})
	t.Run("client credentials", func(t *testing.T) {
		e, srv := oauthEnvOn(t, &entryCappedStorage{Storage: &logical.InmemStorage{}, max: 1 << 20})
		srv.SetExtraFields(map[string]any{"blob": strings.Repeat("x", hugeMemberBytes)})
		e.mustDo(logical.CreateOperation, "connections/machine/acme", map[string]any{"metadata": bigMetadata()})
		c := assertStoredUnderCap(t, e, "machine", "acme")
		if !srv.AccessTokenValid(c.Credentials.AccessToken) || len(c.Credentials.Scopes) == 0 {
			t.Fatalf("stored credentials: token valid %v, scopes %v", srv.AccessTokenValid(c.Credentials.AccessToken), c.Credentials.Scopes)
		}
	})
}
