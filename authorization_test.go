// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// One rule decides the config an authorization resolves its URLs with and
// stores: the one authorize was given, else the connection's as it is.
func TestStateConnectionConfigRule(t *testing.T) {
	given := map[string]any{"subdomain": "given"}
	own := map[string]any{"subdomain": "own"}
	conn := &connectionEntry{ConnectionConfig: own}
	for _, tc := range []struct {
		name string
		st   *pendingAuthorization
		c    *connectionEntry
		want map[string]any
	}{
		{"given, connection exists", &pendingAuthorization{ConnectionConfig: given, ReplaceConnectionConfig: true}, conn, given},
		{"given, no connection", &pendingAuthorization{ConnectionConfig: given, ReplaceConnectionConfig: true}, nil, given},
		{"not given, connection exists", &pendingAuthorization{}, conn, own},
		{"not given, no connection", &pendingAuthorization{}, nil, nil},
		{"given empty, dropped by storage", &pendingAuthorization{ReplaceConnectionConfig: true}, conn, map[string]any{}},
	} {
		if got := tc.st.connectionConfig(tc.c); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// An authorization given an empty config and empty metadata stores them
// empty, replacing the connection's, though the pending state that carries
// them to the callback drops empty objects.
func TestAuthorizationGivenEmptyObjectsReplaces(t *testing.T) {
	e, srv := authEnv(t)
	importExpiring(e, srv, "acme", time.Hour)
	e.mustDo(logical.UpdateOperation, "connections/github/acme", map[string]any{
		"metadata": map[string]any{"plan": "pro"}, "connection_config": map[string]any{"region": "eu"},
	})
	q := consent(t, e, "connections/github/acme/authorize", map[string]any{
		"metadata": map[string]any{}, "connection_config": map[string]any{},
	})
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	c, err := getConnection(t.Context(), e.storage, "github", "acme")
	if err != nil || c == nil {
		t.Fatalf("stored connection: %v %v", c, err)
	}
	if c.Metadata == nil || len(c.Metadata) != 0 || c.ConnectionConfig == nil || len(c.ConnectionConfig) != 0 {
		t.Fatalf("stored metadata %#v, config %#v; want both empty objects", c.Metadata, c.ConnectionConfig)
	}
}

// TestCallbackIgnoresAuthorizeTagsForAConnectionMadeMeanwhile: a connection
// created between authorize and the callback keeps its own tags; the
// authorization's tags only label a connection the callback creates, and a
// failed authorization's event carries the stored connection's tags.
func TestCallbackIgnoresAuthorizeTagsForAConnectionMadeMeanwhile(t *testing.T) {
	e, srv := authEnv(t)
	events := captureEvents(e)
	q := consent(t, e, "connections/github/acme/authorize", map[string]any{"tags": map[string]any{"organization_id": "victim"}})
	importExpiring(e, srv, "acme", time.Hour)
	e.mustDo(logical.UpdateOperation, "connections/github/acme", map[string]any{"tags": map[string]any{"organization_id": "acme"}})
	if status, _, _ := callback(e, q); status != http.StatusOK {
		t.Fatal("callback failed")
	}
	if got := e.mustDo(logical.ReadOperation, "connections/github/acme", nil)["tags"]; !reflect.DeepEqual(got, map[string]string{"organization_id": "acme"}) {
		t.Fatalf("tags after the callback = %v; authorize's tags relabelled a connection it did not create", got)
	}
	events.take()

	q = consent(t, e, "connections/github/other/authorize", map[string]any{"tags": map[string]any{"organization_id": "victim"}})
	importExpiring(e, srv, "other", time.Hour)
	e.mustDo(logical.UpdateOperation, "connections/github/other", map[string]any{"tags": map[string]any{"organization_id": "other"}})
	events.take()
	srv.Fail("invalid_client", http.StatusUnauthorized)
	if status, _, _ := callback(e, q); status != http.StatusFailedDependency {
		t.Fatalf("failed exchange status %d", status)
	}
	got := events.take()
	if len(got) != 1 || got[0].typ != eventAuthorizationFailed || got[0].data.Tags["organization_id"] != "other" {
		t.Fatalf("failed authorization events = %+v; want the stored connection's tags", got)
	}
}
