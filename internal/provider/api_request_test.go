// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// proxyBaseFor resolves a base on the API's address, as a connection whose
// integration's api_base_url is tmpl (with host= and port= config) would.
func proxyBaseFor(t *testing.T, tmpl string, allowed []string, cfg map[string]any) (ProxyBase, error) {
	t.Helper()
	return ResolveProxyBase(Endpoints{APIBase: tmpl, AllowedHosts: allowed, ClientAPIBase: true}, cfg)
}

func TestProxyPathRefusesTraversalAndHostTricks(t *testing.T) {
	// Each as Vault hands the path over: its HTTP layer has decoded the
	// request's path once, so "..%2f" on the wire arrives as "../" and
	// "%252e" as "%2e".
	for _, p := range []string{
		"", "/", "v1/../admin", "v1/..", "../x", "./x", "v1/./x",
		"v1/..%2f..%2fadmin", "%2e%2e/admin", "%252e%252e/admin", "v1/%25252e%25252e",
		"v1/a%2fb", "v1/a%2Fb", "v1/a%5cb", `v1/a\b`, "v1//x", "//127.0.0.2:9/x",
		"@127.0.0.2/x", "v1/@127.0.0.2", "user@127.0.0.2", "http:%2f%2f127.0.0.2/x", "http://127.0.0.2/x",
		"https:", "javascript:x", "v1/x#frag", "v1/x%23frag", "v1/x?y=1", "v1/x%3Fy=1",
		"v1/a%00b", "v1/a\x00b", "v1/a\r\nHost: evil", "v1/a%0d%0aHost:%20evil", "v1/a\tb", "v1/\u2028",
		"v1/\xff", "v1/%ff", strings.Repeat("a/", MaxProxyPathBytes),
	} {
		if segs, err := ProxyPath(p); err == nil {
			t.Errorf("ProxyPath(%q) = %q, want a refusal", p, segs)
		}
	}
	for p, want := range map[string][]string{
		"v1/items":            {"v1", "items"},
		"/v1/items/":          {"v1", "items", ""},
		"repos/acme/a b":      {"repos", "acme", "a b"},
		"v1/a%20b":            {"v1", "a%20b"},
		"v1/x:y":              {"v1", "x:y"},
		"v1/...":              {"v1", "..."},
		"v1/items;matrix=1":   {"v1", "items;matrix=1"},
		"v1/caf\u00e9/+/%2B~": {"v1", "caf\u00e9", "+", "%2B~"},
	} {
		segs, err := ProxyPath(p)
		if err != nil || strings.Join(segs, "|") != strings.Join(want, "|") {
			t.Errorf("ProxyPath(%q) = %q, %v; want %q", p, segs, err, want)
		}
	}
}

func TestProxySendsToTheBaseOnlyExactlyThePathMatched(t *testing.T) {
	api := oauthtest.NewAPI()
	defer api.Close()
	decoy := oauthtest.NewAPIOn("127.0.0.2")
	defer decoy.Close()
	c := New(&http.Client{}, time.Now)
	base, err := proxyBaseFor(t, api.URL+"/api", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for raw, wantPath := range map[string]string{
		"v1/items":       "/api/v1/items",
		"v1/a b/":        "/api/v1/a%20b/",
		"v1/a%20b":       "/api/v1/a%2520b",
		"v1/x:y;z=1/%2B": "/api/v1/x:y;z=1/%252B",
	} {
		segs, err := ProxyPath(raw)
		if err != nil {
			t.Fatal(err)
		}
		api.Reset()
		resp, err := c.Proxy(context.Background(), base, ProxyRequest{Method: "GET", Segments: segs, Query: "a=1&b=%2F",
			Header: http.Header{"Authorization": {"Bearer tok-1234567890"}}})
		if err != nil || resp.Status != 200 {
			t.Fatalf("%s: %v %v", raw, resp, err)
		}
		got := api.Requests()
		if len(got) != 1 || got[0].Path != wantPath || got[0].RawQuery != "a=1&b=%2F" || got[0].Header.Get("Authorization") != "Bearer tok-1234567890" {
			t.Fatalf("%s: the API received %+v, want path %s", raw, got, wantPath)
		}
	}
	if n := len(decoy.Requests()); n != 0 {
		t.Fatalf("the decoy received %d request(s)", n)
	}
}

func TestProxyBaseRefusesHostsOutsideThePolicy(t *testing.T) {
	api := oauthtest.NewAPI()
	defer api.Close()
	decoy := oauthtest.NewAPIOn("127.0.0.2")
	defer decoy.Close()
	port := api.URL[strings.LastIndex(api.URL, ":")+1:]
	tmpl := "http://${connectionConfig.host}:" + port
	if _, err := proxyBaseFor(t, tmpl, []string{"127.0.0.1"}, map[string]any{"host": "127.0.0.1"}); err != nil {
		t.Fatalf("an allowed host: %v", err)
	}
	for _, host := range []string{"127.0.0.2", "localhost", "127.0.0.1.nip.io", "127.0.0.1@127.0.0.2", "127.0.0.2#"} {
		_, err := proxyBaseFor(t, tmpl, []string{"127.0.0.1"}, map[string]any{"host": host})
		if err == nil {
			t.Errorf("host %q: a base outside the policy was resolved", host)
		}
	}
	// A zero base reaches nothing.
	c := New(&http.Client{}, time.Now)
	if _, err := c.Proxy(context.Background(), ProxyBase{}, ProxyRequest{Method: "GET", Segments: []string{"x"}}); err == nil {
		t.Fatal("a zero ProxyBase sent a request")
	}
	if n := len(decoy.Requests()) + len(api.Requests()); n != 0 {
		t.Fatalf("%d request(s) were sent", n)
	}
}

func TestProxyBoundsAndAnswerHeaders(t *testing.T) {
	api := oauthtest.NewAPI()
	defer api.Close()
	decoy := oauthtest.NewAPIOn("127.0.0.2")
	defer decoy.Close()
	const secret = "tok-0123456789abcdef"
	api.Handle("GET /big", func(w http.ResponseWriter, r *http.Request) { w.Write(bytes.Repeat([]byte("x"), 2048)) })
	api.Handle("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	api.Handle("GET /redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, decoy.URL+"/stolen", http.StatusTemporaryRedirect)
	})
	api.Handle("GET /headers", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Set-Cookie", "session=1")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "1")
		h.Set("X-Echo", "Bearer "+secret)
		h.Set("X-Request-Id", "r-1")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"error":"bad token ` + secret + `","sent":"` + url.QueryEscape(secret) + `"}`))
	})
	c := New(&http.Client{}, time.Now)
	base, _ := proxyBaseFor(t, api.URL, nil, nil)
	send := func(ctx context.Context, path string, max int64) (*ProxyResponse, error) {
		return c.Proxy(ctx, base, ProxyRequest{Method: "GET", Segments: []string{path}, MaxResponseBytes: max, Secrets: []string{secret}})
	}
	var tooLarge *ProxyTooLargeError
	if _, err := send(context.Background(), "big", 1024); !errors.As(err, &tooLarge) || !strings.Contains(err.Error(), "1024") {
		t.Fatalf("an answer over the bound: %v", err)
	}
	if resp, err := send(context.Background(), "big", 2048); err != nil || len(resp.Body) != 2048 {
		t.Fatalf("an answer at the bound: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var timeout *ProxyTimeoutError
	if _, err := send(ctx, "slow", 0); !errors.As(err, &timeout) {
		t.Fatalf("a slow answer: %v", err)
	}
	resp, err := send(context.Background(), "redirect", 0)
	if err != nil || resp.Status != http.StatusTemporaryRedirect || len(decoy.Requests()) != 0 {
		t.Fatalf("a redirect was followed or lost: %v %v, decoy saw %d", resp, err, len(decoy.Requests()))
	}
	resp, err = send(context.Background(), "headers", 0)
	if err != nil || resp.Status != http.StatusForbidden {
		t.Fatalf("headers: %v %v", resp, err)
	}
	for _, gone := range []string{"Set-Cookie", "Access-Control-Allow-Origin", "Connection", "X-Hop", "Content-Length"} {
		if v := resp.Header.Values(gone); len(v) > 0 {
			t.Errorf("answer header %s passed: %q", gone, v)
		}
	}
	if resp.Header.Get("X-Request-Id") != "r-1" {
		t.Errorf("an ordinary header was dropped: %v", resp.Header)
	}
	if all := string(resp.Body) + strings.Join(resp.Header.Values("X-Echo"), ""); strings.Contains(all, secret) || strings.Contains(all, url.QueryEscape(secret)) {
		t.Fatalf("the secret came back: %s", all)
	}
}

func TestProxyTransportFailureNamesNoURL(t *testing.T) {
	api := oauthtest.NewAPI()
	base, _ := proxyBaseFor(t, api.URL+"/secret-looking-path", nil, nil)
	api.Close() // nothing listens any more
	_, err := New(&http.Client{}, time.Now).Proxy(context.Background(), base, ProxyRequest{Method: "GET", Segments: []string{"x"}, Query: "q=private"})
	var pe *Error
	if !errors.As(err, &pe) || !pe.Unreachable() {
		t.Fatalf("want an unreachable provider, got %v", err)
	}
	if msg := err.Error(); strings.Contains(msg, "secret-looking-path") || strings.Contains(msg, "private") {
		t.Fatalf("the failure quotes the URL: %s", msg)
	}
}

func TestProxySuccessBodiesAreScrubbedOfTheSecretsOnly(t *testing.T) {
	api := oauthtest.NewAPI()
	defer api.Close()
	const secret = "tok-fedcba9876543210"
	api.Handle("GET /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"you_sent":"` + r.Header.Get("Authorization") + `","partial":"fedcba9876543"}`))
	})
	api.Handle("GET /switch", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
		w.WriteHeader(http.StatusSwitchingProtocols)
	})
	c := New(&http.Client{}, time.Now)
	base, _ := proxyBaseFor(t, api.URL, nil, nil)
	resp, err := c.Proxy(context.Background(), base, ProxyRequest{Method: "GET", Segments: []string{"echo"},
		Header: http.Header{"Authorization": {"Bearer " + secret}}, Secrets: []string{secret}})
	if err != nil || resp.Status != 200 {
		t.Fatal(resp, err)
	}
	if body := string(resp.Body); strings.Contains(body, secret) || !strings.Contains(body, `"partial":"fedcba9876543"`) {
		t.Fatalf("a 2xx body that echoes the token: %s", body)
	}
	if _, err := c.Proxy(context.Background(), base, ProxyRequest{Method: "GET", Segments: []string{"switch"}}); err == nil {
		t.Fatal("a protocol switch was answered as a provider's answer")
	}
}

// A dot segment carrying a path parameter ("..;", ".;x") is refused, in
// any decoding: a Tomcat, Jetty or Spring upstream (which strips ";..."
// before normalizing) would resolve /api/v1/..;/admin to /api/admin, out of
// the base's path prefix, of proxy_paths=/v1/* and of a policy on
// proxy/v1/*. Matrix parameters elsewhere pass (TestProxyPathRefusesTraversalAndHostTricks).
func TestProxyPathRefusesDotSegmentsWithPathParameters(t *testing.T) {
	for _, p := range []string{
		"v1/..;/admin", "v1/..;x=1/admin", "v1/.;/admin", "v1/%2e%2e;/admin", "v1/%2E.;jsessionid=a/admin",
	} {
		if segs, err := ProxyPath(p); err == nil {
			t.Errorf("ProxyPath(%q) = %q, want a refusal (a dot segment with a path parameter)", p, segs)
		}
	}
}

// Unicode look-alikes of '.' and '/' (fullwidth U+FF0E, U+FF0F,
// one-dot leader U+2024, division slash U+2215), as sent or percent-encoded,
// and dot segments with trailing spaces are refused: an upstream that
// NFKC-normalizes decoded paths or trims spaces (IIS, some Python/Java
// stacks) would read them as "..", "/".
func TestProxyPathRefusesUnicodeDotsAndSlashesAndTrailingSpaces(t *testing.T) {
	for _, p := range []string{
		"v1/\uff0e\uff0e/admin", "v1/%EF%BC%8E%EF%BC%8E/admin", "v1/a\uff0fb", "v1/\u2024\u2024/admin", "v1/a\u2215b",
		"v1/.. /admin", "v1/..%20/admin", // Windows/IIS trim a trailing space from a segment
	} {
		if segs, err := ProxyPath(p); err == nil {
			t.Errorf("ProxyPath(%q) = %q, want a refusal", p, segs)
		}
	}
}

// A 2xx body loses a secret's base64 and hex echoes too, and the bare
// base64 of a Basic credential, not only its exact/URL/JSON forms: the
// caller may not read the token (docs/proxy.md).
func TestProxy2xxBodyEchoesInBase64OrHexAreScrubbed(t *testing.T) {
	api := oauthtest.NewAPI()
	defer api.Close()
	const token = "tok-fedcba9876543210"
	basicB64 := base64.StdEncoding.EncodeToString([]byte("user:pa55-w0rd-secret"))
	api.Handle("GET /echo", func(w http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"b64":"` + base64.StdEncoding.EncodeToString([]byte(a)) + `","hex":"` + hex.EncodeToString([]byte(a)) +
			`","basic":"` + basicB64 + `"}`))
	})
	c := New(&http.Client{}, time.Now)
	base, _ := proxyBaseFor(t, api.URL, nil, nil)
	resp, err := c.Proxy(context.Background(), base, ProxyRequest{Method: "GET", Segments: []string{"echo"},
		Header:  http.Header{"Authorization": {"Bearer " + token}},
		Secrets: []string{"Bearer " + token, token, "pa55-w0rd-secret", "user:pa55-w0rd-secret"}})
	if err != nil || resp.Status != 200 {
		t.Fatal(resp, err)
	}
	body := string(resp.Body)
	for name, form := range map[string]string{
		"base64 of the header": base64.StdEncoding.EncodeToString([]byte("Bearer " + token))[:20],
		"hex of the token":     hex.EncodeToString([]byte(token)),
		"basic credential":     basicB64,
	} {
		if strings.Contains(body, form) {
			t.Errorf("a 2xx body returns the secret as %s: %s", name, body)
		}
	}
}

// An answer header whose name holds the token (a provider that reflects a
// request header into a header name) is dropped; the others pass.
func TestProxyDropsAnswerHeadersWhoseNameHoldsASecret(t *testing.T) {
	api := oauthtest.NewAPI()
	defer api.Close()
	const token = "tok-0123456789abcdef"
	api.Handle("GET /reflect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-"+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), "1")
		w.Header().Set("X-Request-Id", "r-1")
	})
	c := New(&http.Client{}, time.Now)
	base, _ := proxyBaseFor(t, api.URL, nil, nil)
	resp, err := c.Proxy(context.Background(), base, ProxyRequest{Method: "GET", Segments: []string{"reflect"},
		Header: http.Header{"Authorization": {"Bearer " + token}}, Secrets: []string{"Bearer " + token, token}})
	if err != nil {
		t.Fatal(err)
	}
	for name := range resp.Header {
		if strings.Contains(strings.ToLower(name), strings.ToLower(token)) {
			t.Fatalf("the answer's header name carries the token: %q", name)
		}
	}
	if resp.Header.Get("X-Request-Id") != "r-1" {
		t.Fatalf("a header without a secret was dropped: %v", resp.Header)
	}
}

// An answer compressed without the proxy asking (Content-Encoding
// deflate or br; gzip the transport asked for is decoded by it) would be
// scrubbed as compressed bytes and decompressed by the caller with the
// echo: it is refused, naming the encoding.
func TestProxyRefusesAnAnswerWithAnUndecodedContentEncoding(t *testing.T) {
	api := oauthtest.NewAPI()
	defer api.Close()
	for _, enc := range []string{"deflate", "br", "identity, gzip"} {
		api.Handle("GET /"+strings.ReplaceAll(enc, ", ", "-"), func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", enc)
			w.Write([]byte{0x78, 0x9c, 0x01, 0x02, 0x03})
		})
	}
	api.Handle("GET /identity", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "identity")
		w.Write([]byte("plain"))
	})
	c := New(&http.Client{}, time.Now)
	base, _ := proxyBaseFor(t, api.URL, nil, nil)
	send := func(seg string) (*ProxyResponse, error) {
		return c.Proxy(context.Background(), base, ProxyRequest{Method: "GET", Segments: []string{seg},
			Header: http.Header{"Authorization": {"Bearer tok-0123456789abcdef"}}, Secrets: []string{"tok-0123456789abcdef"}})
	}
	for _, seg := range []string{"deflate", "br", "identity-gzip"} {
		resp, err := send(seg)
		var pe *Error
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "Content-Encoding") {
			t.Fatalf("%s: an encoded body the scrubber cannot read was answered: %v, %v", seg, resp, err)
		}
	}
	if resp, err := send("identity"); err != nil || string(resp.Body) != "plain" {
		t.Fatalf("an identity answer: %v, %v", resp, err)
	}
}

// The proxy keeps its own pool (ProxyIdleConnsPerHost idle connections per
// host, its base's dialer and TLS settings), and the Client's
// CloseIdleConnections reaches it through the egress guard.
func TestProxyPoolIsItsOwnAndClosesItsIdleConnections(t *testing.T) {
	var opened, closed atomic.Int64
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	api.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	}
	api.Start()
	defer api.Close()
	baseTransport := &http.Transport{MaxIdleConnsPerHost: 1, MaxIdleConns: 10}
	c := New(&http.Client{Transport: baseTransport}, time.Now)
	proxyT := c.proxy.Transport.(egressGuard).next.(*http.Transport)
	if proxyT == baseTransport || proxyT.MaxIdleConnsPerHost != ProxyIdleConnsPerHost || proxyT.MaxIdleConns < ProxyIdleConnsPerHost {
		t.Fatalf("the proxy's transport keeps %d idle per host, %d in all (the same as the token client's: %v)",
			proxyT.MaxIdleConnsPerHost, proxyT.MaxIdleConns, proxyT == baseTransport)
	}
	base, err := proxyBaseFor(t, api.URL, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Proxy(context.Background(), base, ProxyRequest{Method: "GET", Segments: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for closed.Load() < opened.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if opened.Load() != 1 || closed.Load() != 1 {
		t.Fatalf("opened %d connection(s), %d closed after CloseIdleConnections", opened.Load(), closed.Load())
	}
}

// A 2xx JSON body that echoes the token \u-escaped under a key it repeats
// loses it too: a decoder that keeps the first of duplicate keys (or a
// streaming one) would read the token from the raw bytes, though Go's
// keeps the last.
func TestProxyJSONEchoUnderADuplicateKeyIsScrubbed(t *testing.T) {
	api := oauthtest.NewAPI()
	defer api.Close()
	const secret = "tok-fedcba9876543210"
	var esc strings.Builder
	for _, c := range secret {
		fmt.Fprintf(&esc, `\u%04x`, c)
	}
	api.Handle("GET /dup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"seen":"` + esc.String() + `","seen":"x","list":[{"k":"` + esc.String() + `","k":1}]}`))
	})
	c := New(&http.Client{}, time.Now)
	base, _ := proxyBaseFor(t, api.URL, nil, nil)
	resp, err := c.Proxy(context.Background(), base, ProxyRequest{Method: "GET", Segments: []string{"dup"},
		Header: http.Header{"Authorization": {"Bearer " + secret}}, Secrets: []string{secret}})
	if err != nil || resp.Status != 200 {
		t.Fatal(resp, err)
	}
	dec := json.NewDecoder(bytes.NewReader(resp.Body))
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if s, ok := tok.(string); ok && strings.Contains(s, secret) {
			t.Fatalf("the body decodes, token by token, to the token: %s", resp.Body)
		}
	}
}

// A body that is not one
// valid JSON text is returned byte for byte even when it holds escapes,
// so a \u-escaped echo of the token (or PHP's "\/" escape of a token with
// a '/') in a newline-delimited JSON stream, or in a JSON text followed by
// anything, or after a byte order mark, decodes into the token in the
// caller's own decoder, which reads the first value (or each line, or
// skips the mark).
func TestProxyEscapedEchoOutsideOneJSONTextIsWithheld(t *testing.T) {
	const secret = "tok-fedcba98/76543210"
	var esc strings.Builder
	for _, c := range secret {
		fmt.Fprintf(&esc, `\u%04x`, c)
	}
	php := strings.ReplaceAll(secret, "/", `\/`)
	sc := safetext.NewScrubber(secret)
	for name, body := range map[string]string{
		"ndjson, \\u escapes": `{"seen":"` + esc.String() + `"}` + "\n" + `{"n":1}` + "\n",
		"ndjson, PHP's \\/":   `{"seen":"` + php + `"}` + "\n" + `{"n":1}` + "\n",
		"trailing bytes":      `{"seen":"` + esc.String() + `"} trailing`,
		"a byte order mark":   "\ufeff" + `{"seen":"` + esc.String() + `"}`,
	} {
		out := scrubBody(http.StatusOK, []byte(body), sc)
		dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(out, []byte("\ufeff"))))
		for {
			var v any
			if err := dec.Decode(&v); err != nil {
				break
			}
			if b, _ := json.Marshal(v); strings.Contains(fmt.Sprint(v), secret) {
				t.Errorf("%s: the scrubbed body %q decodes to the secret: %s", name, out, b)
			}
		}
	}
}
