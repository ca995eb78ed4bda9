// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"strings"
	"testing"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestPage(t *testing.T) {
	keys := []string{"a", "b", "c", "d"}
	cases := []struct {
		after string
		limit int
		want  string
	}{
		{"", 0, "a,b,c,d"}, {"", 2, "a,b"}, {"b", 0, "c,d"}, {"bb", 1, "c"}, {"d", 0, ""}, {"0", 10, "a,b,c,d"},
	}
	for _, tc := range cases {
		if got := strings.Join(pageAfter(keys, tc.after, tc.limit), ","); got != tc.want {
			t.Errorf("pageAfter(after=%q, limit=%d) = %q, want %q", tc.after, tc.limit, got, tc.want)
		}
	}
}

// getJSON tells a missing entry (false, nil) from a failing read (an error
// naming the key); putJSON and getJSON round-trip an entry; listSorted
// sorts what storage lists.
func TestStorageHelpers(t *testing.T) {
	ctx := t.Context()
	s := &flakyStorage{Storage: &logical.InmemStorage{}, failGetKey: "integrations/broken"}
	var in integrationEntry
	if found, err := getJSON(ctx, s, "integrations/none", &in); found || err != nil {
		t.Fatalf("missing entry: %v, %v", found, err)
	}
	s.failGet.Store(true)
	if _, err := getJSON(ctx, s, "integrations/broken", &in); err == nil || !strings.Contains(err.Error(), `"integrations/broken"`) {
		t.Fatalf("failing read: %v", err)
	}
	for _, name := range []string{"zeta", "alpha", "mid"} {
		if err := putJSON(ctx, s, integrationKey(name), &integrationEntry{Name: name, AuthMode: catalog.APIKey}); err != nil {
			t.Fatal(err)
		}
	}
	if found, err := getJSON(ctx, s, integrationKey("mid"), &in); !found || err != nil || in.Name != "mid" || in.AuthMode != catalog.APIKey {
		t.Fatalf("round trip: %v, %v, %+v", found, err, in)
	}
	keys, err := listSorted(ctx, s, integrationPrefix)
	if err != nil || strings.Join(keys, ",") != "alpha,mid,zeta" {
		t.Fatalf("listSorted = %v, %v", keys, err)
	}
	if err := putJSON(ctx, s, "x", func() {}); err == nil {
		t.Fatal("an entry that cannot be encoded was stored")
	}
}
