// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestConnectionDocumentsReplacePatchRead(t *testing.T) {
	for _, doc := range connectionDocuments {
		t.Run(doc.subPath, func(t *testing.T) {
			e := newTestEnv(t)
			withIntegrations(e, "https://provider.example/token")
			e.mustDo(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1"})
			path := "connections/stripe/acme/" + doc.subPath

			if got := e.mustDo(logical.ReadOperation, path, nil); len(got) != 0 {
				t.Fatalf("new connection's %s = %v, want empty", doc.subPath, got)
			}
			e.mustDo(logical.UpdateOperation, path, map[string]any{
				"plan": "pro", "seats": json.Number("12345678901234567"), "limits": map[string]any{"api": 100, "users": 5},
			})
			e.mustDo(logical.PatchOperation, path, map[string]any{
				"plan": "enterprise", "seats": nil, "limits": map[string]any{"users": 50}, "region": "eu",
			})
			got := e.mustDo(logical.ReadOperation, path, nil)
			b, _ := json.Marshal(got)
			want := `{"limits":{"api":100,"users":50},"plan":"enterprise","region":"eu"}`
			if string(b) != want {
				t.Fatalf("after patch: %s, want %s", b, want)
			}
			// The connection read shows the same document.
			conn := e.mustDo(logical.ReadOperation, "connections/stripe/acme", nil)
			b2, _ := json.Marshal(conn[doc.field])
			if string(b2) != want {
				t.Fatalf("connection read %s = %s", doc.field, b2)
			}
			// Replace drops keys not given; large integers survive.
			e.mustDo(logical.UpdateOperation, path, map[string]any{"id": json.Number("12345678901234567")})
			b, _ = json.Marshal(e.mustDo(logical.ReadOperation, path, nil))
			if string(b) != `{"id":12345678901234567}` {
				t.Fatalf("after replace: %s", b)
			}
			if conn := e.mustDo(logical.ReadOperation, "connections/stripe/acme", nil); conn["api_key"] != "sk_1" {
				t.Fatal("editing a document lost the credentials")
			}
		})
	}
}

func TestConnectionDocumentsErrors(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1"})
	before := e.snapshot()
	for _, sub := range []string{"metadata", "config"} {
		e.mustFail(logical.ReadOperation, "connections/stripe/none/"+sub, nil, http.StatusNotFound)
		e.mustFail(logical.UpdateOperation, "connections/stripe/none/"+sub, map[string]any{"a": "b"}, http.StatusNotFound)
		e.mustFail(logical.PatchOperation, "connections/stripe/none/"+sub, map[string]any{"a": "b"}, http.StatusNotFound)
		msg := e.mustFail(logical.UpdateOperation, "connections/stripe/acme/"+sub, map[string]any{"blob": strings.Repeat("x", maxPayloadBytes)}, http.StatusBadRequest)
		if !strings.Contains(msg, "limit") {
			t.Fatalf("oversized %s: %q", sub, msg)
		}
		e.mustFail(logical.UpdateOperation, "connections/stripe/bad%id/"+sub, map[string]any{"a": "b"}, http.StatusBadRequest)
	}
	e.assertUnchanged(before)
}

// TestDocumentsAreCappedAfterTheMerge: many small patches cannot build a
// document (and an entry) past the limits.
func TestDocumentsAreCappedAfterTheMerge(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	e.mustDo(logical.CreateOperation, "connections/stripe/c", map[string]any{"api_key": "k"})
	chunk := strings.Repeat("x", maxDocumentBytes/3)
	var failed bool
	for i := range 4 {
		resp, status := e.do(logical.PatchOperation, "connections/stripe/c/metadata", map[string]any{fmt.Sprint("k", i): chunk})
		if status == http.StatusBadRequest {
			failed = true
			if !strings.Contains(errorText(resp), "limit") {
				t.Fatalf("error = %q", errorText(resp))
			}
			break
		}
	}
	if !failed {
		t.Fatal("patches grew metadata past the limit")
	}
	stored, _ := getConnection(t.Context(), e.storage, "stripe", "c")
	if b, _ := json.Marshal(stored.Metadata); len(b) > maxDocumentBytes {
		t.Fatalf("stored metadata is %d bytes", len(b))
	}
	e.mustFail(logical.PatchOperation, "connections/stripe/c/config", map[string]any{"a": strings.Repeat("y", maxDocumentBytes)}, http.StatusBadRequest)
	e.mustFail(logical.UpdateOperation, "connections/stripe/c", map[string]any{"metadata": map[string]any{"a": strings.Repeat("y", maxDocumentBytes)}}, http.StatusBadRequest)
}
