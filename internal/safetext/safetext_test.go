// SPDX-License-Identifier: MPL-2.0

package safetext

import "testing"

func TestPrintable(t *testing.T) {
	if got := Printable("a\x00b\x1b[31m", 64); got != "a?b?[31m" {
		t.Fatalf("Printable = %q", got)
	}
	if got := Printable("abcdef", 3); got != "abc…" {
		t.Fatalf("Printable = %q", got)
	}
}

func TestScrub(t *testing.T) {
	got := Scrub("token rt-secret-1 is bad, so is cs-2 and x", "rt-secret-1", "cs-2-long", "x", "")
	if got != "token [redacted] is bad, so is cs-2 and x" {
		t.Fatalf("Scrub = %q", got)
	}
}

// TestScrubEncodedForms: a secret is removed as sent, URL-encoded (query
// and path), JSON-escaped (with and without HTML escaping, with '/'
// escaped), and a secret that contains another goes whole.
func TestScrubEncodedForms(t *testing.T) {
	const secret = `a/b+c d&e<f"g`
	for _, echoed := range []string{
		secret,
		`a%2Fb%2Bc+d%26e%3Cf%22g`,
		`a%2Fb+c%20d&e%3Cf%22g`,
		`a/b+c d\u0026e\u003cf\"g`,
		`a/b+c d&e<f\"g`,
		`a\/b+c d&e<f\"g`,
	} {
		if got := Scrub("x "+echoed+" y", secret); got != "x [redacted] y" {
			t.Errorf("Scrub of %q = %q", echoed, got)
		}
	}
	if got := Scrub("tok-abc-123", "abc", "tok-abc-123"); got != "[redacted]" {
		t.Errorf("nested secrets: %q", got)
	}
}

// TestRedactScrubsBeforeTheCut: a secret across the cut leaves no part.
func TestRedactScrubsBeforeTheCut(t *testing.T) {
	if got := Redact("0123456789secret-value", 14, "secret-value"); got != "0123456789[red…" {
		t.Fatalf("Redact = %q", got)
	}
}
