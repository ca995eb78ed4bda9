// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// jsonOut runs a CLI command with -format=json and decodes its output.
func jsonOut(t *testing.T, s *vaultServer, args ...string) map[string]any {
	t.Helper()
	out := s.mustCLI(t, append([]string{args[0], "-format=json"}, args[1:]...)...)
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("vault %v: output is not JSON: %v\n%s", args, err, out)
	}
	return v
}

// data returns the data of a `vault read -format=json` output.
func data(t *testing.T, s *vaultServer, path string) map[string]any {
	t.Helper()
	return jsonOut(t, s, "read", path)["data"].(map[string]any)
}

// oauthIntegrations writes an OAUTH2 and an OAUTH2_CC integration against a
// fresh loopback authorization server.
func oauthIntegrations(t *testing.T, s *vaultServer, prefix string) *oauthtest.Server {
	t.Helper()
	as := newAuthServer(t)
	s.mustCLI(t, "write", "connect/integrations/"+prefix+"-gh", "auth_mode=OAUTH2",
		"client_id="+as.ClientID, "client_secret="+as.ClientSecret, "scopes=repo,read:user",
		"auth_url="+as.AuthURL(), "token_url="+as.TokenURL())
	s.mustCLI(t, "write", "connect/integrations/"+prefix+"-cc", "auth_mode=OAUTH2_CC",
		"client_id="+as.ClientID, "client_secret="+as.ClientSecret, "token_url="+as.TokenURL(), "scopes=read")
	return as
}

func TestIntegrationsEveryMode(t *testing.T) {
	s := vaultFor(t)
	as := oauthIntegrations(t, s, "int")
	s.mustCLI(t, "write", "connect/integrations/int-key", "auth_mode=API_KEY")
	s.mustCLI(t, "write", "connect/integrations/int-basic", "auth_mode=BASIC")
	s.mustCLI(t, "write", "connect/integrations/int-custom", "auth_mode=CUSTOM")

	gh := data(t, s, "connect/integrations/int-gh")
	if _, ok := gh["client_secret"]; ok || gh["client_secret_set"] != true || gh["client_id"] != as.ClientID {
		t.Fatalf("integration read: %v", gh)
	}
	// Partial update, as the Terraform provider sends it.
	s.mustCLI(t, "write", "connect/integrations/int-gh", "scopes=repo")
	gh = data(t, s, "connect/integrations/int-gh")
	if gh["client_id"] != as.ClientID || gh["client_secret_set"] != true || fmt.Sprint(gh["scopes"]) != "[repo]" {
		t.Fatalf("after partial update: %v", gh)
	}
	list := s.mustCLI(t, "list", "connect/integrations")
	for _, name := range []string{"int-gh", "int-cc", "int-key", "int-basic", "int-custom"} {
		if !strings.Contains(list, name) {
			t.Fatalf("list lacks %s:\n%s", name, list)
		}
	}
	out := s.failCLI(t, "write", "connect/integrations/int-bad", "auth_mode=SAML")
	if !strings.Contains(out, "Code: 400") || !strings.Contains(out, "auth_mode") {
		t.Fatalf("bad auth_mode: %s", out)
	}
	if help := s.mustCLI(t, "path-help", "connect/integrations/x"); !strings.Contains(help, "OAUTH2_CC") {
		t.Fatalf("path-help lacks the auth modes:\n%s", help)
	}
}

func TestConnectionsEveryMode(t *testing.T) {
	s := vaultFor(t)
	as := oauthIntegrations(t, s, "conn")
	s.mustCLI(t, "write", "connect/integrations/conn-key", "auth_mode=API_KEY")
	s.mustCLI(t, "write", "connect/integrations/conn-basic", "auth_mode=BASIC")
	s.mustCLI(t, "write", "connect/integrations/conn-custom", "auth_mode=CUSTOM")

	s.mustCLI(t, "write", "connect/connections/conn-key/ops@example.com", "api_key=sk_e2e_key")
	if got := s.mustCLI(t, "read", "-field=api_key", "connect/connections/conn-key/ops@example.com"); got != "sk_e2e_key" {
		t.Fatalf("-field=api_key = %q", got)
	}
	s.mustCLI(t, "write", "connect/connections/conn-basic/org:123", "username=bot", "password=pw e2e")
	if got := s.mustCLI(t, "read", "-field=password", "connect/connections/conn-basic/org:123"); got != "pw e2e" {
		t.Fatalf("-field=password = %q", got)
	}
	body := []byte(`{"credentials": {"key_id": "kid", "secret": "custom-e2e"}, "metadata": {"plan": "pro"}}`)
	if out, err := s.cli(body, "write", "connect/connections/conn-custom/3fa85f64-5717-4562-b3fc-2c963f66afa6", "-"); err != nil {
		t.Fatalf("custom write: %v\n%s", err, out)
	}
	custom := data(t, s, "connect/connections/conn-custom/3fa85f64-5717-4562-b3fc-2c963f66afa6")
	if custom["credentials"].(map[string]any)["secret"] != "custom-e2e" || custom["metadata"].(map[string]any)["plan"] != "pro" {
		t.Fatalf("custom read: %v", custom)
	}

	// OAUTH2: an imported token that is still fresh comes back as is.
	s.mustCLI(t, "write", "connect/connections/conn-gh/fresh", "access_token=imported-fresh", "expires_in=7200")
	if got := s.mustCLI(t, "read", "-field=access_token", "connect/connections/conn-gh/fresh"); got != "imported-fresh" {
		t.Fatalf("-field=access_token = %q", got)
	}

	// OAUTH2_CC: the plugin fetches the token itself.
	s.mustCLI(t, "write", "-force", "connect/connections/conn-cc/tenant-1")
	cc := s.mustCLI(t, "read", "-field=access_token", "connect/connections/conn-cc/tenant-1")
	if !as.AccessTokenValid(cc) {
		t.Fatalf("client-credentials token %q was not issued by the server", cc)
	}
	// A connection with its own client gets its token with that pair; a
	// read shows the client id, never the secret.
	as.AddClient("tenant-2-client", "tenant-2-secret-e2e")
	s.mustCLI(t, "write", "connect/connections/conn-cc/tenant-2", "client_id=tenant-2-client", "client_secret=tenant-2-secret-e2e")
	own := s.mustCLI(t, "read", "-format=json", "connect/connections/conn-cc/tenant-2/raw")
	ownData := data(t, s, "connect/connections/conn-cc/tenant-2")
	if strings.Contains(own, "tenant-2-secret-e2e") || ownData["client_id"] != "tenant-2-client" || ownData["client_secret_set"] != true ||
		as.IssuedTo(ownData["access_token"].(string)) != "tenant-2-client" {
		t.Fatalf("connection with its own client: %v", ownData)
	}

	// The same connection id in two integrations is two connections.
	s.mustCLI(t, "write", "connect/connections/conn-basic/ops@example.com", "username=other")
	if got := s.mustCLI(t, "read", "-field=api_key", "connect/connections/conn-key/ops@example.com"); got != "sk_e2e_key" {
		t.Fatal("connection id reuse across integrations overwrote a connection")
	}
}

func TestRefreshThroughVault(t *testing.T) {
	s := vaultFor(t)
	as := oauthIntegrations(t, s, "ref")
	rt := as.IssueRefreshToken()
	exp := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	s.mustCLI(t, "write", "connect/connections/ref-gh/c1", "access_token=old-access", "refresh_token="+rt, "expires_at="+exp)

	plain := data(t, s, "connect/connections/ref-gh/c1")
	if _, ok := plain["refresh_token"]; ok {
		t.Fatal("plain read shows the refresh token")
	}
	if _, ok := plain["raw_token_response"]; ok {
		t.Fatal("plain read shows the raw token response")
	}
	access := plain["access_token"].(string)
	if access == "old-access" || !as.AccessTokenValid(access) {
		t.Fatalf("read within the margin returned %q, not a refreshed token", access)
	}
	raw := data(t, s, "connect/connections/ref-gh/c1/raw")
	if raw["refresh_token"] == rt || !as.RefreshTokenValid(raw["refresh_token"].(string)) {
		t.Fatal("rotated refresh token not stored")
	}
	if raw["raw_token_response"].(map[string]any)["access_token"] != access {
		t.Fatalf("raw_token_response = %v", raw["raw_token_response"])
	}

	forced := jsonOut(t, s, "write", "-f", "connect/connections/ref-gh/c1/refresh")["data"].(map[string]any)
	if forced["access_token"] == access || !as.AccessTokenValid(forced["access_token"].(string)) {
		t.Fatal("forced refresh did not return a new token")
	}
	if as.Requests() != 2 {
		t.Fatalf("token requests = %d, want 2", as.Requests())
	}
}

func TestConcurrentReadsThroughVaultSpendOneRefresh(t *testing.T) {
	s := vaultFor(t)
	as := oauthIntegrations(t, s, "stampede")
	as.SetDelay(200 * time.Millisecond)
	exp := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	s.mustCLI(t, "write", "connect/connections/stampede-gh/c1", "access_token=old", "refresh_token="+as.IssueRefreshToken(), "expires_at="+exp)

	const readers = 30
	var wg sync.WaitGroup
	tokens := make([]string, readers)
	errs := make([]error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sec, err := s.client.Logical().Read("connect/connections/stampede-gh/c1")
			if err != nil {
				errs[i] = err
				return
			}
			tokens[i], _ = sec.Data["access_token"].(string)
		}(i)
	}
	wg.Wait()
	for i := range tokens {
		if errs[i] != nil {
			t.Fatalf("reader %d: %v", i, errs[i])
		}
		if tokens[i] != tokens[0] || !as.AccessTokenValid(tokens[i]) {
			t.Fatalf("reader %d got %q, reader 0 got %q", i, tokens[i], tokens[0])
		}
	}
	if as.Requests() != 1 {
		t.Fatalf("token requests = %d, want exactly 1", as.Requests())
	}
}

func TestProviderFailuresThroughVault(t *testing.T) {
	s := vaultFor(t)
	as := oauthIntegrations(t, s, "fail")
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	rt := as.IssueRefreshToken()
	s.mustCLI(t, "write", "connect/connections/fail-gh/expired", "access_token=dead-access", "refresh_token="+rt, "expires_at="+past)
	as.Fail("invalid_grant", http.StatusBadRequest)

	status, body := s.raw(t, "GET", "connect/connections/fail-gh/expired", nil, "")
	if status != http.StatusFailedDependency || !strings.Contains(body, "invalid_grant") {
		t.Fatalf("expired token with a failing provider: %d %s", status, body)
	}
	if strings.Contains(body, "dead-access") || strings.Contains(body, rt) || strings.Contains(body, as.ClientSecret) {
		t.Fatalf("error body contains a secret: %s", body)
	}
	// Client credentials refused: nothing stored.
	status, _ = s.raw(t, "PUT", "connect/connections/fail-cc/t1", []byte(`{}`), "application/json")
	if status != http.StatusFailedDependency {
		t.Fatalf("refused client credentials: status %d", status)
	}
	if status, _ := s.raw(t, "GET", "connect/connections/fail-cc/t1", nil, ""); status != http.StatusNotFound {
		t.Fatalf("a failed client-credentials write stored a connection: %d", status)
	}
}

func TestListPaging(t *testing.T) {
	s := vaultFor(t)
	s.mustCLI(t, "write", "connect/integrations/page-key", "auth_mode=API_KEY")
	for i := 0; i < 5; i++ {
		s.mustCLI(t, "write", fmt.Sprintf("connect/connections/page-key/c%d", i), fmt.Sprintf("api_key=sk_page_%d", i))
	}
	if out := s.mustCLI(t, "list", "connect/connections/page-key"); !strings.Contains(out, "c0") || !strings.Contains(out, "c4") {
		t.Fatalf("vault list:\n%s", out)
	}
	status, body := s.raw(t, "LIST", "connect/connections/page-key?after=c1&limit=2", nil, "")
	if status != http.StatusOK {
		t.Fatalf("LIST: %d %s", status, body)
	}
	var resp struct {
		Data struct {
			Keys    []string                  `json:"keys"`
			KeyInfo map[string]map[string]any `json:"key_info"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if strings.Join(resp.Data.Keys, ",") != "c2,c3" {
		t.Fatalf("page keys = %v", resp.Data.Keys)
	}
	if resp.Data.KeyInfo["c2"]["auth_mode"] != "API_KEY" || resp.Data.KeyInfo["c2"]["created_at"] == "" {
		t.Fatalf("key_info = %v", resp.Data.KeyInfo)
	}
	if strings.Contains(body, "sk_page_") {
		t.Fatal("list response contains a secret")
	}
}

func TestPatchMetadataAndConfig(t *testing.T) {
	s := vaultFor(t)
	s.mustCLI(t, "write", "connect/integrations/doc-key", "auth_mode=API_KEY")
	s.mustCLI(t, "write", "connect/connections/doc-key/acme", "api_key=sk_doc")
	for _, sub := range []string{"metadata", "config"} {
		path := "connect/connections/doc-key/acme/" + sub
		s.mustCLI(t, "write", path, "plan=pro", "region=eu")
		s.mustCLI(t, "patch", path, "plan=enterprise")
		if got := s.mustCLI(t, "read", "-field=plan", path); got != "enterprise" {
			t.Fatalf("%s plan after patch = %q", sub, got)
		}
		if got := s.mustCLI(t, "read", "-field=region", path); got != "eu" {
			t.Fatalf("%s patch lost region: %q", sub, got)
		}
		// A JSON merge patch removes keys set to null.
		if out, err := s.cli([]byte(`{"region": null, "limits": {"users": 5}}`), "patch", path, "-"); err != nil {
			t.Fatalf("patch from stdin: %v\n%s", err, out)
		}
		doc := data(t, s, path)
		if _, ok := doc["region"]; ok || doc["plan"] != "enterprise" || doc["limits"].(map[string]any)["users"] != float64(5) {
			t.Fatalf("%s after null patch: %v", sub, doc)
		}
	}
	conn := data(t, s, "connect/connections/doc-key/acme")
	if conn["metadata"].(map[string]any)["plan"] != "enterprise" || conn["connection_config"].(map[string]any)["plan"] != "enterprise" {
		t.Fatalf("connection read: %v", conn)
	}
}

func TestBadInputStatuses(t *testing.T) {
	s := vaultFor(t)
	s.mustCLI(t, "write", "connect/integrations/bad-key", "auth_mode=API_KEY")
	s.mustCLI(t, "write", "connect/integrations/bad-gh", "auth_mode=OAUTH2", "client_id=c",
		"auth_url=https://p.example/a", "token_url=https://p.example/t")
	s.mustCLI(t, "write", "connect/connections/bad-key/keep", "api_key=sk_keep")

	big := `{"api_key":"k","metadata":{"blob":"` + strings.Repeat("x", 1<<20) + `"}}`
	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"metadata not an object", "PUT", "connect/connections/bad-key/x", `{"api_key":"k","metadata":"plain"}`, 400},
		{"negative expires_in", "PUT", "connect/connections/bad-gh/x", `{"access_token":"a","expires_in":-5}`, 400},
		{"field of another mode", "PUT", "connect/connections/bad-key/x", `{"api_key":"k","password":"p"}`, 400},
		{"control character in id", "PUT", "connect/connections/bad-key/a%01b", `{"api_key":"k"}`, 400},
		{"slash in id", "PUT", "connect/connections/bad-key/a/b", `{"api_key":"k"}`, 400},
		{"no such integration", "PUT", "connect/connections/nope/x", `{"api_key":"k"}`, 400},
		{"oversized", "PUT", "connect/connections/bad-key/x", big, 400},
		{"bad token_url", "PUT", "connect/integrations/bad-url", `{"auth_mode":"OAUTH2_CC","client_id":"c","client_secret":"s","token_url":"not a url"}`, 400},
		{"absent connection", "GET", "connect/connections/bad-key/absent", "", 404},
		{"absent integration", "GET", "connect/integrations/absent", "", 404},
		{"metadata of absent connection", "PUT", "connect/connections/bad-key/absent/metadata", `{"a":"b"}`, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			status, resp := s.raw(t, tc.method, tc.path, body, "application/json")
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, tail(resp, 300))
			}
		})
	}
	if got := s.mustCLI(t, "read", "-field=api_key", "connect/connections/bad-key/keep"); got != "sk_keep" {
		t.Fatal("a refused request changed a stored connection")
	}
	status, _ := s.raw(t, "GET", "connect/connections/bad-key/x", nil, "")
	if status != http.StatusNotFound {
		t.Fatalf("a refused write created connection x: %d", status)
	}
}

func TestDelete(t *testing.T) {
	s := vaultFor(t)
	s.mustCLI(t, "write", "connect/integrations/del-key", "auth_mode=API_KEY")
	s.mustCLI(t, "write", "connect/connections/del-key/a", "api_key=1")
	s.mustCLI(t, "write", "connect/connections/del-key/b", "api_key=2")

	s.mustCLI(t, "delete", "connect/connections/del-key/a")
	if out := s.failCLI(t, "read", "connect/connections/del-key/a"); !strings.Contains(out, "No value found") {
		t.Fatalf("read after delete: %s", out)
	}
	out := s.failCLI(t, "delete", "connect/integrations/del-key")
	if !strings.Contains(out, "1 connection") || !strings.Contains(out, "force=true") {
		t.Fatalf("delete with connections: %s", out)
	}
	s.mustCLI(t, "delete", "connect/integrations/del-key", "force=true")
	s.failCLI(t, "read", "connect/integrations/del-key")
	s.failCLI(t, "read", "connect/connections/del-key/b")
}

// TestAuditLogHasNoPlaintextSecrets writes and reads secrets of every kind
// and then searches the file audit device's log for them: Vault HMACs every
// string of request and response data, so none may appear in the clear.
func TestAuditLogHasNoPlaintextSecrets(t *testing.T) {
	reliabilityCase(t, "file audit device on; every auth mode written and read", "no plaintext credential in the audit log")
	s := vaultFor(t)
	as := oauthIntegrations(t, s, "audit")
	// Rendered request headers are response data too: Vault must HMAC
	// them like any other string.
	s.mustCLI(t, "write", "connect/integrations/audit-key", "auth_mode=API_KEY", "api_base_url=https://api.audit.test",
		"request_headers=Authorization=Basic ${base64(${apiKey}:)}")
	s.mustCLI(t, "write", "connect/integrations/audit-basic", "auth_mode=BASIC")

	rt := as.IssueRefreshToken()
	exp := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	s.mustCLI(t, "write", "connect/connections/audit-gh/c1", "access_token=audit-access-imported", "refresh_token="+rt, "expires_at="+exp)
	s.mustCLI(t, "write", "connect/connections/audit-key/c1", "api_key=audit-api-key-plain")
	s.mustCLI(t, "write", "connect/connections/audit-basic/c1", "username=u", "password=audit-password-plain")
	s.mustCLI(t, "write", "-force", "connect/connections/audit-cc/c1")

	refreshed := data(t, s, "connect/connections/audit-gh/c1/raw")
	cc := s.mustCLI(t, "read", "-field=access_token", "connect/connections/audit-cc/c1")
	renderedAuth := s.mustCLI(t, "read", "-field=headers", "connect/connections/audit-key/c1")
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("audit-api-key-plain:"))
	if !strings.Contains(renderedAuth, wantAuth) {
		t.Fatalf("headers = %s, want Authorization %s", renderedAuth, wantAuth)
	}
	s.mustCLI(t, "read", "connect/connections/audit-basic/c1")

	logText, err := os.ReadFile(s.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logText), "connect/connections/audit-key/c1") || !strings.Contains(string(logText), "hmac-sha256:") {
		t.Fatal("audit log does not show the requests; the check below would prove nothing")
	}
	secrets := []string{
		as.ClientSecret, rt, "audit-access-imported", "audit-api-key-plain", "audit-password-plain", cc,
		refreshed["access_token"].(string), refreshed["refresh_token"].(string),
		base64.StdEncoding.EncodeToString([]byte("audit-api-key-plain:")),
	}
	for _, secret := range secrets {
		if strings.Contains(string(logText), secret) {
			t.Errorf("audit log contains the plaintext secret %q", secret)
		}
	}
}
