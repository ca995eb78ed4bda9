// SPDX-License-Identifier: MPL-2.0

// Cross-cutting on purpose: fuzz targets over many paths share one file and corpus layout.

package connect

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

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
