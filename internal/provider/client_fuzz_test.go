// SPDX-License-Identifier: MPL-2.0

// Cross-cutting on purpose: fuzz targets over URL templates and token
// answers share one file and corpus layout.

package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

func FuzzExpandURL(f *testing.F) {
	f.Add("https://${connectionConfig.sub}.example.test/t", "acme")
	f.Add("https://${connectionConfig.sub}.example.test/${connectionConfig.sub}", "a.b-c_d")
	f.Add("https://x.test/${connectionConfig.sub}", "evil.test/x?")
	f.Add("https://${connectionConfig.sub}/t", "user@evil")
	f.Add("https://x.test/t?a=${connectionConfig.sub}&b=1", "1&b=2#/x@evil:")
	f.Fuzz(func(t *testing.T, tmpl, value string) {
		if ValidateURLTemplate("token_url", tmpl) != nil || !strings.Contains(tmpl, "${connectionConfig.sub}") {
			return
		}
		cfg := map[string]any{"sub": value}
		out, err := ExpandURL("token_url", tmpl, cfg)
		if err != nil {
			return
		}
		// What was filled is the first alternative whose placeholders cfg
		// has, as the client trims it.
		alt := ""
		for _, a := range Alternatives(tmpl) {
			if missingPlaceholder(a, cfg) == "" {
				alt = a
				break
			}
		}
		if !strings.Contains(alt, "${connectionConfig.sub}") {
			return
		}
		tmpl = alt
		// A filled URL keeps the template's scheme and host shape: the
		// value can name a subdomain or a path segment, never another
		// host, user info, query or fragment; in the query string it is
		// one escaped value. The expected host is the template's, parsed
		// with a marker where the value goes.
		u, perr := url.Parse(out)
		if perr != nil {
			t.Fatalf("filled URL %q does not parse", out)
		}
		if strings.ContainsAny(value, "/?#@:\\%") && !onlyInQuery(tmpl) {
			t.Fatalf("value %q was accepted", value)
		}
		if onlyInQuery(tmpl) && u.Fragment != "" {
			t.Fatalf("value %q made a fragment: %q", value, out)
		}
		const marker = "zzmarkerzz"
		shape, perr := url.Parse(strings.ReplaceAll(tmpl, "${connectionConfig.sub}", marker))
		if perr != nil || shape.User != nil {
			t.Fatalf("template %q parsed with a marker: %v", tmpl, perr)
		}
		wantHost := strings.ReplaceAll(strings.ToLower(shape.Host), marker, strings.ToLower(value))
		if got := strings.ToLower(u.Host); got != wantHost || !strings.EqualFold(u.Scheme, shape.Scheme) {
			t.Fatalf("filled URL %q goes to %q, want %q", out, got, wantHost)
		}
	})
}

// onlyInQuery reports whether every placeholder of tmpl sits in its query
// string.
func onlyInQuery(tmpl string) bool {
	for _, p := range placeholderParts(tmpl) {
		if p != partQuery {
			return false
		}
	}
	return true
}

// bodyTransport answers every request with one fixed response.
type bodyTransport struct {
	status int
	body   []byte
}

func (b bodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: b.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(b.body)), Request: r}, nil
}

func FuzzTokenResponse(f *testing.F) {
	f.Add(200, []byte(`{"access_token":"a","token_type":"Bearer","expires_in":3600,"refresh_token":"r"}`))
	f.Add(200, []byte(`access_token=a&token_type=bearer`))
	f.Add(400, []byte(`{"error":"invalid_grant","error_description":"rt-secret"}`))
	f.Add(200, []byte(`{"access_token":"a","expires_in":"3600"}`))
	f.Add(201, []byte(`{"token":"ghs_x","expires_at":"2030-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 599 {
			return
		}
		c := New(&http.Client{Transport: bodyTransport{status, body}, Timeout: time.Second}, time.Now)
		app := OAuthApp{ClientID: "id", ClientSecret: "client-secret-zz", AuthStyle: "params"}
		ep := resolved(Endpoints{Token: "http://p.test/token", APIBase: "http://p.test"})
		tok, err := c.Refresh(context.Background(), app, ep, "rt-secret")
		if err == nil && tok.AccessToken == "" {
			t.Fatal("a token without access_token was accepted")
		}
		if err != nil && (strings.Contains(err.Error(), "rt-secret") || strings.Contains(err.Error(), "client-secret-zz")) {
			t.Fatalf("error %q holds a secret", err)
		}
		_ = DecodeBody(body)
		if _, err := appToken(DecodeBody(body)); err == nil && status/100 == 2 {
			// fine: a token was found
		}
	})
}

// FuzzProxyPath: whatever provider path a caller sends, an accepted one
// stays under the base: same scheme, host and port, the base's path as its
// prefix, and no dot segment, '\', '@' or NUL in any decoding of what is
// sent, however often a provider decodes it.
func FuzzProxyPath(f *testing.F) {
	for _, seed := range []string{"v1/items", "v1/..%2f..%2fadmin", "%252e%252e/x", "//127.0.0.2:1/x", "@evil/x",
		"http:%2f%2fevil", "a\r\nHost: evil", "v1/%25252e%25252e/x", "v1/a b;c=d/", "x/%2e", "v1/%u002e%u002e"} {
		f.Add(seed)
	}
	base, err := url.Parse("https://api.example.test/base")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p string) {
		segs, err := ProxyPath(p)
		if err != nil {
			return
		}
		u, err := proxyURL(base, segs, "")
		if err != nil {
			return
		}
		sent, err := url.Parse(u.String())
		if err != nil {
			t.Fatalf("%q: the URL sent does not parse: %v", p, err)
		}
		if sent.Scheme != "https" || sent.Host != "api.example.test" || sent.User != nil || sent.RawQuery != "" || sent.Fragment != "" {
			t.Fatalf("%q left the base: %s", p, sent)
		}
		wire := sent.EscapedPath()
		if !strings.HasPrefix(wire, "/base/") {
			t.Fatalf("%q: path %s is not under the base", p, wire)
		}
		for range 5 {
			for _, seg := range strings.Split(strings.TrimPrefix(wire, "/"), "/") {
				if seg == "." || seg == ".." || strings.ContainsAny(seg, "\\@\x00\r\n") {
					t.Fatalf("%q: what is sent (%s) decodes to segment %q", p, sent.EscapedPath(), seg)
				}
			}
			next, err := url.PathUnescape(wire)
			if err != nil || next == wire {
				break
			}
			// A decoded '/' would split a segment: the check above
			// refuses encoded ones, so only the original '/' remain.
			wire = next
		}
	})
}

// FuzzProxyJSONScrub: whatever a provider answers a proxied call with, no
// string of the scrubbed body, read token by token as a streaming or
// first-key-wins decoder would (duplicate keys included), holds the
// connection's secret, and neither do its bytes.
func FuzzProxyJSONScrub(f *testing.F) {
	const secret = "tok-fedcba9876543210"
	for _, seed := range []string{`{"a":"\u0074ok-fedcba9876543210","a":1}`, `["x","tok-fedcba9876543210"]`,
		`{"k\u0065y":"tok-fedcba98765\u0034\u0033210"}`, `{"a":[{"b":"\/tok-fedcba9876543210\/"}]}`, `"plain"`} {
		f.Add(seed)
	}
	sc := safetext.NewScrubber(secret)
	f.Fuzz(func(t *testing.T, body string) {
		out := scrubBody(http.StatusOK, []byte(body), sc)
		if bytes.Contains(out, []byte(secret)) {
			t.Fatalf("%q: the scrubbed body holds the secret: %q", body, out)
		}
		if !json.Valid(out) {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		for {
			tok, err := dec.Token()
			if err != nil {
				return
			}
			if s, ok := tok.(string); ok && strings.Contains(s, secret) {
				t.Fatalf("%q: the scrubbed body %q decodes to the secret", body, out)
			}
		}
	})
}
