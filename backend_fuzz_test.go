// SPDX-License-Identifier: MPL-2.0

// Cross-cutting on purpose: fuzz targets over many paths share one file and corpus layout.

package connect

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Fuzz targets for every way input reaches the engine. Each checks: no
// panic, a rejection is a 4xx with a message, and a rejection changes
// nothing in storage. `make test` runs each for a few seconds, `make fuzz`
// for longer; seeds are below and in testdata/fuzz.

// fuzzEnv is a backend with an API-key, a custom and an OAuth integration
// and one connection of each, for the fuzz targets.
func fuzzEnv(t *testing.T) *testEnv {
	e := newTestEnv(t)
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	e.mustDo(logical.CreateOperation, "integrations/custom", map[string]any{"auth_mode": "CUSTOM"})
	e.mustDo(logical.CreateOperation, "integrations/github", map[string]any{"auth_mode": "OAUTH2", "client_id": "c",
		"auth_url": "https://p.example.test/a", "token_url": "https://p.example.test/t"})
	e.mustDo(logical.CreateOperation, "connections/stripe/c", map[string]any{"api_key": "k", "metadata": map[string]any{"a": map[string]any{"b": 1}}})
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": "https://vault.example.test/v1/connect/oauth/callback", "oauth_completion": "callback"})
	return e
}

// jsonBody decodes fuzzed bytes as a request body; false when they are not
// a JSON object (the HTTP layer would refuse them before the plugin).
func jsonBody(b []byte) (map[string]any, bool) {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil || m == nil {
		return nil, false
	}
	return m, true
}

// fuzzRequest runs one request and checks the outcome's shape.
func fuzzRequest(t *testing.T, e *testEnv, op logical.Operation, path string, body map[string]any) {
	t.Helper()
	before := e.snapshot()
	resp, status := e.do(op, path, body)
	switch {
	case status < 300:
	case status >= 400 && status < 500:
		if status != http.StatusNotFound && strings.TrimSpace(errorText(resp)) == "" {
			t.Fatalf("%s %s: %d without a message", op, path, status)
		}
		e.assertUnchanged(before)
	default:
		t.Fatalf("%s %s %v: status %d: %s", op, path, body, status, errorText(resp))
	}
}

func FuzzConnectionWrite(f *testing.F) {
	f.Add("c", []byte(`{"api_key":"k"}`))
	f.Add("new-1", []byte(`{"api_key":"k","metadata":{"plan":"pro"},"connection_config":{"subdomain":"acme"}}`))
	f.Add("a/b", []byte(`{"api_key":""}`))
	f.Add("..", []byte(`{"metadata":"not an object"}`))
	f.Add("x", []byte(`{"credentials":{"k":1}}`))
	f.Add("y", []byte(`{"access_token":"a","expires_in":-5}`))
	f.Fuzz(func(t *testing.T, id string, raw []byte) {
		body, ok := jsonBody(raw)
		if !ok || strings.ContainsAny(id, "?#%") || id == "" {
			return
		}
		e := fuzzEnv(t)
		for _, integration := range []string{"stripe", "custom", "github"} {
			fuzzRequest(t, e, logical.UpdateOperation, "connections/"+integration+"/"+id, body)
		}
	})
}

func FuzzIntegrationWrite(f *testing.F) {
	f.Add("gh", []byte(`{"provider":"github","client_id":"c"}`))
	f.Add("x", []byte(`{"auth_mode":"OAUTH2","auth_url":"https://${connectionConfig.a}.t/a","token_url":"http://t/t","auth_params":{"state":"x"}}`))
	f.Add("y", []byte(`{"auth_mode":"APP","private_key":"-----BEGIN RSA PRIVATE KEY-----"}`))
	f.Add("z", []byte(`{"auth_mode":"BASIC","client_id":"c"}`))
	f.Fuzz(func(t *testing.T, name string, raw []byte) {
		body, ok := jsonBody(raw)
		if !ok || strings.ContainsAny(name, "/?#%") || name == "" {
			return
		}
		e := fuzzEnv(t)
		fuzzRequest(t, e, logical.UpdateOperation, "integrations/"+name, body)
		fuzzRequest(t, e, logical.UpdateOperation, "integrations/stripe", body)
	})
}

func FuzzDocumentMergePatch(f *testing.F) {
	f.Add([]byte(`{"a":null}`))
	f.Add([]byte(`{"a":{"b":{"c":[1,2,{"d":null}]}}}`))
	f.Add([]byte(`{"installation_id":"1/../2"}`))
	f.Add([]byte(`{"n":12345678901234567890}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		body, ok := jsonBody(raw)
		if !ok {
			return
		}
		e := fuzzEnv(t)
		for _, sub := range []string{"metadata", "config"} {
			fuzzRequest(t, e, logical.PatchOperation, "connections/stripe/c/"+sub, body)
			fuzzRequest(t, e, logical.UpdateOperation, "connections/stripe/c/"+sub, body)
		}
	})
}

func FuzzOAuthCallback(f *testing.F) {
	f.Add("code", "state", "", "")
	f.Add("", "", "access_denied", "<script>x</script>")
	f.Add("c", strings.Repeat("s", 43), "e", strings.Repeat("d", 5000))
	f.Fuzz(func(t *testing.T, code, state, errCode, errDesc string) {
		e := fuzzEnv(t)
		e.mustDo(logical.UpdateOperation, "connections/github/c/authorize", nil)
		before := e.snapshot()
		q := url.Values{"code": {code}, "state": {state}, "error": {errCode}, "error_description": {errDesc}}
		status, page, _ := callback(e, q)
		if status < 400 || status >= 500 {
			t.Fatalf("forged callback answered %d", status)
		}
		if strings.Contains(page, "<script") {
			t.Fatal("the page echoes markup")
		}
		// A forged state spends nothing and stores nothing.
		e.assertUnchanged(before)
	})
}

// FuzzProxyCall sends a proxied write with a fuzzed provider path and one
// fuzzed caller header through the whole flow to a recording API: a call
// is refused with a 4xx, or what reaches the API is under the base, carries
// the connection's own credential in Authorization (never the caller's),
// and no header value with a line break; the decoy on 127.0.0.2 sees
// nothing.
func FuzzProxyCall(f *testing.F) {
	for _, seed := range [][3]string{
		{"v1/items", "Accept", "application/json"}, {"v1/..%2fadmin", "Idempotency-Key", "k"},
		{"v1/x", "Authorization", "Bearer mine"}, {"v1/x", "authorization", "x"}, {"v1/x", "X-Token", "x"},
		{"v1/x", "If-Match", "a\r\nAuthorization: evil"}, {"v1/%252e%252e", "Host", "127.0.0.2"},
		{"//127.0.0.2/x", "X-Forwarded-Host", "127.0.0.2"}, {"v1/@127.0.0.2", "Content-Type", "text/plain"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, path, name, value string) {
		p := newProxyEnv(t)
		p.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"proxy_paths": "/v1/*", "proxy_methods": "POST",
			"request_headers": map[string]any{"X-Token": "${accessToken}"}, "proxy_headers": "X-Api-Version"})
		resp, status := p.do(logical.UpdateOperation, "connections/github/c1/proxy/"+path, map[string]any{"headers": map[string]any{name: value}})
		if status >= 500 {
			t.Fatalf("status %d: %v", status, errorText(resp))
		}
		for _, r := range p.api.Requests() {
			if status >= 400 {
				t.Fatalf("a refused call (%d) was sent: %+v", status, r)
			}
			if !strings.HasPrefix(r.Path, "/v1/") || r.Host != strings.TrimPrefix(p.api.URL, "http://") {
				t.Fatalf("the call left the base: %s %s", r.Host, r.Path)
			}
			if got := r.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer at-c1-0123456789" {
				t.Fatalf("Authorization %q reached the API", got)
			}
			if got := r.Header.Values("X-Token"); len(got) != 1 || got[0] != "at-c1-0123456789" {
				t.Fatalf("X-Token %q reached the API", got)
			}
			for h, vs := range r.Header {
				for _, v := range vs {
					if strings.ContainsAny(v, "\r\n") {
						t.Fatalf("header %s carries a line break", h)
					}
				}
			}
		}
		if n := len(p.decoy.Requests()); n != 0 {
			t.Fatalf("the decoy received %d request(s)", n)
		}
	})
}

// FuzzComplete: complete stores a connection only for its own completion,
// on its own connection's path, with the binding authorize was given;
// anything else is a 4xx that stores nothing, echoes neither value, and
// leaves the completion usable unless it was found on its own path.
func FuzzComplete(f *testing.F) {
	f.Add("", "", "github", "c")
	f.Add("completion", testBinding, "github", "c")
	f.Add("completion", testBinding+" ", "github", "other")
	f.Add(strings.Repeat("A", 43), strings.Repeat("b", 600), "stripe", "c")
	f.Fuzz(func(t *testing.T, completion, binding, integration, id string) {
		if strings.ContainsAny(integration+id, "/?#%") || integration == "" || id == "" {
			return
		}
		e := fuzzEnv(t)
		e.mustDo(logical.UpdateOperation, "config", map[string]any{"oauth_completion": "application"})
		real, _, err := newState()
		if err != nil {
			t.Fatal(err)
		}
		if completion == "completion" {
			completion = real // the seeds that use the real one
		}
		in, _ := getIntegration(t.Context(), e.storage, "github")
		held := &pendingAuthorization{
			Integration: "github", ConnectionID: "c", IntegrationCreatedAt: in.CreatedAt, ExpiresAt: e.b.now().Add(time.Minute),
			BrowserBindingHash: hashState(testBinding), ApplicationCompletes: true, ReplaceTags: true, Tags: map[string]string{"t": "1"},
			Held: &heldTokens{AccessToken: "held-access-token", TokenType: "Bearer"},
		}
		if err := e.b.pendingAuths.Put(t.Context(), e.storage, hashCompletion(real), held); err != nil {
			t.Fatal(err)
		}
		resp, status := e.do(logical.UpdateOperation, "connections/"+integration+"/"+id+"/complete", map[string]any{"completion": completion, "browser_binding": binding})
		right := completion == real && binding == testBinding && integration == "github" && id == "c"
		_, stored := e.do(logical.ReadOperation, "connections/github/c", nil)
		switch {
		case right && (status != 200 || stored != 200):
			t.Fatalf("the right completion: %d, stored %d: %s", status, stored, errorText(resp))
		case !right && (status < 400 || status >= 500 || stored != 404):
			t.Fatalf("complete %s/%s: %d, stored %d", integration, id, status, stored)
		}
		if msg := errorText(resp); (len(completion) > 8 && strings.Contains(msg, completion)) || (len(binding) > 8 && strings.Contains(msg, binding)) {
			t.Fatalf("the answer echoes a value: %s", msg)
		}
		left, _ := e.b.pendingAuths.Peek(t.Context(), e.storage, hashCompletion(real))
		if spent := left == nil; spent != (completion == real && integration == "github" && id == "c") {
			t.Fatalf("completion spent: %v", spent)
		}
	})
}

// FuzzPageCallbackBinding: the callback of an authorization the connect
// page started, with any cookie header, state, code and iss: nothing is
// stored unless the state and its binding cookie are the page's.
func FuzzPageCallbackBinding(f *testing.F) {
	f.Add("", "", "code", "")
	f.Add("real", "real", "code", "https://p.example.test")
	f.Add("connect_binding_x=1; connect_binding_y=2", "real", "c", "")
	f.Add("real", "", "c", "")
	f.Fuzz(func(t *testing.T, cookie, state, code, iss string) {
		e := fuzzEnv(t)
		e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "https://vault.example.test/v1/connect"})
		secret, _ := newSession(e, map[string]any{"connection_id": "page", "integrations": "github"})
		_, body := uiGet(e, url.Values{sessionParam: {secret}})
		if status, body := uiPost(e, hiddenInputs(t, body)); status != http.StatusSeeOther {
			t.Fatalf("button: %d\n%s", status, body)
		}
		authURL, _ := url.Parse(e.browser.location)
		realState, realCookie := authURL.Query().Get("state"), e.browser.cookieHeader()[0]
		if state == "real" {
			state = realState
		}
		if cookie == "real" {
			cookie = realCookie
		}
		if state == realState && strings.Contains(cookie, realCookie) {
			return // the right browser: the exchange would reach the provider
		}
		e.browser.cookies = nil
		before := e.snapshot()
		req := &logical.Request{Operation: logical.ReadOperation, Path: "oauth/callback", Storage: e.storage,
			Data:    map[string]any{"state": state, "code": code, "iss": iss},
			Headers: map[string][]string{"Cookie": {cookie}}}
		resp, err := e.b.HandleRequest(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		status, _ := resp.Data[logical.HTTPStatusCode].(int)
		if status != http.StatusForbidden && status != http.StatusBadRequest {
			t.Fatalf("callback: %d", status)
		}
		if _, stored := e.do(logical.ReadOperation, "connections/github/page", nil); stored != 404 {
			t.Fatal("stored without the binding")
		}
		if state != realState {
			e.assertUnchanged(before) // a forged state spends nothing
		}
	})
}
