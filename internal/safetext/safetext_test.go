// SPDX-License-Identifier: MPL-2.0

package safetext

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

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

// Forms of a secret no encoding list foresees still never survive: the
// message is withheld.
func TestScrubCatchesOtherEchoedForms(t *testing.T) {
	secret := "s3cr3t/Client+Secret=value"
	for name, echo := range map[string]string{
		"lower-case percent-encoding": "s3cr3t%2fClient%2bSecret%3dvalue",
		"JSON \\u escapes":            `s3cr3t\u002fClient\u002bSecret=value`,
		"double URL-encoding":         "s3cr3t%252FClient%252BSecret%253Dvalue",
		"cut by the provider":         "s3cr3t/Client+Sec...",
	} {
		got := Redact("invalid_client: client_secret '"+echo+"' is wrong", 300, secret)
		if strings.Contains(got, "Client") || strings.Contains(got, "s3cr3t") {
			t.Errorf("%s: survives: %q", name, got)
		}
	}
	if got := Redact("invalid_grant: the grant is spent", 300, secret); got != "invalid_grant: the grant is spent" {
		t.Errorf("a message without a secret changed: %q", got)
	}
}

// TestScrubWithholdsASecretInOtherCasesAndEncodings: a provider may echo a
// secret upper- or lower-cased, hex-encoded or base64-encoded (standard or
// URL alphabet, padded or raw, alone or inside other encoded text); the
// message is withheld rather than carrying it.
func TestScrubWithholdsASecretInOtherCasesAndEncodings(t *testing.T) {
	const secret = "Rt-Secret/Value+0123456789abcXYZ?"
	b64 := func(enc *base64.Encoding) func(string) string {
		return func(s string) string { return enc.EncodeToString([]byte(s)) }
	}
	for name, form := range map[string]func(string) string{
		"upper-case":    strings.ToUpper,
		"lower-case":    strings.ToLower,
		"hex":           func(s string) string { return hex.EncodeToString([]byte(s)) },
		"hex upper":     func(s string) string { return strings.ToUpper(hex.EncodeToString([]byte(s))) },
		"base64":        b64(base64.StdEncoding),
		"base64 raw":    b64(base64.RawStdEncoding),
		"base64url":     b64(base64.URLEncoding),
		"base64url raw": b64(base64.RawURLEncoding),
		"base64 inside": func(s string) string { return base64.StdEncoding.EncodeToString([]byte("x:" + s)) },
		"base64url off": func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte("u" + s + "!")) },
	} {
		msg := "token " + form(secret) + " unknown"
		if got := Scrub(msg, secret); got != withheldMark {
			t.Errorf("%s: Scrub(%q) = %q, want it withheld", name, msg, got)
		}
	}
	if got := Scrub("invalid_grant: token unknown", secret); got != "invalid_grant: token unknown" {
		t.Errorf("a message without the secret changed: %q", got)
	}
}

func TestScrubFormsRemovesExactCopiesOnly(t *testing.T) {
	const secret = "s3cr3t/Value+0123"
	msg := "a " + secret + " b " + url.QueryEscape(secret) + " c s3cr3t/Value+01 d"
	got := ScrubForms(msg, secret)
	if strings.Contains(got, secret) || strings.Contains(got, url.QueryEscape(secret)) {
		t.Fatalf("a copy survived: %q", got)
	}
	if !strings.Contains(got, "s3cr3t/Value+01 d") {
		t.Fatalf("a partial run was cut or the text withheld: %q", got)
	}
	if ScrubForms("plain", secret) != "plain" {
		t.Fatal("text without a secret changed")
	}
}

// Forms cuts a secret's hex and base64 echoes, but only those at least
// minEchoRun long: a body returned byte for byte (an image, a file) must
// not lose every 4-character run that happens to be the base64 of a short
// secret.
func TestFormsCutsBinaryEchoesOfLongFormsOnly(t *testing.T) {
	const long, short = "tok-fedcba9876543210", "abcd"
	sc := NewScrubber(long, short)
	bytesBody := "img:" + hex.EncodeToString([]byte(short)) + "|" + base64.StdEncoding.EncodeToString([]byte(short)) + "|"
	if got := sc.Forms(bytesBody); got != bytesBody {
		t.Fatalf("the short secret's binary forms were cut from %q: %q", bytesBody, got)
	}
	for _, echo := range []string{hex.EncodeToString([]byte(long)), strings.ToUpper(hex.EncodeToString([]byte(long))),
		base64.StdEncoding.EncodeToString([]byte("Bearer " + long)), base64.URLEncoding.EncodeToString([]byte("x" + long))} {
		if got := sc.Forms("echo " + echo); strings.Contains(got, hex.EncodeToString([]byte(long))[:24]) || got == "echo "+echo {
			t.Errorf("Forms left the echo %q: %q", echo, got)
		}
	}
}
