// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"strings"
	"testing"
)

func TestValidateConnectionID(t *testing.T) {
	good := []string{
		"3fa85f64-5717-4562-b3fc-2c963f66afa6", "ops@example.com", "user+tag@example.co.uk",
		"org:123", "a=b", "x", "under_score", strings.Repeat("a", 255),
	}
	for _, id := range good {
		if err := validateConnectionID(id); err != nil {
			t.Errorf("%q rejected: %v", id, err)
		}
	}
	bad := []string{"", ".", "..", "a/b", "a b", "a\nb", "a\x00b", "é", "a?b", "a#b", "a%2Fb", strings.Repeat("a", 256)}
	for _, id := range bad {
		if err := validateConnectionID(id); err == nil {
			t.Errorf("%q accepted", id)
		}
	}
}

func TestValidateIntegrationName(t *testing.T) {
	for _, name := range []string{"github", "salesforce-prod", "a.b_c", "9lives"} {
		if err := validateIntegrationName(name); err != nil {
			t.Errorf("%q rejected: %v", name, err)
		}
	}
	for _, name := range []string{"", "-x", ".x", "a b", "a:b", strings.Repeat("a", 129)} {
		if err := validateIntegrationName(name); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
}

func TestPrintableNeutralisesInput(t *testing.T) {
	got := printable("a\x00b\x1b[31m" + strings.Repeat("z", 100))
	if strings.ContainsAny(got, "\x00\x1b") || len([]rune(got)) != 65 {
		t.Fatalf("printable = %q", got)
	}
}
