// SPDX-License-Identifier: MPL-2.0

// Package safetext makes untrusted or secret-adjacent text safe to put in an
// error message, a warning or a log line.
package safetext

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Printable quotes untrusted input for a message: at most max runes, control
// characters replaced, so that neither megabytes nor terminal escapes of a
// caller's input reach a log.
func Printable(s string, max int) string {
	r := []rune(s)
	if len(r) > max {
		r = append(r[:max], '…')
	}
	out := make([]rune, 0, len(r))
	for _, c := range r {
		if c < 0x20 || c == 0x7f {
			c = '?'
		}
		out = append(out, c)
	}
	return string(out)
}

// redactedMark replaces a secret found in a message.
const redactedMark = "[redacted]"

// minSecretLen keeps very short values (which would match ordinary words)
// from being treated as secrets worth scrubbing.
const minSecretLen = 4

// Redact is Printable of msg with every secret scrubbed first. The order
// matters: a cut made first can split a secret so that no whole copy is
// left to find, and the part before the cut would survive.
func Redact(msg string, max int, secrets ...string) string {
	return Printable(Scrub(msg, secrets...), max)
}

// Scrub removes every occurrence of each secret from msg, as sent and in
// each form a provider may echo it in. A provider's error_description may
// echo what it was sent (a refresh token, a code, a client secret), decoded
// or still URL-encoded or JSON-escaped as it was on the wire; none of that
// may be stored or logged.
func Scrub(msg string, secrets ...string) string {
	for _, form := range echoedForms(secrets) {
		msg = strings.ReplaceAll(msg, form, redactedMark)
	}
	if echoesASecret(msg, secrets) {
		return withheldMark
	}
	return msg
}

// ScrubForms removes every occurrence of each secret from msg as sent and in
// the encodings Scrub knows (URL, JSON, hex, base64), without the search for partial or decoded
// echoes: for large texts (a proxied provider's error body), where that
// search would cost time in proportion to the text times the secrets.
func ScrubForms(msg string, secrets ...string) string {
	return NewScrubber(secrets...).Forms(msg)
}

// Scrubber is Scrub and ScrubForms for one set of secrets, their encoded
// forms computed once: for many texts of one request (a proxied answer's
// headers and body).
type Scrubber struct {
	forms   []string
	echoes  echoPatterns
	secrets []string
}

// NewScrubber prepares the forms of secrets, each secret once.
func NewScrubber(secrets ...string) *Scrubber {
	seen := map[string]bool{}
	var unique []string
	for _, s := range secrets {
		if !seen[s] {
			seen[s] = true
			unique = append(unique, s)
		}
	}
	return &Scrubber{secrets: unique, forms: withBinaryForms(echoedForms(unique), unique), echoes: echoPatternsOf(unique)}
}

// withBinaryForms are forms and the hex (either case) and base64 cores of
// each secret, longest first: what a provider echoes encoded (a debug
// endpoint that returns the request's headers in base64, the bare base64
// of a Basic credential) is cut out by Forms too, at the cost of a few
// more searches per text. Forms shorter than minEchoRun are left to Scrub's
// search: a body returned byte for byte would lose every chance match.
func withBinaryForms(forms, secrets []string) []string {
	seen := map[string]bool{}
	for _, f := range forms {
		seen[f] = true
	}
	for _, s := range secrets {
		if len(s) < minSecretLen {
			continue
		}
		h := hex.EncodeToString([]byte(s))
		for _, f := range append([]string{h, strings.ToUpper(h)}, base64Cores(s)...) {
			if len(f) >= minEchoRun && !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return forms
}

// Forms is ScrubForms with the prepared forms.
func (sc *Scrubber) Forms(msg string) string {
	for _, form := range sc.forms {
		if strings.Contains(msg, form) {
			msg = strings.ReplaceAll(msg, form, redactedMark)
		}
	}
	return msg
}

// Scrub is Scrub with the prepared forms.
func (sc *Scrubber) Scrub(msg string) string {
	msg = sc.Forms(msg)
	if sc.echoes.echoedIn(msg) {
		return withheldMark
	}
	return msg
}

// withheldMark replaces a whole message that still echoes a secret in a
// form Scrub cannot cut out.
const withheldMark = "[withheld: the message echoed a secret]"

// minEchoRun is the shortest run of a secret's characters taken as an echo
// of it: a provider may cut a secret itself ("s3cr3t/Client+Sec...").
const minEchoRun = 12

// echoesASecret is the net under the forms Scrub removes: msg decoded the
// ways a provider may have encoded what it echoes (percent-encoding in
// either case, twice; \uXXXX escapes) still holds a secret, or a run of
// minEchoRun of its characters, in any letter case; or it holds the secret
// hex- or base64-encoded. It runs only on error texts, so the few
// encodings tried per secret cost little.
func echoesASecret(msg string, secrets []string) bool {
	return echoPatternsOf(secrets).echoedIn(msg)
}

// echoPatterns are what echoesASecret looks for, per secret: the secret
// and its hex in lower case, and its base64 cores.
type echoPatterns struct {
	lowered, binary []string
}

func echoPatternsOf(secrets []string) echoPatterns {
	var p echoPatterns
	for _, s := range secrets {
		if len(s) < minSecretLen {
			continue
		}
		p.lowered = append(p.lowered, strings.ToLower(s), hex.EncodeToString([]byte(s)))
		p.binary = append(p.binary, base64Cores(s)...)
	}
	return p
}

func (p echoPatterns) echoedIn(msg string) bool {
	for _, decoded := range decodings(msg) {
		lowerDecoded := strings.ToLower(decoded)
		for _, s := range p.lowered {
			if strings.Contains(lowerDecoded, s) || sharesRun(lowerDecoded, s, minEchoRun) {
				return true
			}
		}
		for _, core := range p.binary {
			if strings.Contains(decoded, core) {
				return true
			}
		}
	}
	return false
}

// base64Cores are the parts of s's base64 encodings (standard and URL
// alphabets) that depend on s's bytes alone, for each of the three
// alignments s can have inside a longer encoded text; padding and the
// characters shared with neighbouring bytes are left off, so that padded,
// raw and embedded encodings all contain one of them.
func base64Cores(s string) []string {
	var cores []string
	for lead := range 3 {
		encoded := base64.RawStdEncoding.EncodeToString(append(make([]byte, lead), s...))
		start := 0
		if lead > 0 {
			start = 4 // the first group mixes lead bytes with s's first ones
		}
		end := 4 * ((lead + len(s)) / 3) // the last, partial group may mix with what follows
		if end-start < minSecretLen {
			continue
		}
		core := encoded[start:end]
		cores = append(cores, core, strings.NewReplacer("+", "-", "/", "_").Replace(core))
	}
	return cores
}

// decodings are msg as is and as far as repeated percent- and JSON-
// unescaping take it.
func decodings(msg string) []string {
	out := []string{msg}
	cur := msg
	for range 3 {
		next := jsonUnescaped(cur)
		if u, err := url.PathUnescape(next); err == nil {
			next = u
		}
		if next == cur {
			break
		}
		out = append(out, next)
		cur = next
	}
	if q, err := url.QueryUnescape(msg); err == nil && q != msg {
		out = append(out, q)
	}
	return out
}

// jsonUnescaped replaces \uXXXX and \/ escapes; other text is kept.
func jsonUnescaped(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+5 < len(s) && s[i+1] == 'u' {
			var r rune
			if _, err := fmt.Sscanf(s[i+2:i+6], "%04x", &r); err == nil {
				b.WriteRune(r)
				i += 5
				continue
			}
		}
		if s[i] == '\\' && i+1 < len(s) && s[i+1] == '/' {
			b.WriteByte('/')
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// sharesRun reports whether msg holds n consecutive characters of secret.
func sharesRun(msg, secret string, n int) bool {
	if len(secret) < n {
		return false
	}
	for i := 0; i+n <= len(secret); i++ {
		if strings.Contains(msg, secret[i:i+n]) {
			return true
		}
	}
	return false
}

// echoedForms are the secrets and their encodings, longest first, so that
// a secret that contains another is removed whole rather than around the
// shorter one.
func echoedForms(secrets []string) []string {
	seen := map[string]bool{}
	var forms []string
	for _, s := range secrets {
		if len(s) < minSecretLen {
			continue
		}
		for _, f := range encodings(s) {
			if !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	sort.SliceStable(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	return forms
}

// encodings are s as sent and as it reads inside a query string, a path
// and a JSON string, with and without the HTML escaping Go's encoder adds
// and with '/' escaped as some JSON encoders do.
func encodings(s string) []string {
	return []string{
		s,
		url.QueryEscape(s),
		url.PathEscape(s),
		jsonEscaped(s, true),
		jsonEscaped(s, false),
		strings.ReplaceAll(jsonEscaped(s, false), "/", `\/`),
	}
}

// jsonEscaped is s inside a JSON string literal, without the quotes.
func jsonEscaped(s string, escapeHTML bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(s); err != nil {
		return s // a string always encodes; s is scrubbed as is anyway
	}
	quoted := strings.TrimSuffix(b.String(), "\n")
	return quoted[1 : len(quoted)-1]
}
