// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestTagsOnWriteReadAndUpdate(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	tags := map[string]any{"organization_id": "acme", "end_user_email": "a@acme.test"}
	e.mustDo(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1", "tags": tags})
	got := e.mustDo(logical.ReadOperation, "connections/stripe/acme", nil)["tags"]
	if !reflect.DeepEqual(got, map[string]string{"organization_id": "acme", "end_user_email": "a@acme.test"}) {
		t.Fatalf("tags read = %#v", got)
	}

	// An update without tags keeps them; one with tags replaces them.
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_2"})
	if got := e.mustDo(logical.ReadOperation, "connections/stripe/acme", nil)["tags"]; len(got.(map[string]string)) != 2 {
		t.Fatalf("tags after an update without tags = %#v", got)
	}
	// The CLI's key=value form.
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"tags": []any{"end_user_id=42"}})
	if got := e.mustDo(logical.ReadOperation, "connections/stripe/acme", nil)["tags"]; !reflect.DeepEqual(got, map[string]string{"end_user_id": "42"}) {
		t.Fatalf("tags after replacing = %#v", got)
	}
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"tags": map[string]any{}})
	if got := e.mustDo(logical.ReadOperation, "connections/stripe/acme", nil)["tags"]; len(got.(map[string]string)) != 0 {
		t.Fatalf("tags after clearing = %#v", got)
	}
}

func TestBadTagsAreRefusedAndChangeNothing(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL, "oauth_completion": "callback"})
	e.mustDo(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1", "tags": map[string]any{"a": "1"}})
	tooMany := map[string]any{}
	for i := range maxTags + 1 {
		tooMany[fmt.Sprintf("k%d", i)] = "v"
	}
	cases := []rejection{
		{"too many keys", "connections/stripe/acme", map[string]any{"tags": tooMany}, "at most 32"},
		{"key charset", "connections/stripe/acme", map[string]any{"tags": map[string]any{"org id": "x"}}, "tags key"},
		{"key with colon", "connections/stripe/acme", map[string]any{"tags": map[string]any{"org:id": "x"}}, "tags key"},
		{"long key", "connections/stripe/acme", map[string]any{"tags": map[string]any{strings.Repeat("k", 65): "x"}}, "tags key"},
		{"long value", "connections/stripe/acme", map[string]any{"tags": map[string]any{"k": strings.Repeat("é", 257)}}, "tags.k has 257 characters"},
		{"control character", "connections/stripe/acme", map[string]any{"tags": map[string]any{"k": "a\nb"}}, "tags.k may not contain control"},
		{"not a map", "connections/stripe/acme", map[string]any{"tags": []any{"novalue"}}, "tags"},
		{"authorize", "connections/github/acme/authorize", map[string]any{"tags": map[string]any{"bad key": "x"}}, "tags key"},
	}
	before := e.snapshot()
	e.assertRejected(cases, "\x00")
	e.assertUnchanged(before)

	// A value of exactly the bound is fine.
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"tags": map[string]any{"k": strings.Repeat("é", 256)}})
}

func TestListFiltersByTag(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	for i := range 6 {
		org := "acme"
		if i%2 == 1 {
			org = "globex"
		}
		e.mustDo(logical.CreateOperation, fmt.Sprintf("connections/stripe/c%d", i), map[string]any{
			"api_key": "sk", "tags": map[string]any{"organization_id": org},
		})
	}
	e.mustDo(logical.CreateOperation, "connections/stripe/untagged", map[string]any{"api_key": "sk"})

	list := func(q map[string]any) ([]any, map[string]any) {
		t.Helper()
		data := e.mustDo(logical.ListOperation, "connections/stripe/", q)
		keys, _ := data["keys"].([]string)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = k
		}
		info, _ := data["key_info"].(map[string]any)
		return out, info
	}
	keys, info := list(map[string]any{"tag": "organization_id:acme"})
	if fmt.Sprint(keys) != "[c0 c2 c4]" {
		t.Fatalf("filtered list = %v", keys)
	}
	if tags := info["c2"].(map[string]any)["tags"]; !reflect.DeepEqual(tags, map[string]string{"organization_id": "acme"}) {
		t.Fatalf("key_info tags = %#v", tags)
	}
	// Paging continues within the filter.
	if keys, _ := list(map[string]any{"tag": "organization_id:acme", "limit": 2}); fmt.Sprint(keys) != "[c0 c2]" {
		t.Fatalf("first page = %v", keys)
	}
	if keys, _ := list(map[string]any{"tag": "organization_id:acme", "after": "c2", "key_info": false}); fmt.Sprint(keys) != "[c4]" {
		t.Fatalf("second page = %v", keys)
	}
	// No match is an empty list, which Vault answers with 404.
	e.mustFail(logical.ListOperation, "connections/stripe/", map[string]any{"tag": "organization_id:nobody"}, http.StatusNotFound)
	if keys, _ := list(nil); len(keys) != 7 {
		t.Fatalf("unfiltered list = %v", keys)
	}
	for _, bad := range []string{"organization_id", ":acme", "org id:acme", "k:a\x01b"} {
		msg := e.mustFail(logical.ListOperation, "connections/stripe/", map[string]any{"tag": bad}, http.StatusBadRequest)
		if !strings.Contains(msg, "tag") {
			t.Fatalf("tag=%q: error %q does not name the field", bad, msg)
		}
	}
}

func TestImportSetsTags(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	data := e.mustDo(logical.UpdateOperation, "import/stripe", map[string]any{"connections": []any{
		map[string]any{"connection_id": "a", "api_key": "sk", "tags": map[string]any{"organization_id": "acme"}},
		map[string]any{"connection_id": "b", "api_key": "sk", "tags": map[string]any{"bad key": "x"}},
	}})
	results := data["results"].([]any)
	first, second := results[0].(map[string]any), results[1].(map[string]any)
	if first["status"] != "created" || second["status"] != "failed" || !strings.Contains(fmt.Sprint(second["error"]), "tags key") {
		t.Fatalf("results = %+v", results)
	}
	if got := e.mustDo(logical.ReadOperation, "connections/stripe/a", nil)["tags"]; !reflect.DeepEqual(got, map[string]string{"organization_id": "acme"}) {
		t.Fatalf("imported tags = %#v", got)
	}
}

func TestAuthorizeTagsReachTheConnection(t *testing.T) {
	e, _ := authEnv(t)
	q := consent(t, e, "connections/github/acme/authorize", map[string]any{"tags": map[string]any{"organization_id": "acme"}})
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	want := map[string]string{"organization_id": "acme"}
	if got := e.mustDo(logical.ReadOperation, "connections/github/acme", nil)["tags"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("tags after the callback = %#v", got)
	}
	// A re-authorization keeps them; authorize refuses tags for an
	// existing connection (they are changed by a write to it).
	if status, _, _ := callback(e, consent(t, e, "connections/github/acme/authorize", nil)); status != http.StatusOK {
		t.Fatal("re-authorization failed")
	}
	if got := e.mustDo(logical.ReadOperation, "connections/github/acme", nil)["tags"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("tags after a re-authorization = %#v", got)
	}
	e.mustFail(logical.UpdateOperation, "connections/github/acme/authorize", map[string]any{"tags": map[string]any{"end_user_id": "7"}}, http.StatusBadRequest)
	if got := e.mustDo(logical.ReadOperation, "connections/github/acme", nil)["tags"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("tags after a refused authorize with tags = %#v", got)
	}
}
