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
