// SPDX-License-Identifier: MPL-2.0

// Package safetext makes untrusted or secret-adjacent text safe to put in an
// error message, a warning or a log line.
package safetext

import "strings"

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

// Scrub removes every occurrence of each secret from msg. A provider's
// error_description may echo what it was sent (a refresh token, a code, a
// client secret); that must not be stored or logged.
func Scrub(msg string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) >= minSecretLen {
			msg = strings.ReplaceAll(msg, s, redactedMark)
		}
	}
	return msg
}
