// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"bytes"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

// scanScheduleFields reads the scheduling fields (scheduleFields) of a
// stored connection entry without decoding the rest: building the refresh
// queue at start reads every entry, and decoding whole entries made that
// fifteen times a bare scan of the same storage. It walks the JSON once,
// skips every value it does not need, and reads those it needs exactly as
// encoding/json would (times through time.Time's own UnmarshalJSON).
//
// ok is false whenever the entry holds anything it would not read exactly
// as encoding/json does: a compressed entry, a member name of a struct
// field that is not plain lower-case ASCII (encoding/json matches those
// without regard to case), an escape in a name or in a string it reads, a
// needed member twice, a needed value of another type. The caller then
// decodes the entry whole, as before. The result is only ever used to
// queue a refresh: it is never saved, so no field can be lost by it.
func scanScheduleFields(data []byte) (f scheduleFields, ok bool) {
	if len(data) == 0 || (data[0] != '{' && !isJSONSpace(data[0])) {
		return f, false // compressed (a canary byte first) or not an object
	}
	s := &entryScanner{data: data}
	seen := &s.seen
	ok = s.object(true, func(name []byte) bool {
		switch string(name) {
		case "auth_mode":
			return seen.first(&seen.authMode) && s.knownString((*string)(&f.AuthMode), knownAuthModes)
		case "credentials":
			return seen.first(&seen.credentials) && s.credentials(&f)
		case "raw_token_response":
			return seen.first(&seen.rawResponse) && s.rawTokenResponse(&f)
		case "updated_at":
			return seen.first(&seen.updatedAt) && s.time(&f.UpdatedAt)
		case "last_refreshed_at":
			return seen.first(&seen.lastRefreshedAt) && s.time(&f.LastRefreshedAt)
		case "refresh_status":
			return seen.first(&seen.refreshStatus) && s.knownString((*string)(&f.RefreshStatus), knownRefreshStatuses)
		case "next_refresh_at":
			return seen.first(&seen.nextRefreshAt) && s.time(&f.NextRefreshAt)
		}
		return s.skip()
	})
	return f, ok
}

// scheduleSeen marks the needed members met so far: a second one is left
// to encoding/json, whose rules for repeated members differ by type.
type scheduleSeen struct {
	authMode, credentials, rawResponse, updatedAt, lastRefreshedAt, refreshStatus, nextRefreshAt bool
	accessToken, refreshToken, expiresAt                                                         bool
}

// first marks *flag and reports whether it was not marked before.
func (scheduleSeen) first(flag *bool) bool {
	if *flag {
		return false
	}
	*flag = true
	return true
}

// entryScanner walks one JSON document; every method returns false on
// anything it does not read exactly.
type entryScanner struct {
	data []byte
	pos  int
	seen scheduleSeen
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *entryScanner) space() {
	for s.pos < len(s.data) && isJSONSpace(s.data[s.pos]) {
		s.pos++
	}
}

// peek returns the next byte after white space, 0 at the end.
func (s *entryScanner) peek() byte {
	s.space()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *entryScanner) consume(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.pos++
	return true
}

// object walks an object's members, calling member with each name once the
// colon is consumed; member must consume the value. Names of struct fields
// (structFields) must be plain lower-case ASCII; map keys may be any string
// without escapes.
func (s *entryScanner) object(structFields bool, member func(name []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	for {
		name, ok := s.rawString()
		if !ok || (structFields && !plainFieldName(name)) || !s.consume(':') || !member(name) {
			return false
		}
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

// plainFieldName reports whether name is lower-case ASCII letters, digits
// and underscores: encoding/json matches a struct field's name without
// regard to case (Unicode folding included), so only such a name is
// matched by equality alone.
func plainFieldName(name []byte) bool {
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// rawString reads a string without escapes and returns its bytes.
func (s *entryScanner) rawString() ([]byte, bool) {
	if !s.consume('"') {
		return nil, false
	}
	start := s.pos
	end := bytes.IndexByte(s.data[start:], '"')
	if end < 0 || bytes.IndexByte(s.data[start:start+end], '\\') >= 0 {
		return nil, false
	}
	s.pos = start + end + 1
	return s.data[start : start+end], true
}

// null consumes a null literal if one is next.
func (s *entryScanner) null() bool {
	if s.peek() == 'n' && bytes.HasPrefix(s.data[s.pos:], []byte("null")) {
		s.pos += len("null")
		return true
	}
	return false
}

// stringInto reads a string into *out; null leaves *out as it is, as
// encoding/json does. A string that is not valid UTF-8 is left to
// encoding/json, which replaces what is not.
func (s *entryScanner) stringInto(out *string) bool {
	if s.null() {
		return true
	}
	v, ok := s.rawString()
	if !ok || !utf8.Valid(v) {
		return false
	}
	*out = string(v)
	return true
}

// knownString is stringInto that takes a value among known (the common
// case) without allocating a copy of it.
func (s *entryScanner) knownString(out *string, known []string) bool {
	if s.null() {
		return true
	}
	v, ok := s.rawString()
	if !ok || !utf8.Valid(v) {
		return false
	}
	for _, k := range known {
		if string(v) == k {
			*out = k
			return true
		}
	}
	*out = string(v)
	return true
}

// knownAuthModes and knownRefreshStatuses are the values knownString finds
// without a copy.
var (
	knownAuthModes       = []string{string(catalog.OAuth2), string(catalog.APIKey), string(catalog.OAuth2CC), string(catalog.App), string(catalog.Basic), string(catalog.Custom)}
	knownRefreshStatuses = []string{string(refreshOK), string(refreshFailing), string(refreshExhausted), string(refreshReauth)}
)

// present reads a string (or null) and reports whether it is non-empty.
func (s *entryScanner) present(out *bool) bool {
	var v string
	if !s.stringInto(&v) {
		return false
	}
	*out = v != ""
	return true
}

// time reads a time through time.Time's UnmarshalJSON, given the raw value
// as encoding/json gives it (null leaves *out as it is).
func (s *entryScanner) time(out *time.Time) bool {
	s.space()
	start := s.pos
	if !s.skip() {
		return false
	}
	return out.UnmarshalJSON(s.data[start:s.pos]) == nil
}

// credentials reads the credentials object's scheduling fields.
func (s *entryScanner) credentials(f *scheduleFields) bool {
	if s.null() {
		return true
	}
	return s.object(true, func(name []byte) bool {
		switch string(name) {
		case "access_token":
			return s.seen.first(&s.seen.accessToken) && s.present(&f.HasAccessToken)
		case "refresh_token":
			return s.seen.first(&s.seen.refreshToken) && s.present(&f.HasRefreshToken)
		case "expires_at":
			return s.seen.first(&s.seen.expiresAt) && s.time(&f.ExpiresAt)
		}
		return s.skip()
	})
}

// rawTokenResponse notes whether the token response names a refresh
// token's expiry (refreshExpiryMembers); null leaves none.
func (s *entryScanner) rawTokenResponse(f *scheduleFields) bool {
	if s.null() {
		return true
	}
	return s.object(false, func(name []byte) bool {
		if slices.Contains(refreshExpiryMembers, string(name)) {
			f.RefreshExpiryMember = true
		}
		return s.skip()
	})
}

// skip consumes one value of any type.
func (s *entryScanner) skip() bool {
	switch s.peek() {
	case '"':
		return s.skipString()
	case '{', '[':
		return s.skipNested()
	case 0, ',', '}', ']', ':':
		return false
	}
	start := s.pos
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == ',' || c == '}' || c == ']' || isJSONSpace(c):
			return s.pos > start
		}
		s.pos++
	}
	return s.pos > start
}

// skipString consumes a string, escapes included.
func (s *entryScanner) skipString() bool {
	for i := s.pos + 1; i < len(s.data); i++ {
		switch s.data[i] {
		case '\\':
			i++
		case '"':
			s.pos = i + 1
			return true
		}
	}
	return false
}

// skipNested consumes an object or an array, whatever it nests.
func (s *entryScanner) skipNested() bool {
	depth := 0
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case '"':
			if !s.skipString() {
				return false
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.pos++
				return true
			}
		}
		s.pos++
	}
	return false
}

// decodeScheduleFields reads the scheduling fields of a stored entry: by
// scanScheduleFields, or when it cannot, by decoding the entry whole as
// every read does.
func decodeScheduleFields(key string, value []byte) (scheduleFields, error) {
	if f, ok := scanScheduleFields(value); ok {
		return f, nil
	}
	c, err := decodeConnectionEntry(key, value)
	if err != nil {
		return scheduleFields{}, err
	}
	return c.scheduleFields(), nil
}
