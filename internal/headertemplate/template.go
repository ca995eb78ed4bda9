// SPDX-License-Identifier: MPL-2.0

// Package headertemplate renders a provider's request_headers: how a client
// puts a connection's credential on a request, e.g.
//
//	Authorization: Basic ${base64(${apiKey}:)}
//
// A template is text with ${name} variables and ${base64(<template>)}
// encodings, which may nest. Names are accessToken, apiKey, username,
// password, connectionConfig.<key> and credentials.<key>.
package headertemplate

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

// Template is a parsed header value.
type Template struct{ parts []part }

// part is one piece of a template: literal text, a variable, or a base64
// encoding of an inner template.
type part struct {
	text   string
	name   string
	base64 *Template
}

// Lookup returns a variable's value and whether the connection has it.
type Lookup func(name string) (string, bool)

var (
	plainNames  = map[string]bool{"accessToken": true, "apiKey": true, "username": true, "password": true}
	keyedNameRe = regexp.MustCompile(`^(connectionConfig|credentials)\.[A-Za-z0-9_.-]{1,64}$`)
	// HeaderNameRe is an HTTP field name (RFC 9110 token).
	HeaderNameRe = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
)

const maxDepth = 4

// Parse parses a template and checks its variable names.
func Parse(s string) (*Template, error) {
	t, rest, err := parseSeq(s, 0)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("unexpected %q", clip(rest))
	}
	return t, nil
}

// parseSeq reads parts until the end, or, inside base64( (depth > 0), until
// the ")}" that closes it, which it leaves in rest.
func parseSeq(s string, depth int) (*Template, string, error) {
	t := &Template{}
	for s != "" {
		if depth > 0 && strings.HasPrefix(s, ")}") {
			return t, s, nil
		}
		if !strings.HasPrefix(s, "${") {
			i := nextSpecial(s, depth > 0)
			t.parts = append(t.parts, part{text: s[:i]})
			s = s[i:]
			continue
		}
		s = s[2:]
		if strings.HasPrefix(s, "base64(") {
			if depth >= maxDepth {
				return nil, "", fmt.Errorf("base64( nested more than %d deep", maxDepth)
			}
			inner, rest, err := parseSeq(s[len("base64("):], depth+1)
			if err != nil {
				return nil, "", err
			}
			if !strings.HasPrefix(rest, ")}") {
				return nil, "", fmt.Errorf("base64( is not closed with )}")
			}
			t.parts = append(t.parts, part{base64: inner})
			s = rest[2:]
			continue
		}
		name, rest, ok := strings.Cut(s, "}")
		if !ok {
			return nil, "", fmt.Errorf("${ is not closed")
		}
		if !plainNames[name] && !keyedNameRe.MatchString(name) {
			return nil, "", fmt.Errorf("unknown variable ${%s}: use accessToken, apiKey, username, password, connectionConfig.<key>, credentials.<key> or base64(...)", clip(name))
		}
		t.parts = append(t.parts, part{name: name})
		s = rest
	}
	if depth > 0 {
		return nil, "", fmt.Errorf("base64( is not closed with )}")
	}
	return t, "", nil
}

// nextSpecial is where the literal text at the start of s ends: at the next
// "${", or inside base64( also at ")}".
func nextSpecial(s string, inBase64 bool) int {
	end := len(s)
	if i := strings.Index(s[1:], "${"); i >= 0 {
		end = i + 1
	}
	if inBase64 {
		if i := strings.Index(s, ")}"); i >= 0 && i < end {
			end = i
		}
	}
	return end
}

// Render fills the template. A variable the connection does not have is an
// error naming it.
func (t *Template) Render(lookup Lookup) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		switch {
		case p.base64 != nil:
			inner, err := p.base64.Render(lookup)
			if err != nil {
				return "", err
			}
			b.WriteString(base64.StdEncoding.EncodeToString([]byte(inner)))
		case p.name != "":
			v, ok := lookup(p.name)
			if !ok {
				return "", fmt.Errorf("the connection has no %s", p.name)
			}
			b.WriteString(v)
		default:
			b.WriteString(p.text)
		}
	}
	return b.String(), nil
}

// Variables lists the names the template uses.
func (t *Template) Variables() []string {
	var names []string
	for _, p := range t.parts {
		switch {
		case p.base64 != nil:
			names = append(names, p.base64.Variables()...)
		case p.name != "":
			names = append(names, p.name)
		}
	}
	return names
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
