// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"fmt"
	"regexp"
	"strings"
)

// Where a placeholder sits in a URL decides what it may hold. A value in
// the host or a path segment is a host label or segment (placeholderValueRe);
// one in the query string is any printable text, escaped; one that starts a
// client-only URL may be a whole https URL. The scheme, the user
// information, the port and the fragment take no placeholder: the first
// three choose where and as whom a request goes beyond what the egress rule
// can see, and a fragment is never sent.

// urlPart is a part of a URL a placeholder can sit in.
type urlPart int

const (
	partHost urlPart = iota
	partPath
	partQuery
	partWholeURL // starts the template and stands for scheme, host and maybe a path
	partScheme
	partUserInfo
	partPort
	partFragment
)

func (p urlPart) String() string {
	return [...]string{"host", "path", "query string", "whole URL", "scheme", "user information", "port", "fragment"}[p]
}

// schemePrefixRe is a URL's scheme and "://".
var schemePrefixRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// placeholderParts returns the part of the URL each placeholder of one
// alternative sits in, in order. Placeholders are masked first with text
// of the same length that has no URL delimiter, so that a placeholder's
// braces or dots are not read as structure and offsets still match.
func placeholderParts(alt string) []urlPart {
	locs := placeholderRe.FindAllStringIndex(alt, -1)
	if len(locs) == 0 {
		return nil
	}
	masked := []byte(alt)
	for _, loc := range locs {
		for i := loc[0]; i < loc[1]; i++ {
			masked[i] = 'x'
		}
	}
	b := partBounds(string(masked), locs[0])
	parts := make([]urlPart, len(locs))
	for i, loc := range locs {
		parts[i] = b.partAt(loc[0])
	}
	return parts
}

// urlBounds are the offsets where the parts of a (masked) URL start.
type urlBounds struct {
	wholeURLEnd          int // > 0: the first placeholder stands for the whole URL up to here
	schemeEnd            int // end of "scheme://", 0 without one
	hostStart, portStart int // portStart: the ':' before the port, or the authority's end
	authorityEnd         int
	queryStart           int // the '?', or the fragment's start without a query
	fragmentStart        int // the '#', or the end
}

// partBounds finds the parts of a masked URL; first is the location of
// its first placeholder, which stands for a whole URL when it starts one
// that has no scheme of its own.
func partBounds(masked string, first []int) urlBounds {
	var b urlBounds
	n := len(masked)
	if m := schemePrefixRe.FindString(masked); m != "" {
		b.schemeEnd = len(m)
	} else if first[0] == 0 {
		b.wholeURLEnd = first[1]
	}
	authStart := max(b.schemeEnd, b.wholeURLEnd)
	b.authorityEnd = n
	if b.schemeEnd > 0 {
		if i := strings.IndexAny(masked[authStart:], "/?#"); i >= 0 {
			b.authorityEnd = authStart + i
		}
	} else {
		b.authorityEnd = authStart // a whole URL brings its own authority
	}
	auth := masked[authStart:b.authorityEnd]
	b.hostStart = authStart
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		b.hostStart = authStart + i + 1
	}
	b.portStart = b.authorityEnd
	hostPort := masked[b.hostStart:b.authorityEnd]
	if i := strings.LastIndexByte(hostPort, ':'); i >= 0 && !strings.Contains(hostPort[i:], "]") {
		b.portStart = b.hostStart + i
	}
	b.fragmentStart, b.queryStart = n, n
	if i := strings.IndexByte(masked[b.authorityEnd:], '#'); i >= 0 {
		b.fragmentStart = b.authorityEnd + i
	}
	if i := strings.IndexByte(masked[b.authorityEnd:b.fragmentStart], '?'); i >= 0 {
		b.queryStart = b.authorityEnd + i
	}
	return b
}

// partAt is the part of the URL the offset at falls in.
func (b urlBounds) partAt(at int) urlPart {
	switch {
	case b.wholeURLEnd > 0 && at == 0:
		return partWholeURL
	case at < b.schemeEnd:
		return partScheme
	case at < b.hostStart:
		return partUserInfo
	case at < b.portStart:
		return partHost
	case at < b.authorityEnd:
		return partPort
	case at >= b.fragmentStart:
		return partFragment
	case at >= b.queryStart:
		return partQuery
	}
	return partPath
}

// checkPlaceholderParts refuses a placeholder where no value is safe,
// naming the part; a whole URL is refused unless wholeURLs (a URL only
// returned to clients).
func checkPlaceholderParts(field, alt string, wholeURLs bool) error {
	for _, part := range placeholderParts(alt) {
		switch part {
		case partHost, partPath, partQuery:
			continue
		case partWholeURL:
			if wholeURLs {
				continue
			}
			return fmt.Errorf("%s: a placeholder that holds a whole URL (one that starts it) is only allowed in api_base_url outside auth_mode APP; the URLs secrets go to name their host, with placeholders for its labels", field)
		case partFragment:
			return fmt.Errorf("%s: a placeholder in the fragment is never sent; leave it out", field)
		}
		return fmt.Errorf("%s: a placeholder may not set the %s", field, part)
	}
	return nil
}
