// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// proxyEnv is oauthEnv with a recording API as the OAUTH2 integration
// github's api_base_url (proxy_paths /v1/*) and a decoy on 127.0.0.2;
// waits of the retry policy are recorded instead of slept.
type proxyEnv struct {
	*testEnv
	srv   *oauthtest.Server
	api   *oauthtest.API
	decoy *oauthtest.API
	mu    sync.Mutex
	waits []time.Duration
}

func newProxyEnv(t *testing.T) *proxyEnv {
	t.Helper()
	e, srv := oauthEnv(t)
	p := &proxyEnv{testEnv: e, srv: srv, api: oauthtest.NewAPI(), decoy: oauthtest.NewAPIOn("127.0.0.2")}
	t.Cleanup(p.api.Close)
	t.Cleanup(p.decoy.Close)
	e.b.proxier.sleep = func(_ context.Context, d time.Duration) bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.waits = append(p.waits, d)
		return true
	}
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"api_base_url": p.api.URL, "proxy_paths": "/v1/*"})
	e.mustDo(logical.CreateOperation, "connections/github/c1", map[string]any{"access_token": "at-c1-0123456789", "refresh_token": srv.IssueRefreshToken()})
	t.Cleanup(func() {
		if n := len(p.decoy.Requests()); n != 0 {
			t.Errorf("the decoy on 127.0.0.2 received %d request(s)", n)
		}
	})
	return p
}

// proxied runs one proxy operation and returns the response and status.
func (p *proxyEnv) proxied(op logical.Operation, rest string, data map[string]any) (*logical.Response, int) {
	p.t.Helper()
	return p.do(op, "connections/github/c1/proxy/"+rest, data)
}

func TestProxyGetInjectsTheBearerTokenAndAnswersJSON(t *testing.T) {
	p := newProxyEnv(t)
	p.api.Handle("GET /v1/items", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "s=1")
		w.Write([]byte(`{"items":[1,2]}`))
	})
	resp, status := p.proxied(logical.ReadOperation, "v1/items", map[string]any{"page": "2", "format": "json", "proxy_query": "list=1"})
	if status != 200 {
		t.Fatalf("status %d: %v", status, errorText(resp))
	}
	if resp.Data["status"] != 200 || resp.Data["json"] == nil {
		t.Fatalf("answer %v", resp.Data)
	}
	if _, ok := resp.Data["headers"].(map[string]any)["Set-Cookie"]; ok {
		t.Fatal("Set-Cookie passed")
	}
	got := p.api.Requests()
	if len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer at-c1-0123456789" || got[0].RawQuery != "page=2&list=1" {
		t.Fatalf("the API received %+v", got)
	}
	data := p.mustDo(logical.ReadOperation, "connections/github/c1", nil)
	if data["proxy_calls"] != int64(1) || data["last_proxy_call_at"] == "" {
		t.Fatalf("proxy_calls %v, last_proxy_call_at %v", data["proxy_calls"], data["last_proxy_call_at"])
	}
}

func TestProxyRulesRefuseBeforeSending(t *testing.T) {
	p := newProxyEnv(t)
	for _, tc := range []struct {
		name   string
		op     logical.Operation
		rest   string
		data   map[string]any
		status int
		want   string
	}{
		{"outside proxy_paths", logical.ReadOperation, "admin/x", nil, 403, "proxy_paths"},
		{"the base itself", logical.ReadOperation, "v1", nil, 403, "proxy_paths"},
		{"a method not allowed", logical.UpdateOperation, "v1/items", map[string]any{"json": map[string]any{}}, 403, "proxy_methods"},
		{"a dot segment", logical.ReadOperation, "v1/../admin", nil, 400, "'..'"},
		{"an encoded dot segment", logical.ReadOperation, "v1/%2e%2e/admin", nil, 400, "'..'"},
		{"double encoding", logical.ReadOperation, "v1/%252e%252e/admin", nil, 400, "'..'"},
		{"an encoded slash", logical.ReadOperation, "v1/..%2fadmin", nil, 400, "'/'"},
		{"another host", logical.ReadOperation, "/127.0.0.2/x", nil, 403, "proxy_paths"},
		{"user info", logical.ReadOperation, "v1/@127.0.0.2", nil, 400, "'@'"},
		{"an absolute URL", logical.ReadOperation, "http:%2f%2f127.0.0.2/x", nil, 400, "'/'"},
		{"CRLF in the path", logical.ReadOperation, "v1/x\r\nHost: evil", nil, 400, "control"},
		{"a bad format", logical.ReadOperation, "v1/x", map[string]any{"format": "xml"}, 400, "format"},
		{"a tab in proxy_query", logical.ReadOperation, "v1/x", map[string]any{"proxy_query": "a=\tb"}, 400, "proxy_query"},
		{"a fragment in proxy_query", logical.ReadOperation, "v1/x", map[string]any{"proxy_query": "a=b#c"}, 400, "proxy_query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, status := p.proxied(tc.op, tc.rest, tc.data)
			if status != tc.status || !strings.Contains(errorText(resp), tc.want) {
				t.Fatalf("status %d %q, want %d naming %q", status, errorText(resp), tc.status, tc.want)
			}
		})
	}
	// Headers, on a write the rules allow.
	p.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"proxy_methods": "GET,POST", "proxy_headers": "X-Api-Version", "request_headers": map[string]any{"X-Token": "${accessToken}"}})
	for name, want := range map[string]string{
		"Authorization": "Authorization", "authorization": "Authorization", "Host": "Host", "Cookie": "Cookie",
		"Proxy-Authorization": "Proxy-Authorization", "X-Forwarded-Host": "X-Forwarded-Host", "X-Vault-Token": "X-Vault-Token",
		"Transfer-Encoding": "Transfer-Encoding", "Connection": "Connection", "x-token": "X-Token", "X-Other": "X-Other",
	} {
		resp, status := p.proxied(logical.UpdateOperation, "v1/items", map[string]any{"headers": map[string]any{name: "v"}})
		if status != 400 || !strings.Contains(errorText(resp), want) {
			t.Errorf("header %s: status %d %q", name, status, errorText(resp))
		}
	}
	resp, status := p.proxied(logical.UpdateOperation, "v1/items", map[string]any{"headers": map[string]any{"X-Api-Version": "1\r\nHost: evil"}})
	if status != 400 || !strings.Contains(errorText(resp), "line break") {
		t.Errorf("CRLF in a value: status %d %q", status, errorText(resp))
	}
	if n := len(p.api.Requests()); n != 0 {
		t.Fatalf("refused calls sent %d request(s)", n)
	}
	resp, status = p.proxied(logical.UpdateOperation, "v1/items", map[string]any{"json": []any{"a"}, "headers": map[string]any{"X-Api-Version": "1", "Accept": "application/json", "If-None-Match": "e"}})
	got := p.api.Requests()
	if status != 200 || len(got) != 1 || got[0].Method != "POST" || string(got[0].Body) != `["a"]` || got[0].Header.Get("X-Api-Version") != "1" ||
		got[0].Header.Get("If-None-Match") != "e" || got[0].Header.Get("X-Token") != "at-c1-0123456789" || got[0].Header.Get("Authorization") != "Bearer at-c1-0123456789" {
		t.Fatalf("an allowed write: status %d %v, the API received %+v", status, errorText(resp), got)
	}
	// A proxy without proxy_paths.
	p.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"proxy_paths": ""})
	if resp, status := p.proxied(logical.ReadOperation, "v1/items", nil); status != 403 || !strings.Contains(errorText(resp), "no proxy") {
		t.Fatalf("no proxy_paths: status %d %q", status, errorText(resp))
	}
}

func TestProxyInjectsEveryAuthMode(t *testing.T) {
	p := newProxyEnv(t)
	base := map[string]any{"api_base_url": p.api.URL, "proxy_paths": "/v1/*"}
	with := func(extra map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	p.mustDo(logical.CreateOperation, "integrations/key", with(map[string]any{"auth_mode": "API_KEY", "request_headers": map[string]any{"X-Api-Key": "${apiKey}"}}))
	p.mustDo(logical.CreateOperation, "integrations/basic", with(map[string]any{"auth_mode": "BASIC"}))
	p.mustDo(logical.CreateOperation, "integrations/custom", with(map[string]any{"auth_mode": "CUSTOM", "request_headers": map[string]any{"X-Key": "${credentials.key}", "X-Region": "${credentials.region}"}}))
	p.mustDo(logical.CreateOperation, "integrations/bare", with(map[string]any{"auth_mode": "API_KEY"}))
	p.mustDo(logical.CreateOperation, "connections/key/k1", map[string]any{"api_key": "sk-key-0123456789"})
	p.mustDo(logical.CreateOperation, "connections/basic/b1", map[string]any{"username": "u1", "password": "pw-0123456789"})
	p.mustDo(logical.CreateOperation, "connections/custom/x1", map[string]any{"credentials": map[string]any{"key": "ck-0123456789", "region": "eu"}})
	p.mustDo(logical.CreateOperation, "connections/bare/k1", map[string]any{"api_key": "sk-bare-0123456789"})
	p.mustDo(logical.CreateOperation, "connections/machine/m1", map[string]any{})
	p.mustDo(logical.UpdateOperation, "integrations/machine", with(nil))
	machineToken := p.mustDo(logical.ReadOperation, "connections/machine/m1", nil)["access_token"].(string)
	for path, want := range map[string]map[string]string{
		"connections/key/k1/proxy/v1/x":     {"X-Api-Key": "sk-key-0123456789", "Authorization": ""},
		"connections/basic/b1/proxy/v1/x":   {"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("u1:pw-0123456789"))},
		"connections/custom/x1/proxy/v1/x":  {"X-Key": "ck-0123456789", "X-Region": "eu", "Authorization": ""},
		"connections/github/c1/proxy/v1/x":  {"Authorization": "Bearer at-c1-0123456789"},
		"connections/machine/m1/proxy/v1/x": {"Authorization": "Bearer " + machineToken},
	} {
		p.api.Reset()
		p.mustDo(logical.ReadOperation, path, nil)
		got := p.api.Requests()
		if len(got) != 1 {
			t.Fatalf("%s: %d requests", path, len(got))
		}
		for h, v := range want {
			if got[0].Header.Get(h) != v {
				t.Errorf("%s: header %s = %q, want %q", path, h, got[0].Header.Get(h), v)
			}
		}
	}
	p.api.Reset()
	if resp, status := p.do(logical.ReadOperation, "connections/bare/k1/proxy/v1/x", nil); status != 400 || !strings.Contains(errorText(resp), "request_headers") {
		t.Fatalf("an API_KEY integration without request_headers: %d %q", status, errorText(resp))
	}
	if len(p.api.Requests()) != 0 {
		t.Fatal("a call without a credential was sent")
	}
}

func TestProxy401RenewsOnceSingleFlightAndRetriesOnce(t *testing.T) {
	p := newProxyEnv(t)
	now, advance := fixedClock(time.Now())
	p.b.now = now
	p.api.Handle("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") == "at-c1-0123456789" || !p.srv.AccessTokenValid(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte("me"))
	})
	before := p.srv.Requests()
	var wg sync.WaitGroup
	statuses := make([]any, 8)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := p.proxied(logical.ReadOperation, "v1/me", nil)
			if resp != nil {
				statuses[i] = resp.Data["status"]
			}
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("call %d answered %v after the renewal", i, s)
		}
	}
	if n := p.srv.Requests() - before; n != 1 {
		t.Fatalf("%d token requests for 8 calls refused the same token, want 1", n)
	}
	// Past the cooldown of the renewal above, a token the provider keeps
	// refusing: one renewal, one retry, then the provider's 401.
	advance(rejectedRenewalCooldown)
	p.api.Handle("GET /v1/never", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	p.api.Reset()
	before = p.srv.Requests()
	resp, status := p.proxied(logical.ReadOperation, "v1/never", nil)
	if status != 200 || resp.Data["status"] != 401 || len(p.api.Requests()) != 2 || p.srv.Requests()-before != 1 {
		t.Fatalf("status %d %v, %d API requests, %d token requests", status, resp.Data, len(p.api.Requests()), p.srv.Requests()-before)
	}
}

func TestProxyRetryPolicy(t *testing.T) {
	p := newProxyEnv(t)
	p.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"proxy_methods": "GET,POST,DELETE"})
	var mu sync.Mutex
	answers := map[string][]int{}
	next := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		if len(answers[path]) == 0 {
			return 200
		}
		s := answers[path][0]
		answers[path] = answers[path][1:]
		return s
	}
	p.api.Handle("/v1/", func(w http.ResponseWriter, r *http.Request) {
		s := next(r.URL.Path)
		if s == 429 {
			w.Header().Set("Retry-After", r.URL.Query().Get("after"))
		}
		w.WriteHeader(s)
	})
	run := func(op logical.Operation, rest string, data map[string]any, seq []int) (int, int, []time.Duration) {
		t.Helper()
		path := "/" + strings.Split(rest, "?")[0]
		mu.Lock()
		answers[path] = seq
		mu.Unlock()
		p.api.Reset()
		p.mu.Lock()
		p.waits = nil
		p.mu.Unlock()
		resp, status := p.proxied(op, rest, data)
		if status != 200 {
			t.Fatalf("%s: status %d %q", rest, status, errorText(resp))
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return resp.Data["status"].(int), len(p.api.Requests()), p.waits
	}
	if s, n, waits := run(logical.ReadOperation, "v1/a", map[string]any{"after": "3"}, []int{429, 200}); s != 200 || n != 2 || len(waits) != 1 || waits[0] != 3*time.Second {
		t.Fatalf("429 with Retry-After 3: status %d after %d requests, waits %v", s, n, waits)
	}
	if s, n, _ := run(logical.ReadOperation, "v1/b", map[string]any{"after": "100"}, []int{429, 200}); s != 429 || n != 1 {
		t.Fatalf("429 with a Retry-After beyond the bound: status %d after %d requests", s, n)
	}
	if s, n, waits := run(logical.ReadOperation, "v1/c", nil, []int{503, 502, 504, 200}); s != 504 || n != 3 || len(waits) != 2 {
		t.Fatalf("GET past proxy_retries: status %d after %d requests, waits %v", s, n, waits)
	}
	if s, n, _ := run(logical.DeleteOperation, "v1/d", nil, []int{503, 200}); s != 200 || n != 2 {
		t.Fatalf("DELETE: status %d after %d requests", s, n)
	}
	if s, n, _ := run(logical.UpdateOperation, "v1/e", map[string]any{"json": map[string]any{"a": 1}}, []int{503, 200}); s != 503 || n != 1 {
		t.Fatalf("POST was retried: status %d after %d requests", s, n)
	}
	if s, n, _ := run(logical.UpdateOperation, "v1/f", map[string]any{"json": map[string]any{"a": 1}, "headers": map[string]any{"Idempotency-Key": "k1"}}, []int{503, 200}); s != 200 || n != 2 {
		t.Fatalf("POST with an Idempotency-Key: status %d after %d requests", s, n)
	}
	p.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"proxy_retries": 0})
	if s, n, _ := run(logical.ReadOperation, "v1/g", nil, []int{503, 200}); s != 503 || n != 1 {
		t.Fatalf("proxy_retries=0: status %d after %d requests", s, n)
	}
}

func TestProxyBoundsAnswer502And504(t *testing.T) {
	p := newProxyEnv(t)
	p.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"proxy_max_response": 1000, "proxy_timeout": 1})
	p.api.Handle("GET /v1/big", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 1001)) })
	p.api.Handle("GET /v1/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	if resp, status := p.proxied(logical.ReadOperation, "v1/big", nil); status != 502 || !strings.Contains(errorText(resp), "1000") {
		t.Fatalf("an oversized answer: %d %q", status, errorText(resp))
	}
	start := time.Now()
	if resp, status := p.proxied(logical.ReadOperation, "v1/slow", nil); status != 504 || time.Since(start) > 3*time.Second {
		t.Fatalf("a slow answer: %d %q after %s", status, errorText(resp), time.Since(start))
	}
}

func TestProxyRawFormatAndBodies(t *testing.T) {
	p := newProxyEnv(t)
	bin := []byte{0, 1, 2, 0xff, 0xfe, 'x'}
	p.api.Handle("GET /v1/bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(bin)
	})
	p.api.Handle("GET /v1/text", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("héllo")) })
	p.api.Handle("GET /v1/none", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	resp := p.mustDo(logical.ReadOperation, "connections/github/c1/proxy/v1/bin", nil)
	if resp["body_base64"] != base64.StdEncoding.EncodeToString(bin) {
		t.Fatalf("binary body: %v", resp)
	}
	if resp := p.mustDo(logical.ReadOperation, "connections/github/c1/proxy/v1/text", nil); resp["body"] != "héllo" {
		t.Fatalf("text body: %v", resp)
	}
	raw, status := p.proxied(logical.ReadOperation, "v1/bin", map[string]any{"format": "raw"})
	if status != 200 || raw.Data[logical.HTTPStatusCode] != 200 || string(raw.Data[logical.HTTPRawBody].([]byte)) != string(bin) ||
		raw.Data[logical.HTTPContentType] != "application/octet-stream" {
		t.Fatalf("raw: %d %v", status, raw.Data)
	}
	raw, _ = p.proxied(logical.ReadOperation, "v1/none", map[string]any{"format": "raw"})
	if raw.Data[logical.HTTPStatusCode] != 204 {
		t.Fatalf("raw 204: %v", raw.Data)
	}
}

func TestProxyCallsAreStoredWithTheNextSave(t *testing.T) {
	p := newProxyEnv(t)
	for range 3 {
		p.mustDo(logical.ReadOperation, "connections/github/c1/proxy/v1/x", nil)
	}
	stored, _ := getConnection(context.Background(), p.storage, "github", "c1")
	if stored.ProxyCalls != 0 {
		t.Fatalf("a proxied call wrote storage: %d stored", stored.ProxyCalls)
	}
	if n := p.mustDo(logical.ReadOperation, "connections/github/c1", nil)["proxy_calls"]; n != int64(3) {
		t.Fatalf("read shows %v calls", n)
	}
	p.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
	stored, _ = getConnection(context.Background(), p.storage, "github", "c1")
	if stored.ProxyCalls != 3 || stored.LastProxyCallAt.IsZero() {
		t.Fatalf("after a refresh %d calls stored at %v", stored.ProxyCalls, stored.LastProxyCallAt)
	}
	if n := p.mustDo(logical.ReadOperation, "connections/github/c1", nil)["proxy_calls"]; n != int64(3) {
		t.Fatalf("read shows %v calls after the save", n)
	}
}

func TestProxySettingsValidation(t *testing.T) {
	e := newTestEnv(t)
	e.assertRejected([]rejection{
		{"a relative glob", "integrations/x", map[string]any{"auth_mode": "API_KEY", "proxy_paths": "v1/*"}, "proxy_paths"},
		{"a star inside", "integrations/x", map[string]any{"auth_mode": "API_KEY", "proxy_paths": "/v1/*/x"}, "proxy_paths"},
		{"a dot segment", "integrations/x", map[string]any{"auth_mode": "API_KEY", "proxy_paths": "/v1/../*"}, "proxy_paths"},
		{"a method", "integrations/x", map[string]any{"auth_mode": "API_KEY", "proxy_methods": "GET,CONNECT"}, "proxy_methods"},
		{"Authorization", "integrations/x", map[string]any{"auth_mode": "API_KEY", "proxy_headers": "Authorization"}, "proxy_headers"},
		{"a credential header", "integrations/x", map[string]any{"auth_mode": "API_KEY", "request_headers": map[string]any{"X-Key": "${apiKey}"}, "proxy_headers": "x-key"}, "proxy_headers"},
		{"retries", "integrations/x", map[string]any{"auth_mode": "API_KEY", "proxy_retries": 11}, "proxy_retries"},
		{"retry after", "integrations/x", map[string]any{"auth_mode": "API_KEY", "proxy_retry_after_max": 61}, "proxy_retry_after_max"},
		{"max response", "integrations/x", map[string]any{"auth_mode": "API_KEY", "proxy_max_response": 0}, "proxy_max_response"},
		{"timeout", "integrations/x", map[string]any{"auth_mode": "API_KEY", "proxy_timeout": 86}, "proxy_timeout"},
	}, "\x00none")
	data := e.mustDo(logical.CreateOperation, "integrations/x", map[string]any{"auth_mode": "API_KEY", "proxy_paths": "/v1/*,/repos/+/issues", "proxy_methods": "get,post"})
	if data["proxy_timeout"] != 30 || data["proxy_retries"] != 2 || data["proxy_max_response"] != int64(10<<20) || strings.Join(data["proxy_methods"].([]string), ",") != "GET,POST" {
		t.Fatalf("read: %v", data)
	}
}

func TestProxyPathGlobs(t *testing.T) {
	for _, tc := range []struct {
		glob, path string
		want       bool
	}{
		{"/v1/*", "v1/x", true}, {"/v1/*", "v1/x/y", true}, {"/v1/*", "v1/", true}, {"/v1/*", "v1", false},
		{"/v1/*", "v10/x", false}, {"/v1*", "v10/x", true}, {"/repos/+/issues", "repos/a/issues", true},
		{"/repos/+/issues", "repos/a/b/issues", false}, {"/repos/+/issues", "repos//issues", false},
		{"/repos/+/issues*", "repos/a/issues/1", true}, {"/a", "a", true}, {"/a", "a/", false},
	} {
		if got := proxyPathAllowed([]string{tc.glob}, strings.Split(tc.path, "/")); got != tc.want {
			t.Errorf("%s on %s: %v, want %v", tc.glob, tc.path, got, tc.want)
		}
	}
}

func TestProxyCallsOfAConnectionWithoutRefreshesAreStoredByThePeriodicHook(t *testing.T) {
	p := newProxyEnv(t)
	p.mustDo(logical.CreateOperation, "integrations/key", map[string]any{"auth_mode": "API_KEY", "api_base_url": p.api.URL,
		"proxy_paths": "/v1/*", "request_headers": map[string]any{"X-Api-Key": "${apiKey}"}})
	p.mustDo(logical.CreateOperation, "connections/key/k1", map[string]any{"api_key": "sk-0123456789"})
	for range 2 {
		p.mustDo(logical.ReadOperation, "connections/key/k1/proxy/v1/x", nil)
	}
	p.tick()
	stored, _ := getConnection(context.Background(), p.storage, "key", "k1")
	if stored.ProxyCalls != 2 {
		t.Fatalf("after the periodic hook %d calls are stored", stored.ProxyCalls)
	}
	p.tick() // nothing pending: nothing written, the count unchanged
	if n := p.mustDo(logical.ReadOperation, "connections/key/k1", nil)["proxy_calls"]; n != int64(2) {
		t.Fatalf("read shows %v calls", n)
	}
}

func TestProxyPatternLeavesTheOtherConnectionPathsAlone(t *testing.T) {
	p := newProxyEnv(t)
	// A connection whose id is "proxy" is a connection, not a proxy call.
	p.mustDo(logical.CreateOperation, "connections/github/proxy", map[string]any{"access_token": "at-proxy-0123456789"})
	if d := p.mustDo(logical.ReadOperation, "connections/github/proxy", nil); d["connection_id"] != "proxy" {
		t.Fatalf("connections/github/proxy read %v", d)
	}
	if d := p.mustDo(logical.ReadOperation, "connections/github/c1/raw", nil); d["refresh_token"] == nil {
		t.Fatalf("raw read %v", d)
	}
	// The proxy's own sub-path without a provider path is the catch-all's
	// 400; a provider path named like a sub-path is the provider's.
	if _, status := p.do(logical.ReadOperation, "connections/github/c1/proxy", nil); status != 400 {
		t.Fatalf("connections/github/c1/proxy: %d", status)
	}
	p.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"proxy_paths": "/*"})
	p.mustDo(logical.ReadOperation, "connections/github/c1/proxy/raw", nil)
	p.mustDo(logical.ReadOperation, "connections/github/proxy/proxy/metadata", nil)
	got := p.api.Requests()
	if len(got) != 2 || got[0].Path != "/raw" || got[1].Path != "/metadata" || got[1].Header.Get("Authorization") != "Bearer at-proxy-0123456789" {
		t.Fatalf("the API received %+v", got)
	}
}

// "v1/..;/admin", which proxy_paths=/v1/* and a Vault policy on
// proxy/v1/* would match and a Tomcat/Jetty/Spring stack resolves to
// /admin, is a 400 and never reaches the provider.
func TestProxyDotSegmentWithPathParameterIsRefusedBeforeSending(t *testing.T) {
	p := newProxyEnv(t)
	p.api.Handle("GET /v1/..;/admin", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("admin")) })
	resp, status := p.proxied(logical.ReadOperation, "v1/..;/admin", nil)
	if status != 400 {
		t.Errorf("v1/..;/admin answered %d %v, want 400", status, resp.Data)
	}
	for _, r := range p.api.Requests() {
		t.Errorf("the provider received %s", r.Path)
	}
}

// An echo of the token written with \u escapes, which passes a scrub of
// the bytes, is scrubbed from the decoded strings: the answer's json field
// never holds the plain token.
func TestProxyJSONAnswerDoesNotDecodeAnEscapedEchoIntoTheToken(t *testing.T) {
	p := newProxyEnv(t)
	p.api.Handle("GET /v1/whoami", func(w http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		var esc strings.Builder
		for _, c := range a {
			fmt.Fprintf(&esc, `\u%04x`, c)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"seen":"` + esc.String() + `"}`))
	})
	resp, status := p.proxied(logical.ReadOperation, "v1/whoami", nil)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	// As Vault gets it: encoded by the plugin's gRPC layer, decoded.
	out, _ := json.Marshal(resp.Data)
	var decoded any
	if err := json.Unmarshal(out, &decoded); err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(decoded); strings.Contains(string(out), "at-c1-0123456789") || strings.Contains(s, "at-c1-0123456789") {
		t.Fatalf("the JSON answer carries the access token: %s", s)
	}
}

// An endpoint that answers 401 whatever the token (a scope the token
// lacks, an endpoint with other auth) renews the token at most once per
// rejectedRenewalCooldown: otherwise a caller with read on one path would
// drive unbounded token requests, storage writes and refresh events.
func TestProxyA401EndpointRenewsTheTokenAtMostOncePerCooldown(t *testing.T) {
	p := newProxyEnv(t)
	now, advance := fixedClock(time.Now())
	p.b.now = now
	p.api.Handle("GET /v1/scoped", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	call := func() {
		t.Helper()
		if resp, status := p.proxied(logical.ReadOperation, "v1/scoped", nil); status != 200 || resp.Data["status"] != 401 {
			t.Fatalf("status %d %v", status, resp.Data)
		}
	}
	before := p.srv.Requests()
	for range 5 {
		call()
	}
	if n := p.srv.Requests() - before; n != 1 {
		t.Fatalf("5 calls to an endpoint that always answers 401 made %d token requests (refreshes), want 1", n)
	}
	advance(rejectedRenewalCooldown - time.Second)
	call()
	if n := p.srv.Requests() - before; n != 1 {
		t.Fatalf("a 401 within the cooldown renewed the token (%d token requests)", n)
	}
	advance(2 * time.Second)
	call()
	if n := p.srv.Requests() - before; n != 2 {
		t.Fatalf("a 401 after the cooldown made %d token requests in all, want 2", n)
	}
}

// format=raw never serves a provider's text/html, SVG, XHTML or XML as
// such: from Vault's origin, which also serves the connect page and its
// cookies, the provider's markup would run as a page. Passive types (JSON,
// text, images) pass as sent, and every raw answer asks for nosniff.
func TestProxyRawServesNoActiveContentFromVaultsOrigin(t *testing.T) {
	p := newProxyEnv(t)
	routes := map[string]string{}
	for _, ct := range []string{"text/html; charset=utf-8", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/javascript", "Text/HTML", "bogus"} {
		route := fmt.Sprintf("v1/page-%d", len(routes))
		routes[route] = ct
		p.api.Handle("GET /"+route, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			w.Write([]byte(`<html><script>fetch('/ui/').then(alert)</script></html>`))
		})
	}
	for route, ct := range routes {
		raw, status := p.proxied(logical.ReadOperation, route, map[string]any{"format": "raw"})
		if status != 200 {
			t.Fatalf("%s: status %d", ct, status)
		}
		if got := raw.Data[logical.HTTPContentType]; got != "application/octet-stream" {
			t.Errorf("format=raw answers %q with Content-Type %q: the provider's markup runs on Vault's origin", ct, got)
		}
		if got := raw.Headers["X-Content-Type-Options"]; len(got) != 1 || got[0] != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q, want nosniff", ct, got)
		}
	}
	for i, ct := range []string{"application/json", "application/vnd.api+json; charset=utf-8", "text/plain; charset=utf-8", "image/png"} {
		route := fmt.Sprintf("v1/passive-%d", i)
		p.api.Handle("GET /"+route, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			w.Write([]byte(`{}`))
		})
		if raw, _ := p.proxied(logical.ReadOperation, route, map[string]any{"format": "raw"}); raw.Data[logical.HTTPContentType] != ct {
			t.Errorf("a passive %q was answered as %q", ct, raw.Data[logical.HTTPContentType])
		}
	}
}

// A proxy under concurrent calls keeps its connections to the provider
// alive: rounds of 32 concurrent GETs to one API open about 32 connections
// in all, not a new one for every call beyond the few a default pool keeps
// idle per host (which costs a TCP handshake per call and leaves a socket
// in TIME_WAIT for each).
func TestProxyKeepsConnectionsToTheProviderAliveUnderConcurrency(t *testing.T) {
	e := newProxyBenchEnv(t)
	const clients, rounds = 32, 10
	for range rounds {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, clients)
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resp, err := e.handle(logical.ReadOperation, "connections/bench-proxy/acme/proxy/user", map[string]any{})
				if err == nil && (resp == nil || resp.Data["status"] != http.StatusOK) {
					err = fmt.Errorf("answer %v", resp)
				}
				errs <- err
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d rounds of %d concurrent calls opened %d connections to the API", rounds, clients, e.conns.Load())
	if n := e.conns.Load(); n > 2*clients {
		t.Fatalf("%d rounds of %d concurrent calls opened %d connections to the API (at most %d expected)", rounds, clients, n, 2*clients)
	}
}

// A JSON answer is not decoded in the plugin: its bytes go to Vault as
// the json field, so a large answer costs no tree of maps (allocations do
// not grow with the number of its values).
func TestProxyJSONAnswerIsNotDecodedInThePlugin(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := range 20000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item %d"}`, i, i)
	}
	b.WriteString(`]}`)
	resp := &provider.ProxyResponse{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(b.String())}
	allocs := testing.AllocsPerRun(5, func() { proxyResponseData(resp) })
	if allocs > 50 {
		t.Fatalf("the JSON answer of 20,000 values cost %.0f allocations in the plugin", allocs)
	}
}

// The json field reaches Vault as the provider's JSON decoded: the
// response data encoded as the plugin's gRPC layer encodes it
// (encoding/json) and decoded as Vault decodes it, for nested values,
// numbers, HTML characters, escapes, and a body with invalid UTF-8 in a
// string (whose encoding must still be UTF-8, with U+FFFD in its place).
func TestProxyJSONAnswerReachesVaultAsTheDecodedValue(t *testing.T) {
	for _, body := range []string{
		`{"a":[1,2.50,{"b":null}],"c":true,"n":12345678901234567890}`,
		`[ {"html":"<a href='x'>&amp;</a>"} , "\u00e9\ud83d\ude00\/" ]`,
		`"just a string"`,
		"{\"bad\":\"a\xffb\"}",
	} {
		resp := &provider.ProxyResponse{Status: 200, Header: http.Header{"Content-Type": {"application/problem+json"}}, Body: []byte(body)}
		wire, err := json.Marshal(proxyResponseData(resp))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if !utf8.Valid(wire) {
			t.Fatalf("%q: the encoded answer is not UTF-8: %q", body, wire)
		}
		var got map[string]any
		if err := json.Unmarshal(wire, &got); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		var want any
		json.Unmarshal([]byte(strings.ToValidUTF8(body, "\uFFFD")), &want)
		if !reflect.DeepEqual(got["json"], want) {
			t.Fatalf("%q reached Vault as %#v, want %#v", body, got["json"], want)
		}
	}
}

// A proxied call that the provider answers writes no log line: Vault's
// audit log has every call, the connect.proxy.call metric counts them, and
// a plugin's log line costs a JSON encoding and a write in the plugin and
// a parse in Vault on every call (the plugin logs at trace level; Vault
// filters). A call the provider did not answer in time or in bounds is
// logged.
func TestProxyAnsweredCallsWriteNoLogLine(t *testing.T) {
	p := newProxyEnv(t)
	p.api.Handle("GET /v1/quiet", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	before := p.logs.String()
	for range 3 {
		if _, status := p.proxied(logical.ReadOperation, "v1/quiet", nil); status != 200 {
			t.Fatalf("status %d", status)
		}
	}
	if added := strings.TrimPrefix(p.logs.String(), before); strings.Contains(added, "proxied call") {
		t.Fatalf("answered calls were logged:\n%s", added)
	}
}

// Unmounting (or reloading) the plugin closes the proxy's idle connections
// to providers at once: its pool keeps many per host, and they would
// otherwise linger until the idle timeout after the mount is gone.
func TestCleanupClosesTheProxysIdleConnections(t *testing.T) {
	e := newProxyBenchEnv(t)
	if resp, err := e.handle(logical.ReadOperation, "connections/bench-proxy/acme/proxy/user", map[string]any{}); err != nil || resp.Data["status"] != http.StatusOK {
		t.Fatalf("proxied GET: %v %v", resp, err)
	}
	e.b.Clean(context.Background())
	deadline := time.Now().Add(2 * time.Second)
	for e.closed.Load() < e.conns.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if opened, closed := e.conns.Load(), e.closed.Load(); opened == 0 || closed != opened {
		t.Fatalf("after the mount's cleanup %d of %d connection(s) to the provider are closed", closed, opened)
	}
}
