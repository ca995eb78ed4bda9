// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// The proxy: one request of an application to a provider's API, sent with a
// connection's credential, which the application never sees. Like a token
// request it leaves only through the Client's egress guard, to the host of
// the connection's api_base_url as the integration's host policy allows it;
// redirects are not followed, the answer and the time are bounded.

// ProxyBase is a connection's API base URL, expanded and checked under its
// integration's host policy. Only ResolveProxyBase makes one: the zero value
// reaches no host.
type ProxyBase struct {
	url    *url.URL
	policy *HostPolicy
}

// ResolveProxyBase expands the api_base_url of templates with a connection's
// config, as a connection read renders its base_url, and refuses a result
// outside the templates' host policy or one that is not an absolute http(s)
// URL without user information or fragment.
func ResolveProxyBase(templates Endpoints, cfg map[string]any) (ProxyBase, error) {
	if templates.APIBase == "" {
		return ProxyBase{}, &ConfigError{"the integration has no api_base_url to proxy to"}
	}
	raw, err := ClientBaseURL(templates, cfg)
	if err != nil {
		return ProxyBase{}, err
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return ProxyBase{}, &ConfigError{"api_base_url is not an absolute http(s) URL without user information"}
	}
	policy := templates.policy()
	return ProxyBase{url: u, policy: &policy}, nil
}

// Host is the base's host (with its port), for tests and messages that may
// name it: it is made of the operator's templates and approved config.
func (b ProxyBase) Host() string {
	if b.url == nil {
		return ""
	}
	return b.url.Host
}

// Reasons a provider path is refused, each a sentence for a 400.
var (
	errProxyPathEmpty    = errors.New("the provider path is empty")
	errProxyPathAbsolute = errors.New("the provider path may not be an absolute URL")
)

// MaxProxyPathBytes bounds a provider path.
const MaxProxyPathBytes = 4096

// schemeRe is a URL scheme followed by ':' at the start of a segment: a
// segment that a resolver could take for an absolute URL.
var schemeRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// ProxyPath checks a provider path as Vault matched it (its HTTP layer has
// decoded the request's path once) and returns its segments. Refused: an
// empty segment (//), a segment that decodes, once or more, to "." or ".."
// or to text holding '/', '\', '@', '#', '?', NUL, a control character or
// invalid UTF-8; a first segment that starts like a URL scheme. What passes
// is sent segment by segment, each escaped once, so the path the provider
// receives is exactly the path Vault's policy matched.
func ProxyPath(p string) ([]string, error) {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return nil, errProxyPathEmpty
	}
	if len(p) > MaxProxyPathBytes {
		return nil, fmt.Errorf("the provider path is longer than %d bytes", MaxProxyPathBytes)
	}
	segments := strings.Split(p, "/")
	for i, seg := range segments {
		if seg == "" {
			if i == len(segments)-1 {
				continue // a trailing slash is part of the path
			}
			return nil, fmt.Errorf("the provider path may not hold an empty segment (//)")
		}
		if err := checkSegment(seg); err != nil {
			return nil, fmt.Errorf("provider path segment %d: %w", i+1, err)
		}
	}
	if schemeRe.MatchString(segments[0]) {
		return nil, errProxyPathAbsolute
	}
	return segments, nil
}

// maxSegmentDecodings bounds how often a segment is percent-decoded to
// find what it may become further down (a provider, a proxy in front of
// it, a framework that decodes again).
const maxSegmentDecodings = 4

// checkSegment refuses a segment any of whose decodings is a dot segment
// or holds a character that would end or redirect the path.
func checkSegment(seg string) error {
	cur := seg
	for range maxSegmentDecodings {
		if isDotSegment(cur) {
			return errors.New("a segment may not be '.' or '..' (nor encode one, nor one followed by spaces or by ';' and path parameters)")
		}
		if !utf8.ValidString(cur) {
			return errors.New("a segment must be UTF-8 text")
		}
		for _, r := range cur {
			switch {
			case r == '/' || r == '\\':
				return errors.New("a segment may not hold or encode '/' or '\\'")
			case lookAlikes[r]:
				return fmt.Errorf("a segment may not hold or encode %U, which some servers read as '.', '/' or '\\'", r)
			case r == '@' || r == '#' || r == '?':
				return fmt.Errorf("a segment may not hold or encode %q", r)
			case unicode.IsControl(r) || r == 0x2028 || r == 0x2029:
				return errors.New("a segment may not hold or encode a control character")
			}
		}
		next, err := url.PathUnescape(cur)
		if err != nil || next == cur {
			break // no further decoding: what is left is sent escaped
		}
		cur = next
	}
	return nil
}

// isDotSegment reports whether a decoded segment is one a server may
// resolve as "." or "..": Tomcat, Jetty and Spring cut a segment's path
// parameters (from its first ';') before they resolve dot segments, and
// Windows servers (IIS) trim trailing spaces, so "..;x=1" and ".. " are
// refused as well as "." and "..". Matrix parameters on any other segment
// ("items;page=2") pass, and so does "...".
func isDotSegment(seg string) bool {
	name, _, _ := strings.Cut(seg, ";")
	name = strings.TrimRight(name, " \t")
	return name == "." || name == ".."
}

// lookAlikes are characters that a server which normalizes a decoded path
// (NFKC, or Windows' best-fit mapping) turns into '.', '/' or '\\'; a
// segment holding one is refused, in every decoding.
var lookAlikes = map[rune]bool{
	0x2024: true, 0x2025: true, 0x2026: true, 0xFE52: true, 0xFF0E: true, // dots, leaders, ellipsis
	0xFF0F: true, 0x2215: true, 0x2044: true, 0x29F8: true, // slashes
	0xFF3C: true, 0xFE68: true, 0x2216: true, 0x29F9: true, // backslashes
}

// ProxyRequest is one proxied request as the Client sends it.
type ProxyRequest struct {
	Method string
	// Segments are the provider path's segments, checked by ProxyPath.
	Segments []string
	// Query is the caller's query string, encoded; added to the base's.
	Query string
	// Header holds the caller's allowed headers and the injected
	// credential.
	Header http.Header
	Body   []byte
	// MaxResponseBytes bounds the answer's body; more is ErrProxyTooLarge.
	MaxResponseBytes int64
	// Secrets are the connection's secrets: scrubbed from the headers and
	// error bodies of the answer.
	Secrets []string
}

// ProxyResponse is a provider's answer to a proxied request.
type ProxyResponse struct {
	Status int
	// Header is the provider's, without hop-by-hop headers, cookies,
	// CORS headers, Content-Length and Transfer-Encoding, secrets scrubbed.
	Header http.Header
	Body   []byte
}

// ProxyTooLargeError is an answer whose body is over the request's bound:
// nothing of it is returned.
type ProxyTooLargeError struct{ Limit int64 }

func (e *ProxyTooLargeError) Error() string {
	return fmt.Sprintf("the provider's answer is larger than proxy_max_response (%d bytes)", e.Limit)
}

// ProxyTimeoutError is a request the provider did not answer in time.
type ProxyTimeoutError struct{}

func (*ProxyTimeoutError) Error() string {
	return "the provider did not answer within the proxy timeout"
}

// Proxy sends req to base under base's host policy, once: the caller
// decides about retries. The context bounds the time (the caller's timeout);
// its deadline passing is a ProxyTimeoutError. An answer of any status is a
// ProxyResponse; a transport failure an *Error that says the provider could
// not be reached, without the URL.
func (c *Client) Proxy(ctx context.Context, base ProxyBase, req ProxyRequest) (*ProxyResponse, error) {
	if base.url == nil || base.policy == nil {
		return nil, &EgressError{Field: "api_base_url"}
	}
	target, err := proxyURL(base.url, req.Segments, req.Query)
	if err != nil {
		return nil, err
	}
	if err := base.policy.checkURL("api_base_url", target.String()); err != nil {
		return nil, err
	}
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(withPolicy(ctx, *base.policy), req.Method, target.String(), body)
	if err != nil {
		return nil, &ConfigError{"the proxied request could not be built"}
	}
	hr.Header = req.Header.Clone()
	if hr.Header == nil {
		hr.Header = http.Header{}
	}
	if hr.Header.Get("User-Agent") == "" {
		hr.Header.Set("User-Agent", "vault-plugin-secrets-connect")
	}
	resp, err := c.proxy.Do(hr)
	if err != nil {
		return nil, proxyFailure(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 599 {
		// A protocol switch or an interim answer is no answer to return.
		return nil, &Error{cause: fmt.Errorf("the provider answered HTTP %d, which the proxy does not pass on", resp.StatusCode)}
	}
	sc := c.scrubbers.get(req.Secrets)
	if enc := undecodedEncoding(resp.Header); enc != "" {
		// Compressed bytes hide an echo from the scrub, and the caller
		// would decompress it.
		return nil, &Error{Status: resp.StatusCode, Description: fmt.Sprintf(
			"its body has Content-Encoding %q, which the proxy cannot scrub and does not pass on", safetext.Printable(sc.Scrub(enc), 40))}
	}
	limit := req.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultProxyMaxResponse
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, proxyFailure(ctx, err)
	}
	if int64(len(data)) > limit {
		return nil, &ProxyTooLargeError{Limit: limit}
	}
	return &ProxyResponse{Status: resp.StatusCode, Header: answerHeaders(resp.Header, sc), Body: scrubBody(resp.StatusCode, data, sc)}, nil
}

// RetryAfter is when an answer's Retry-After header (delay seconds or an
// HTTP date) asks to be called again; zero without one.
func RetryAfter(h http.Header, now time.Time) time.Time { return parseRetryAfter(h, now) }

// scrubberCache keeps the Scrubber of each distinct set of secrets, so that
// the encoded forms of one connection's secrets are computed once, not per
// call. Keyed by the SHA-256 of the set: a connection whose secrets change
// gets a new one.
type scrubberCache struct {
	mu sync.Mutex
	m  map[[32]byte]*safetext.Scrubber
}

// maxCachedScrubbers bounds the cache; past it, it starts over.
const maxCachedScrubbers = 4096

func (sc *scrubberCache) get(secrets []string) *safetext.Scrubber {
	h := sha256.New()
	for _, s := range secrets {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	var key [32]byte
	h.Sum(key[:0])
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if s, ok := sc.m[key]; ok {
		return s
	}
	if sc.m == nil || len(sc.m) >= maxCachedScrubbers {
		sc.m = map[[32]byte]*safetext.Scrubber{}
	}
	s := safetext.NewScrubber(secrets...)
	sc.m[key] = s
	return s
}

// DefaultProxyMaxResponse is the bound of a proxied answer's body when the
// request names none.
const DefaultProxyMaxResponse = 10 << 20

// proxyFailure is a transport failure as a caller may show it: a timeout,
// or an unreachable provider without the URL (which url.Error quotes).
func proxyFailure(ctx context.Context, err error) error {
	var ee *EgressError
	if errors.As(err, &ee) {
		return ee
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return &ProxyTimeoutError{}
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return &ProxyTimeoutError{}
	}
	return &Error{cause: errors.New(redactedCause(err))}
}

// proxyURL is base with segments appended to its path, each escaped once,
// and query added to its query string. The result keeps base's scheme and
// host: it is checked, not assumed.
func proxyURL(base *url.URL, segments []string, query string) (*url.URL, error) {
	escaped := make([]string, len(segments))
	for i, s := range segments {
		escaped[i] = escapeSegment(s)
	}
	u := *base
	basePath := strings.TrimSuffix(base.EscapedPath(), "/")
	raw := basePath + "/" + strings.Join(escaped, "/")
	p, err := url.PathUnescape(raw)
	if err != nil {
		return nil, &ConfigError{"the provider path could not be encoded"}
	}
	u.Path, u.RawPath = p, raw
	switch {
	case query == "":
	case u.RawQuery == "":
		u.RawQuery = query
	default:
		u.RawQuery += "&" + query
	}
	u.Fragment, u.RawFragment = "", ""
	if u.Scheme != base.Scheme || u.Host != base.Host || u.User != nil {
		return nil, &ConfigError{"the provider path would leave the base URL"}
	}
	return &u, nil
}

// escapeSegment percent-encodes a path segment: every byte but the
// unreserved characters and the sub-delimiters and ':' a segment may hold
// as they are (RFC 3986 section 3.3), so ';' or '=' reach the provider as
// the caller wrote them and a '%' as "%25".
func escapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~!$&'()*+,;=:", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// droppedAnswerHeaders are the provider's headers a proxied answer never
// carries: hop-by-hop (RFC 9110 section 7.6.1), what sets or reads state in
// the caller's browser, and the framing that the proxy redoes.
var droppedAnswerHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Set-Cookie": true, "Set-Cookie2": true, "Content-Length": true, "Alt-Svc": true,
}

// undecodedEncoding is an answer's Content-Encoding other than identity
// ("" for none): the transport decodes the gzip it asked for itself and
// removes the header, so what is left is an encoding nobody asked for.
func undecodedEncoding(h http.Header) string {
	for _, v := range h.Values("Content-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
				return enc
			}
		}
	}
	return ""
}

// answerHeaders are h without droppedAnswerHeaders, those the Connection
// header names, Access-Control-*, any whose name holds a secret in a form
// the scrub finds (a provider that reflects a request header into a name),
// and with every secret scrubbed from the values.
func answerHeaders(h http.Header, sc *safetext.Scrubber) http.Header {
	named := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			named[http.CanonicalHeaderKey(strings.TrimSpace(name))] = true
		}
	}
	out := http.Header{}
	for name, values := range h {
		canon := http.CanonicalHeaderKey(name)
		if droppedAnswerHeaders[canon] || named[canon] || strings.HasPrefix(canon, "Access-Control-") {
			continue
		}
		if sc.Scrub(name) != name || (canon != name && sc.Scrub(canon) != canon) {
			continue
		}
		for _, v := range values {
			out.Add(canon, sc.Scrub(v))
		}
	}
	return out
}

// maxDeepScrubBytes bounds the error bodies scrubbed of every encoding of a
// secret and of partial echoes (which costs time in proportion to the body
// and the secrets); larger ones lose the exact forms only.
const maxDeepScrubBytes = 64 << 10

// scrubBody removes the connection's secrets from an answer's body, which
// a provider may fill with what it was sent. An error body (4xx, 5xx) loses
// them in every form safetext knows, partial echoes included; any other
// body (and an error body over maxDeepScrubBytes), whose bytes the caller
// may check (a file, an image), loses only exact copies of them as sent or
// URL-, JSON-, hex- or base64-encoded, and is otherwise returned byte for
// byte. A JSON body's strings are scrubbed again as they decode.
func scrubBody(status int, body []byte, sc *safetext.Scrubber) []byte {
	if len(body) == 0 {
		return body
	}
	text := string(body)
	scrub := sc.Forms
	if status >= 400 && len(body) <= maxDeepScrubBytes {
		scrub = sc.Scrub
	}
	out := scrub(text)
	if out != text {
		body = []byte(out)
	}
	return scrubJSONStrings(body, sc.Forms)
}

// scrubJSONStrings scrubs the strings (keys and values) of a JSON body as
// they decode: "\u0074ok..." passes a scrub of the bytes and decodes into
// the token, in the proxy's json answer or in the caller's own decoder.
// Every string is checked as it comes, token by token, duplicate keys
// included (a decoder that keeps the first of them, or a streaming one,
// reads what Go's, which keeps the last, drops). A body with one that
// changes is decoded, scrubbed and encoded again (keys sorted, one of each
// duplicate kept); any other is returned byte for byte.
func scrubJSONStrings(body []byte, scrub func(string) string) []byte {
	if !bytes.Contains(body, []byte{'\\'}) {
		return body // without an escape, the bytes were what decodes
	}
	if !json.Valid(body) {
		return withheldIfEscapedEcho(body, scrub)
	}
	if !jsonStringsChange(body, scrub) {
		return body
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []byte(withheldBody)
	}
	changed := false
	out, err := json.Marshal(scrubJSONValue(v, scrub, &changed))
	if err != nil {
		return []byte(withheldBody)
	}
	return out
}

// jsonStringsChange reports whether scrub changes any string, key or
// value, of a valid JSON text as a decoder reads them one by one.
func jsonStringsChange(body []byte, scrub func(string) string) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return false // the end of the text
		}
		if s, ok := tok.(string); ok && scrub(s) != s {
			return true
		}
	}
}

// withheldIfEscapedEcho checks a body with escapes that is not one JSON
// text (a newline-delimited stream, a text with trailing bytes or a byte
// order mark, a script): a caller's decoder may still read JSON strings in
// it, so every JSON escape is decoded wherever it stands, and a body in
// which that reveals a secret is withheld whole. Where the strings begin
// is not known without one JSON text to parse, so nothing less than the
// whole body can be replaced.
func withheldIfEscapedEcho(body []byte, scrub func(string) string) []byte {
	view := jsonUnescaped(body)
	if scrub(view) != view {
		return []byte(withheldBody)
	}
	return body
}

// jsonUnescaped is b with every JSON string escape decoded in place
// (\uXXXX, a surrogate pair as one rune, \" \\ \/ \b \f \n \r \t); a
// backslash that starts no escape stays as it is.
func jsonUnescaped(b []byte) string {
	var out strings.Builder
	out.Grow(len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out.WriteByte(b[i])
			continue
		}
		if r, n := jsonEscape(b[i:]); n > 0 {
			out.WriteRune(r)
			i += n - 1
			continue
		}
		out.WriteByte(b[i])
	}
	return out.String()
}

// jsonSimpleEscapes are JSON's two-character escapes by their second.
var jsonSimpleEscapes = map[byte]rune{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// jsonEscape decodes the escape at the start of b (b[0] is a backslash):
// its rune and length, or a length of 0 when b starts no escape.
func jsonEscape(b []byte) (rune, int) {
	if simple, ok := jsonSimpleEscapes[b[1]]; ok {
		return simple, 2
	}
	r, ok := hexRune(b, 1)
	if !ok {
		return 0, 0
	}
	if utf16.IsSurrogate(r) && len(b) >= 12 && b[6] == '\\' {
		if low, ok := hexRune(b, 7); ok {
			if pair := utf16.DecodeRune(r, low); pair != utf8.RuneError {
				return pair, 12
			}
		}
	}
	return r, 6
}

// hexRune reads "uXXXX" at b[at:].
func hexRune(b []byte, at int) (rune, bool) {
	if len(b) < at+5 || b[at] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[at+1:at+5]), 16, 32)
	return rune(v), err == nil
}

// withheldBody replaces a body that could not be scrubbed.
const withheldBody = "[withheld: the answer echoed a secret]"

// scrubJSONValue is v with scrub applied to every string in it; changed is
// set when one changes.
func scrubJSONValue(v any, scrub func(string) string, changed *bool) any {
	switch t := v.(type) {
	case string:
		out := scrub(t)
		if out != t {
			*changed = true
		}
		return out
	case []any:
		for i := range t {
			t[i] = scrubJSONValue(t[i], scrub, changed)
		}
		return t
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			nk := scrub(k)
			if nk != k {
				*changed = true
			}
			out[nk] = scrubJSONValue(e, scrub, changed)
		}
		return out
	}
	return v
}
