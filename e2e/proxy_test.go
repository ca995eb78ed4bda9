// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// proxyAnswer is one HTTP answer of Vault to a proxied call.
type proxyAnswer struct {
	status int
	header http.Header
	body   []byte
}

// data decodes a JSON answer's data.
func (a proxyAnswer) data(t *testing.T) map[string]any {
	t.Helper()
	var out struct {
		Data   map[string]any `json:"data"`
		Errors []string       `json:"errors"`
	}
	if err := json.Unmarshal(a.body, &out); err != nil {
		t.Fatalf("answer %d is not JSON: %.300s", a.status, a.body)
	}
	return out.Data
}

// proxyHTTP sends one request to Vault with exactly the given escaped path
// (after /v1/), token and headers.
func proxyHTTP(t *testing.T, s *vaultServer, token, method, path string, body []byte, headers map[string]string) proxyAnswer {
	t.Helper()
	req, err := http.NewRequest(method, s.addr+"/v1/"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return proxyAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

// proxySetup is a loopback API behind OAUTH2 integration "pxgh" (proxy
// paths /v1/* and /repos/*, GET and POST), two customers' connections, and
// a decoy on 127.0.0.2 that must see nothing.
type proxySetup struct {
	s            *vaultServer
	as           *oauthtest.Server
	api, decoy   *oauthtest.API
	tokA, tokB   string
	refreshOfA   string
	apiKey       string
	basicPass    string
	customSecret string
}

func setUpProxy(t *testing.T) *proxySetup {
	t.Helper()
	s := vaultFor(t)
	p := &proxySetup{s: s, as: newAuthServer(t), api: oauthtest.NewAPI(), decoy: oauthtest.NewAPIOn("127.0.0.2")}
	t.Cleanup(p.api.Close)
	t.Cleanup(p.decoy.Close)
	t.Cleanup(func() {
		if got := p.decoy.Requests(); len(got) != 0 {
			t.Errorf("the decoy on 127.0.0.2 received %d request(s): %+v", len(got), got[0])
		}
	})
	p.tokA, p.tokB = "px-at-a-"+randomHex(8), "px-at-b-"+randomHex(8)
	p.apiKey, p.basicPass, p.customSecret = "px-key-"+randomHex(8), "px-pw-"+randomHex(8), "px-custom-"+randomHex(8)
	p.refreshOfA = p.as.IssueRefreshToken()
	noteSecrets(p.tokA, p.tokB, p.apiKey, p.basicPass, p.customSecret)
	for _, name := range []string{"pxgh", "pxkey", "pxbasic", "pxcustom"} {
		s.cli(nil, "delete", "connect/integrations/"+name, "force=true")
	}
	s.mustCLI(t, "write", "connect/integrations/pxgh", "auth_mode=OAUTH2", "client_id="+p.as.ClientID, "client_secret="+p.as.ClientSecret,
		"auth_url="+p.as.AuthURL(), "token_url="+p.as.TokenURL(), "api_base_url="+p.api.URL,
		"proxy_paths=/v1/*,/repos/*", "proxy_methods=GET,POST", "proxy_retry_after_max=2", "proxy_max_response=4096", "proxy_timeout=2")
	s.mustCLI(t, "write", "connect/connections/pxgh/cust-a", "access_token="+p.tokA, "refresh_token="+p.refreshOfA)
	s.mustCLI(t, "write", "connect/connections/pxgh/cust-b", "access_token="+p.tokB)
	common := []string{"api_base_url=" + p.api.URL, "proxy_paths=/v1/*"}
	s.mustCLI(t, append([]string{"write", "connect/integrations/pxkey", "auth_mode=API_KEY", "request_headers=X-Api-Key=${apiKey}"}, common...)...)
	s.mustCLI(t, append([]string{"write", "connect/integrations/pxbasic", "auth_mode=BASIC"}, common...)...)
	s.mustCLI(t, append([]string{"write", "connect/integrations/pxcustom", "auth_mode=CUSTOM", "request_headers=X-Secret=${credentials.secret}"}, common...)...)
	s.mustCLI(t, "write", "connect/connections/pxkey/cust-a", "api_key="+p.apiKey)
	s.mustCLI(t, "write", "connect/connections/pxbasic/cust-a", "username=alice", "password="+p.basicPass)
	status, body := s.raw(t, "POST", "connect/connections/pxcustom/cust-a", []byte(`{"credentials":{"secret":"`+p.customSecret+`"}}`), "application/json")
	if status >= 300 {
		t.Fatalf("custom connection: %d %s", status, body)
	}
	return p
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func TestProxyThroughVault(t *testing.T) {
	p := setUpProxy(t)
	s := p.s
	p.api.Handle("GET /v1/repos", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session=secret")
		w.Header().Set("ETag", `"e1"`)
		w.Write([]byte(`{"repos":["a"]}`))
	})

	// The path table through Vault's ACL, with customers' tokens.
	s.cli(nil, "auth", "enable", "userpass")
	s.mustCLI(t, "policy", "write", "connect-proxy-agent", examplePolicy("proxy-agent"))
	agent := loginAs(t, s, "px-agent", nil, "connect-proxy-agent")
	checks := []struct {
		method, path string
		body         []byte
		want         int
	}{
		{"GET", "connect/connections/pxgh/cust-a/proxy/v1/repos", nil, 200},
		{"POST", "connect/connections/pxgh/cust-a/proxy/v1/repos", []byte(`{"json":{}}`), 403},
		{"GET", "connect/connections/pxgh/cust-b/proxy/v1/repos", nil, 403},
		{"GET", "connect/connections/pxkey/cust-a/proxy/v1/repos", nil, 403},
		{"GET", "connect/connections/pxgh/cust-a/proxy/repos/x", nil, 403},
		{"GET", "connect/connections/pxgh/cust-a", nil, 403},
		{"GET", "connect/connections/pxgh/cust-a/raw", nil, 403},
	}
	for _, c := range checks {
		a := proxyHTTP(t, s, agent, c.method, c.path, c.body, nil)
		if a.status != c.want {
			t.Errorf("agent %s %s: %d, want %d: %.200s", c.method, c.path, a.status, c.want, a.body)
		}
	}
	calls := p.api.Requests()
	if len(calls) != 1 || calls[0].Header.Get("Authorization") != "Bearer "+p.tokA || calls[0].Path != "/v1/repos" {
		t.Fatalf("the API received %+v", calls)
	}
	if got := proxyHTTP(t, s, agent, "GET", "connect/connections/pxgh/cust-a/proxy/v1/repos", nil, nil).data(t); got["status"] != float64(200) ||
		!reflect.DeepEqual(got["json"], map[string]any{"repos": []any{"a"}}) || got["headers"].(map[string]any)["Set-Cookie"] != nil {
		t.Fatalf("answer %v", got)
	}

	// Traversal and host tricks, as a caller would send them to Vault,
	// reach nothing.
	p.api.Reset()
	for _, trick := range []string{
		"v1/..%2f..%2fadmin", "v1/%2e%2e/%2e%2e/admin", "v1/%252e%252e/admin", "v1/%252e%252e%252fadmin", "v1/..%5cadmin",
		"v1//127.0.0.2:1/x", "v1/@127.0.0.2/x", "v1/x@127.0.0.2", "v1/http:%2f%2f127.0.0.2/x", "v1/x%0d%0aHost:%20127.0.0.2",
		"v1/x%00", "v1/x%23frag", "v1/x%3f%2e%2e", "%2f%2f127.0.0.2/v1/x", "v1/%2e", "v1/../../admin",
	} {
		// Refused by the proxy (400, 403) or by Vault's own HTTP layer
		// (a redirect to the cleaned path, which the client does not
		// follow): never a 2xx, never a 5xx.
		a := proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/"+trick, nil, nil)
		t.Logf("%s: %d %.120s", trick, a.status, a.body)
		if a.status < 300 || a.status >= 500 || strings.Contains(string(a.body), p.tokA) {
			t.Errorf("%s: %d %.200s", trick, a.status, a.body)
		}
	}
	if got := p.api.Requests(); len(got) != 0 {
		t.Fatalf("tricks reached the API: %+v", got)
	}

	// Caller headers: Authorization and Host refused (through the mount's
	// passthrough and the envelope), listed ones passed.
	s.mustCLI(t, "secrets", "tune", "-passthrough-request-headers=Authorization", "-passthrough-request-headers=If-None-Match",
		"-allowed-response-headers=ETag", "connect/")
	t.Cleanup(func() {
		s.cli(nil, "secrets", "tune", "-passthrough-request-headers=", "-allowed-response-headers=", "connect/")
	})
	a := proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/v1/repos", nil, map[string]string{"Authorization": "Bearer mine"})
	if a.status != 400 || !strings.Contains(string(a.body), "Authorization") {
		t.Errorf("a passed-through Authorization: %d %s", a.status, a.body)
	}
	for name, body := range map[string]string{
		"Authorization": `{"headers":{"Authorization":"Bearer mine"}}`, "Host": `{"headers":{"Host":"127.0.0.2"}}`,
		"line break": `{"headers":{"If-Match":"a\r\nHost: 127.0.0.2"}}`,
	} {
		a := proxyHTTP(t, s, "root", "POST", "connect/connections/pxgh/cust-a/proxy/v1/repos", []byte(body), nil)
		if a.status != 400 || !strings.Contains(string(a.body), strings.Split(name, " ")[0]) {
			t.Errorf("envelope header %s: %d %s", name, a.status, a.body)
		}
	}
	if got := p.api.Requests(); len(got) != 0 {
		t.Fatalf("refused headers reached the API: %+v", got)
	}
	a = proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/v1/repos?format=raw", nil, map[string]string{"If-None-Match": `"e0"`})
	got := p.api.Requests()
	if a.status != 200 || string(a.body) != `{"repos":["a"]}` || a.header.Get("ETag") != `"e1"` || a.header.Get("Set-Cookie") != "" ||
		len(got) != 1 || got[0].Header.Get("If-None-Match") != `"e0"` {
		t.Fatalf("raw with a passed header: %d %q %v; API got %+v", a.status, a.body, a.header, got)
	}
}

func TestProxyEveryAuthModeThroughVault(t *testing.T) {
	p := setUpProxy(t)
	for path, want := range map[string][2]string{
		"pxgh/cust-a":     {"Authorization", "Bearer " + p.tokA},
		"pxkey/cust-a":    {"X-Api-Key", p.apiKey},
		"pxbasic/cust-a":  {"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+p.basicPass))},
		"pxcustom/cust-a": {"X-Secret", p.customSecret},
	} {
		p.api.Reset()
		a := proxyHTTP(t, p.s, "root", "GET", "connect/connections/"+path+"/proxy/v1/whoami", nil, nil)
		got := p.api.Requests()
		if a.status != 200 || len(got) != 1 || got[0].Header.Get(want[0]) != want[1] {
			t.Errorf("%s: %d, API got %+v", path, a.status, got)
		}
		if strings.Contains(string(a.body), want[1]) {
			t.Errorf("%s: the answer holds the credential", path)
		}
	}
}

func TestProxyRetriesBoundsAndBodiesThroughVault(t *testing.T) {
	p := setUpProxy(t)
	s := p.s
	// 401: one renewal, one retry with the new token.
	p.api.Handle("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer "+p.tokA {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"message":"bad credentials ` + p.tokA + `"}`))
			return
		}
		w.Write([]byte("ok"))
	})
	before := p.as.Requests()
	a := proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/v1/me", nil, nil)
	if d := a.data(t); a.status != 200 || d["status"] != float64(200) || d["body"] != "ok" || p.as.Requests()-before != 1 {
		t.Fatalf("401: %d %s after %d token requests", a.status, a.body, p.as.Requests()-before)
	}
	// cust-b has no refresh token: its 401 comes back, scrubbed of the token.
	p.api.Handle("GET /v1/me-b", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"message":"bad credentials ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `"}`))
	})
	a = proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-b/proxy/v1/me-b", nil, nil)
	if a.data(t)["status"] != float64(401) || strings.Contains(string(a.body), p.tokB) {
		t.Fatalf("a provider's 401: %s", a.body)
	}

	// 429 with Retry-After, then POST not retried unless it has an
	// Idempotency-Key.
	n429 := 0
	p.api.Handle("GET /v1/limited", func(w http.ResponseWriter, r *http.Request) {
		if n429++; n429 == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write([]byte("done"))
	})
	start := time.Now()
	a = proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/v1/limited", nil, nil)
	if a.data(t)["body"] != "done" || time.Since(start) < time.Second {
		t.Fatalf("429: %s after %s", a.body, time.Since(start))
	}
	posts := 0
	p.api.Handle("POST /v1/charge", func(w http.ResponseWriter, r *http.Request) {
		if posts++; posts <= 2 { // the first POST of each of the two calls below
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	a = proxyHTTP(t, s, "root", "POST", "connect/connections/pxgh/cust-a/proxy/v1/charge", []byte(`{"json":{"amount":1}}`), nil)
	if a.data(t)["status"] != float64(503) || posts != 1 {
		t.Fatalf("a POST was retried: %s after %d posts", a.body, posts)
	}
	a = proxyHTTP(t, s, "root", "POST", "connect/connections/pxgh/cust-a/proxy/v1/charge", []byte(`{"json":{"amount":1},"headers":{"Idempotency-Key":"k-1"}}`), nil)
	if a.data(t)["status"] != float64(200) || posts != 3 {
		t.Fatalf("a POST with an Idempotency-Key: %s after %d posts", a.body, posts)
	}

	// Bounds: an answer over proxy_max_response is a 502, a slow one 504.
	p.api.Handle("GET /v1/big", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 4097)) })
	p.api.Handle("GET /v1/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	if a := proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/v1/big", nil, nil); a.status != 502 || !strings.Contains(string(a.body), "4096") {
		t.Errorf("an oversized answer: %d %s", a.status, a.body)
	}
	if a := proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/v1/slow", nil, nil); a.status != 504 {
		t.Errorf("a slow answer: %d %s", a.status, a.body)
	}

	// Binary and gzip bodies byte-exact in both formats; 204.
	bin := make([]byte, 3000)
	for i := range bin {
		bin[i] = byte(i * 7)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat("compressible ", 100)))
	zw.Close()
	p.api.Handle("GET /v1/bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(bin)
	})
	p.api.Handle("GET /v1/archive.gz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(gz.Bytes())
	})
	p.api.Handle("GET /v1/encoded", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz.Bytes())
	})
	p.api.Handle("GET /v1/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for path, want := range map[string][]byte{"bin": bin, "archive.gz": gz.Bytes(), "encoded": []byte(strings.Repeat("compressible ", 100))} {
		sum := sha256.Sum256(want)
		raw := proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/v1/"+path+"?format=raw", nil, nil)
		if got := sha256.Sum256(raw.body); raw.status != 200 || got != sum {
			t.Errorf("%s raw: %d, %d bytes, SHA-256 differs", path, raw.status, len(raw.body))
		}
		d := proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/v1/"+path, nil, nil).data(t)
		var body []byte
		if b64, ok := d["body_base64"].(string); ok {
			body, _ = base64.StdEncoding.DecodeString(b64)
		} else if text, ok := d["body"].(string); ok {
			body = []byte(text)
		}
		if got := sha256.Sum256(body); got != sum {
			t.Errorf("%s JSON: %d bytes, SHA-256 differs (%v)", path, len(body), d["headers"])
		}
	}
	if a := proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/v1/empty?format=raw", nil, nil); a.status != 204 || len(a.body) != 0 {
		t.Errorf("204 raw: %d %q", a.status, a.body)
	}
	if d := proxyHTTP(t, s, "root", "GET", "connect/connections/pxgh/cust-a/proxy/v1/empty", nil, nil).data(t); d["status"] != float64(204) {
		t.Errorf("204 JSON: %v", d)
	}
	// The calls are counted on the connection's read.
	if d := data(t, s, "connect/connections/pxgh/cust-a"); d["proxy_calls"] == nil || d["proxy_calls"] == float64(0) {
		t.Errorf("proxy_calls: %v", d["proxy_calls"])
	}
}
