// SPDX-License-Identifier: MPL-2.0

package catalog

import "testing"

// TestEveryProviderHasADisplayName: the connect page names a catalog
// provider as people know it, never by its machine name alone.
func TestEveryProviderHasADisplayName(t *testing.T) {
	for name := range builtin {
		if DisplayName(name) == "" {
			t.Errorf("%s has no display name", name)
		}
	}
	for name := range displayNames {
		if builtin[name] == nil {
			t.Errorf("display name of %s, which the catalog does not have", name)
		}
	}
	if DisplayName("github-pat") != "GitHub" || DisplayName("nope") != "" {
		t.Fatal("lookups")
	}
}
