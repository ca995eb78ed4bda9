// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

// withIntegrations creates one integration of each non-OAuth mode and an
// OAUTH2 one whose token URL is tokenURL.
func withIntegrations(e *testEnv, tokenURL string) {
	e.mustDo(logical.CreateOperation, "integrations/github", oauthIntegration(tokenURL))
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	e.mustDo(logical.CreateOperation, "integrations/jira", map[string]any{"auth_mode": "BASIC"})
	e.mustDo(logical.CreateOperation, "integrations/legacy", map[string]any{"auth_mode": "CUSTOM"})
}

func TestConnectionEveryModeRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	expires := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)

	cases := []struct {
		path   string
		write  map[string]any
		expect map[string]any
	}{
		{"connections/github/org:123", map[string]any{
			"access_token": "gho_access", "refresh_token": "ghr_refresh", "expires_at": expires.Format(time.RFC3339),
			"scopes": "repo", "metadata": map[string]any{"plan": "pro"}, "connection_config": map[string]any{"subdomain": "acme"},
		}, map[string]any{"access_token": "gho_access", "token_type": "Bearer", "expires_at": expires.Format(time.RFC3339), "auth_mode": "OAUTH2"}},
		{"connections/stripe/ops@example.com", map[string]any{"api_key": "sk_live_1"}, map[string]any{"api_key": "sk_live_1", "auth_mode": "API_KEY"}},
		{"connections/jira/3fa85f64-5717-4562-b3fc-2c963f66afa6", map[string]any{"username": "bot", "password": " pw "}, map[string]any{"username": "bot", "password": " pw "}},
		{"connections/legacy/a+b=c", map[string]any{"credentials": map[string]any{"key": "k1", "region": "eu"}}, map[string]any{"auth_mode": "CUSTOM"}},
	}
	for _, tc := range cases {
		e.mustDo(logical.CreateOperation, tc.path, tc.write)
		data := e.mustDo(logical.ReadOperation, tc.path, nil)
		for k, want := range tc.expect {
			if data[k] != want {
				t.Errorf("%s: %s = %v, want %v", tc.path, k, data[k], want)
			}
		}
		for _, k := range []string{"integration", "connection_id", "created_at", "updated_at", "metadata", "connection_config"} {
			if _, ok := data[k]; !ok {
				t.Errorf("%s: read lacks %s", tc.path, k)
			}
		}
		if _, ok := data["refresh_token"]; ok {
			t.Errorf("%s: plain read returned refresh_token", tc.path)
		}
		if _, ok := data["raw_token_response"]; ok {
			t.Errorf("%s: plain read returned raw_token_response", tc.path)
		}
	}
	gh := e.mustDo(logical.ReadOperation, "connections/github/org:123", nil)
	if gh["metadata"].(map[string]any)["plan"] != "pro" || gh["connection_config"].(map[string]any)["subdomain"] != "acme" {
		t.Fatalf("documents not stored: %v", gh)
	}
	raw := e.mustDo(logical.ReadOperation, "connections/github/org:123/raw", nil)
	if raw["refresh_token"] != "ghr_refresh" {
		t.Fatalf("raw read refresh_token = %v", raw["refresh_token"])
	}
	custom := e.mustDo(logical.ReadOperation, "connections/legacy/a+b=c", nil)["credentials"].(map[string]any)
	if custom["key"] != "k1" || custom["region"] != "eu" {
		t.Fatalf("custom credentials = %v", custom)
	}
	e.assertNoSecretLogged("gho_access", "ghr_refresh", "sk_live_1", "k1")
}

func TestConnectionIDReusedAcrossIntegrations(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/customer-1", map[string]any{"api_key": "sk_1"})
	e.mustDo(logical.CreateOperation, "connections/jira/customer-1", map[string]any{"username": "u"})
	if e.mustDo(logical.ReadOperation, "connections/stripe/customer-1", nil)["api_key"] != "sk_1" {
		t.Fatal("stripe connection overwritten")
	}
	if e.mustDo(logical.ReadOperation, "connections/jira/customer-1", nil)["username"] != "u" {
		t.Fatal("jira connection missing")
	}
}

func TestConnectionPartialUpdate(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/jira/c", map[string]any{"username": "u", "password": "p1", "metadata": map[string]any{"a": 1}})
	created := e.mustDo(logical.ReadOperation, "connections/jira/c", nil)["created_at"]
	e.mustDo(logical.UpdateOperation, "connections/jira/c", map[string]any{"password": "p2"})
	data := e.mustDo(logical.ReadOperation, "connections/jira/c", nil)
	if data["username"] != "u" || data["password"] != "p2" || fmt.Sprint(data["metadata"].(map[string]any)["a"]) != "1" {
		t.Fatalf("partial update: %v", data)
	}
	if data["created_at"] != created {
		t.Fatal("update changed created_at")
	}
}

func TestConnectionImportReplacesExpiry(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/github/c", map[string]any{"access_token": "a1", "expires_in": 7200})
	if e.mustDo(logical.ReadOperation, "connections/github/c", nil)["expires_at"] == "" {
		t.Fatal("expires_in not applied")
	}
	// A new token without an expiry must not inherit the old one's.
	e.mustDo(logical.UpdateOperation, "connections/github/c", map[string]any{"access_token": "a2"})
	if got := e.mustDo(logical.ReadOperation, "connections/github/c", nil)["expires_at"]; got != "" {
		t.Fatalf("expires_at = %v after importing a token without expiry", got)
	}
}

func TestConnectionRejectsBadInput(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/existing", map[string]any{"api_key": "sk_keep"})
	before := e.snapshot()
	cases := []rejection{
		{"no such integration", "connections/nope/c", map[string]any{"api_key": "x"}, "does not exist"},
		{"field of another mode", "connections/stripe/c", map[string]any{"api_key": "k", "access_token": "zzz-secret"}, "access_token"},
		{"field of another mode on update", "connections/stripe/existing", map[string]any{"password": "zzz-secret"}, "password"},
		{"missing api_key", "connections/stripe/c", map[string]any{}, "api_key is required"},
		{"empty api_key on update", "connections/stripe/existing", map[string]any{"api_key": ""}, "api_key is required"},
		{"missing access_token", "connections/github/c", map[string]any{"refresh_token": "zzz-secret"}, "access_token is required"},
		{"missing username", "connections/jira/c", map[string]any{"password": "zzz-secret"}, "username is required"},
		{"missing credentials", "connections/legacy/c", map[string]any{}, "credentials is required"},
		{"non-string credential", "connections/legacy/c", map[string]any{"credentials": map[string]any{"n": 1}}, "credentials.n must be a string"},
		{"both expiries", "connections/github/c", map[string]any{"access_token": "a", "expires_in": 60, "expires_at": "2030-01-01T00:00:00Z"}, "not both"},
		{"bad expires_at", "connections/github/c", map[string]any{"access_token": "a", "expires_at": "tomorrow"}, "RFC 3339"},
		{"negative expires_in", "connections/github/c", map[string]any{"access_token": "a", "expires_in": -5}, "expires_in"},
		{"metadata not an object", "connections/stripe/c", map[string]any{"api_key": "k", "metadata": "plain"}, "metadata"},
		{"metadata a list", "connections/stripe/c", map[string]any{"api_key": "k", "metadata": []any{"a"}}, "metadata"},
		{"config not an object", "connections/stripe/c", map[string]any{"api_key": "k", "connection_config": 5}, "connection_config"},
		{"id with control char", "connections/stripe/a\x07b", map[string]any{"api_key": "k"}, "connection_id"},
		{"id with space", "connections/stripe/a b", map[string]any{"api_key": "k"}, "connection_id"},
		{"id too long", "connections/stripe/" + strings.Repeat("x", 256), map[string]any{"api_key": "k"}, "connection_id"},
		{"id dot-dot", "connections/stripe/..", map[string]any{"api_key": "k"}, "connection_id"},
		{"id with slash", "connections/stripe/a/b", map[string]any{"api_key": "k"}, "cannot contain '/'"},
		{"oversized", "connections/stripe/c", map[string]any{"api_key": "k", "metadata": map[string]any{"blob": strings.Repeat("b", maxPayloadBytes)}}, "limit"},
	}
	e.assertRejected(cases, "zzz-secret")
	e.assertUnchanged(before)
	e.assertNoSecretLogged("zzz-secret", "sk_keep")
}

func TestConnectionAbsent(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustFail(logical.ReadOperation, "connections/stripe/none", nil, http.StatusNotFound)
	e.mustFail(logical.ReadOperation, "connections/stripe/none/raw", nil, http.StatusNotFound)
	e.mustFail(logical.UpdateOperation, "connections/github/none/refresh", nil, http.StatusNotFound)
	e.mustFail(logical.ListOperation, "connections/stripe/", nil, http.StatusNotFound)
}

func TestConnectionDelete(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/c", map[string]any{"api_key": "k"})
	e.mustDo(logical.DeleteOperation, "connections/stripe/c", nil)
	e.mustFail(logical.ReadOperation, "connections/stripe/c", nil, http.StatusNotFound)
	// Deleting again is not an error, as elsewhere in Vault.
	e.mustDo(logical.DeleteOperation, "connections/stripe/c", nil)
}

func TestConnectionListPaging(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	for i := 0; i < 7; i++ {
		e.mustDo(logical.CreateOperation, fmt.Sprintf("connections/stripe/cust-%02d", i), map[string]any{"api_key": fmt.Sprintf("sk_secret_%d", i)})
	}
	resp, _ := e.do(logical.ListOperation, "connections/stripe/", map[string]any{"limit": 3})
	if got := strings.Join(resp.Data["keys"].([]string), ","); got != "cust-00,cust-01,cust-02" {
		t.Fatalf("first page = %s", got)
	}
	resp, _ = e.do(logical.ListOperation, "connections/stripe/", map[string]any{"after": "cust-02", "limit": 3})
	if got := strings.Join(resp.Data["keys"].([]string), ","); got != "cust-03,cust-04,cust-05" {
		t.Fatalf("second page = %s", got)
	}
	resp, _ = e.do(logical.ListOperation, "connections/stripe/", map[string]any{"after": "cust-05"})
	if got := strings.Join(resp.Data["keys"].([]string), ","); got != "cust-06" {
		t.Fatalf("last page = %s", got)
	}
	info := resp.Data["key_info"].(map[string]any)["cust-06"].(map[string]any)
	if info["auth_mode"] != "API_KEY" || info["created_at"] == "" {
		t.Fatalf("key_info = %v", info)
	}
	if s := fmt.Sprint(resp.Data); strings.Contains(s, "sk_secret") {
		t.Fatalf("list response contains a secret: %s", s)
	}
	e.mustFail(logical.ListOperation, "connections/stripe/", map[string]any{"limit": -1}, http.StatusBadRequest)
	e.mustFail(logical.ListOperation, "connections/stripe/", map[string]any{"limit": maxListLimit + 1}, http.StatusBadRequest)
}

// TestConnectionListHasADefaultPage: a list without limit returns one page
// of defaultListLimit, and after goes on.
func TestConnectionListHasADefaultPage(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	for i := range defaultListLimit + 5 {
		putConnection(t.Context(), e.storage, &connectionEntry{Integration: "stripe", ConnectionID: fmt.Sprintf("c%05d", i), AuthMode: catalog.APIKey})
	}
	resp, _ := e.do(logical.ListOperation, "connections/stripe/", nil)
	keys := resp.Data["keys"].([]string)
	if len(keys) != defaultListLimit {
		t.Fatalf("unpaged list returned %d ids", len(keys))
	}
	resp, _ = e.do(logical.ListOperation, "connections/stripe/", map[string]any{"after": keys[len(keys)-1]})
	if n := len(resp.Data["keys"].([]string)); n != 5 {
		t.Fatalf("next page has %d ids", n)
	}
}

// key_info=false lists ids without reading the entries.
func TestListWithoutKeyInfoReadsNoEntry(t *testing.T) {
	counting := &countingStorage{Storage: &logical.InmemStorage{}}
	e := newTestEnvOn(t, counting)
	e.mustDo(logical.CreateOperation, "integrations/crm", map[string]any{"auth_mode": "API_KEY"})
	for _, id := range []string{"a", "b", "c"} {
		e.mustDo(logical.CreateOperation, "connections/crm/"+id, map[string]any{"api_key": "k"})
	}
	e.b.store.cache.invalidate(connectionKey("crm", "b"))
	counting.ops.Store(0)
	resp, _ := e.do(logical.ListOperation, "connections/crm/", map[string]any{"key_info": false, "after": "a"})
	if keys := resp.Data["keys"].([]string); strings.Join(keys, ",") != "b,c" || resp.Data["key_info"] != nil {
		t.Fatalf("list = %v", resp.Data)
	}
	if n := counting.ops.Load(); n != 1 {
		t.Fatalf("%d storage operations, want 1 (the list)", n)
	}
	if resp, _ := e.do(logical.ListOperation, "connections/crm/", nil); len(resp.Data["key_info"].(map[string]any)) != 3 {
		t.Fatalf("default list has no key_info: %v", resp.Data)
	}
}

// The credential fields of connection writes and reads, their schemas and
// the response a read renders are the catalog's list: a field added there
// without its help or its value here fails.
func TestCredentialFieldsComeFromTheCatalog(t *testing.T) {
	writeFields, readFields := connectionFields(), connectionResponseFields(true)
	for _, f := range catalog.CredentialFields() {
		if len(f.WriteModes) > 0 {
			schema, ok := writeFields[f.Name]
			if !ok {
				t.Errorf("connection writes have no field %s", f.Name)
			} else if secret := schema.DisplayAttrs != nil && schema.DisplayAttrs.Sensitive; secret != f.Secret {
				t.Errorf("field %s: sensitive = %v, catalog's secret = %v", f.Name, secret, f.Secret)
			}
		}
		if _, ok := credentialWriteFields[f.Name]; ok != (len(f.WriteModes) > 0) {
			t.Errorf("credentialWriteFields has %s = %v, catalog's write modes %v", f.Name, ok, f.WriteModes)
		}
	}
	if len(credentialReadFields) != len(readCredentialNames(nil, true)) {
		t.Errorf("credentialReadFields lists %d fields, the catalog %d", len(credentialReadFields), len(readCredentialNames(nil, true)))
	}
	for _, name := range readCredentialNames(nil, true) {
		if readFields[name] == nil {
			t.Errorf("connection reads have no field %s", name)
		}
	}
	full := credentials{AccessToken: "a", RefreshToken: "r", TokenType: "Bearer", ExpiresAt: time.Now(), Scopes: []string{"s"},
		ClientID: "id", ClientSecret: "secret", APIKey: "k", Username: "u", Password: "p", Custom: map[string]string{"x": "y"}}
	all := readCredentialNames(nil, true)
	for _, mode := range catalog.AuthModes {
		for _, raw := range []bool{false, true} {
			data := connectionResponse(&connectionEntry{AuthMode: mode, Credentials: full, InstallationID: "1"}, raw)
			var got []string
			for _, name := range all {
				if _, ok := data[name]; ok {
					got = append(got, name)
				}
			}
			if want := readCredentialNames(&mode, raw); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("%s (raw %v): a read returns %v, the catalog says %v", mode, raw, got, want)
			}
		}
		// credentials_schema checks the values under the catalog's schema
		// keys (CUSTOM's are its own).
		var want []string
		for _, f := range catalog.CredentialFields() {
			if f.SchemaKey != "" && slices.Contains(f.WriteModes, mode) {
				want = append(want, f.SchemaKey)
			}
		}
		if mode == catalog.Custom {
			want = []string{"x"}
		}
		c := &connectionEntry{AuthMode: mode, Credentials: full}
		if got := slices.Sorted(maps.Keys(credentialValues(c))); strings.Join(got, ",") != strings.Join(sortedCopy(want), ",") {
			t.Errorf("%s: credentials_schema sees %v, the catalog says %v", mode, got, want)
		}
	}
}

// sortedCopy returns s sorted, leaving s alone.
func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// readCredentialNames lists the response names of the catalog's credential
// fields that a read of mode returns (every mode's when mode is nil).
func readCredentialNames(mode *catalog.AuthMode, raw bool) []string {
	var names []string
	for _, f := range catalog.CredentialFields() {
		if len(f.ReadModes) == 0 || f.RawOnly && !raw || mode != nil && !slices.Contains(f.ReadModes, *mode) {
			continue
		}
		if f.WriteOnly {
			names = append(names, f.Name+"_set")
		} else {
			names = append(names, f.Name)
		}
	}
	return names
}

// The response map is sized once: no mode's read, with rendering's two
// fields, outgrows connectionResponseSize.
func TestConnectionResponseSizeBoundsEveryMode(t *testing.T) {
	for _, mode := range catalog.AuthModes {
		for _, long := range []bool{false, true} {
			c := &connectionEntry{AuthMode: mode, Credentials: credentials{Custom: map[string]string{"a": "b"}}}
			if got, max := len(connectionResponse(c, long))+2, connectionResponseSize(mode, long); got > max {
				t.Errorf("%s (long-lived %v): %d fields, sized for %d", mode, long, got, max)
			}
		}
	}
}
