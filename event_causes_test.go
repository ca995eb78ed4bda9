// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestWriteEvents(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	events := captureEvents(e)
	tags := map[string]any{"organization_id": "acme"}

	e.mustDo(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_1", "tags": tags})
	got := expectEvents(t, events, "acme", eventConnectionCreated)
	want := eventData{Integration: "stripe", ConnectionID: "acme", AuthMode: "API_KEY", Tags: map[string]string{"organization_id": "acme"}}
	if !reflect.DeepEqual(got[0].data, want) {
		t.Fatalf("created data = %+v, want %+v", got[0].data, want)
	}

	// Metadata, config or tags alone: no event.
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"metadata": map[string]any{"plan": "pro"}})
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"tags": map[string]any{"organization_id": "acme", "end_user_id": "7"}})
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme/metadata", map[string]any{"plan": "enterprise"})
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme/config", map[string]any{"region": "eu"})
	expectEvents(t, events, "acme")

	// Credentials replaced: updated, with the tags as they are now.
	e.mustDo(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_2"})
	got = expectEvents(t, events, "acme", eventConnectionUpdated)
	if got[0].data.Tags["end_user_id"] != "7" {
		t.Fatalf("updated tags = %v", got[0].data.Tags)
	}

	// A refused write records nothing.
	e.mustFail(logical.UpdateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_3", "tags": map[string]any{"bad key": "x"}}, http.StatusBadRequest)
	expectEvents(t, events, "acme")

	e.mustDo(logical.DeleteOperation, "connections/stripe/acme", nil)
	got = expectEvents(t, events, "acme", eventConnectionDeleted)
	if got[0].data.Tags["organization_id"] != "acme" {
		t.Fatalf("deleted tags = %v", got[0].data.Tags)
	}
	// Deleting what does not exist records nothing.
	e.mustDo(logical.DeleteOperation, "connections/stripe/acme", nil)
	expectEvents(t, events, "acme")
}

func TestImportEvents(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	events := captureEvents(e)
	e.mustDo(logical.UpdateOperation, "import/stripe", map[string]any{"connections": []any{
		map[string]any{"connection_id": "a", "api_key": "sk", "tags": map[string]any{"organization_id": "acme"}},
	}})
	got := expectEvents(t, events, "a", eventConnectionCreated)
	if got[0].data.Tags["organization_id"] != "acme" {
		t.Fatalf("import tags = %v", got[0].data.Tags)
	}
	e.mustDo(logical.UpdateOperation, "import/stripe", map[string]any{"overwrite": true, "connections": []any{
		map[string]any{"connection_id": "a", "api_key": "sk-new"},
	}})
	expectEvents(t, events, "a", eventConnectionUpdated)
}

func TestForcedIntegrationDeleteRecordsEachDeletion(t *testing.T) {
	e := newTestEnv(t)
	withIntegrations(e, "https://provider.example/token")
	for _, id := range []string{"a", "b"} {
		e.mustDo(logical.CreateOperation, "connections/stripe/"+id, map[string]any{"api_key": "sk"})
	}
	events := captureEvents(e)
	e.mustDo(logical.DeleteOperation, "integrations/stripe", map[string]any{"force": true})
	got := events.take()
	if len(got) != 2 || got[0].typ != eventConnectionDeleted || got[1].typ != eventConnectionDeleted ||
		got[0].data.ConnectionID != "a" || got[1].data.ConnectionID != "b" {
		t.Fatalf("events = %+v", got)
	}
}

func TestAuthorizationEvents(t *testing.T) {
	e, srv := authEnv(t)
	events := captureEvents(e)
	q := consent(t, e, "connections/github/acme/authorize", map[string]any{"tags": map[string]any{"organization_id": "acme"}})
	if status, _, _ := callback(e, q); status != http.StatusOK {
		t.Fatal("callback failed")
	}
	got := expectEvents(t, events, "acme", eventConnectionCreated)
	if got[0].data.Tags["organization_id"] != "acme" || got[0].data.AuthMode != "OAUTH2" || got[0].data.RefreshStatus != "ok" {
		t.Fatalf("created data = %+v", got[0].data)
	}
	if status, _, _ := callback(e, consent(t, e, "connections/github/acme/authorize", nil)); status != http.StatusOK {
		t.Fatal("re-authorization failed")
	}
	expectEvents(t, events, "acme", eventConnectionUpdated)

	// The customer refuses: authorization_failed with the provider's code.
	srv.Deny("access_denied", "The user said no")
	q = consent(t, e, "connections/github/acme/authorize", nil)
	if status, _, _ := callback(e, q); status != http.StatusBadRequest {
		t.Fatalf("denied callback status %d", status)
	}
	got = expectEvents(t, events, "acme", eventAuthorizationFailed)
	if e := got[0].data.Error; e == nil || e.Code != "access_denied" || e.Description != "The user said no" {
		t.Fatalf("denied error = %+v", got[0].data.Error)
	}
	if got[0].data.Tags["organization_id"] != "acme" {
		t.Fatalf("denied tags = %v (the connection's)", got[0].data.Tags)
	}

	// The code exchange fails.
	srv.Deny("", "")
	q = consent(t, e, "connections/github/other/authorize", map[string]any{"tags": map[string]any{"end_user_id": "9"}})
	srv.Fail("invalid_client", http.StatusUnauthorized)
	if status, _, _ := callback(e, q); status != http.StatusFailedDependency {
		t.Fatalf("failed exchange status %d", status)
	}
	got = expectEvents(t, events, "other", eventAuthorizationFailed)
	if e := got[0].data.Error; e == nil || e.Code != "invalid_client" {
		t.Fatalf("exchange error = %+v", got[0].data.Error)
	}
	if got[0].data.Tags["end_user_id"] != "9" {
		t.Fatalf("exchange failure tags = %v (authorize's)", got[0].data.Tags)
	}
}

func TestRefreshEvents(t *testing.T) {
	e, srv := oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"max_refresh_failures": 3})
	importExpiring(e, srv, "c1", 10*time.Minute)
	e.mustDo(logical.UpdateOperation, "connections/github/c1", map[string]any{"tags": map[string]any{"organization_id": "acme"}})
	events := captureEvents(e)
	refresh := func(status int) {
		t.Helper()
		if status == http.StatusOK {
			e.mustDo(logical.UpdateOperation, "connections/github/c1/refresh", nil)
			return
		}
		e.mustFail(logical.UpdateOperation, "connections/github/c1/refresh", nil, status)
	}

	// A success without failures before records nothing.
	refresh(http.StatusOK)
	expectEvents(t, events, "c1")

	srv.Fail("temporarily_unavailable", http.StatusServiceUnavailable)
	refresh(http.StatusFailedDependency)
	got := expectEvents(t, events, "c1", eventRefreshFailed)
	d := got[0].data
	if d.RefreshFailures != 1 || d.RefreshStatus != "failing" || d.Error == nil || d.Error.Code != "temporarily_unavailable" || d.Tags["organization_id"] != "acme" {
		t.Fatalf("first failure = %+v %+v", d, d.Error)
	}
	refresh(http.StatusFailedDependency)
	if got := expectEvents(t, events, "c1", eventRefreshFailed); got[0].data.RefreshFailures != 2 {
		t.Fatalf("second failure count = %d", got[0].data.RefreshFailures)
	}
	// The third failure exhausts the retries: reauthorization_required once.
	refresh(http.StatusFailedDependency)
	got = expectEvents(t, events, "c1", eventRefreshFailed, eventReauthorizationRequired)
	if got[1].data.RefreshStatus != "exhausted" || got[1].data.RefreshFailures != 3 {
		t.Fatalf("exhausted = %+v", got[1].data)
	}
	refresh(http.StatusFailedDependency)
	expectEvents(t, events, "c1", eventRefreshFailed)

	// Recovered once, on the first success.
	srv.Fail("", 0)
	refresh(http.StatusOK)
	got = expectEvents(t, events, "c1", eventRefreshRecovered)
	if got[0].data.RefreshStatus != "ok" || got[0].data.RefreshFailures != 0 || got[0].data.Error != nil {
		t.Fatalf("recovered = %+v", got[0].data)
	}
	refresh(http.StatusOK)
	expectEvents(t, events, "c1")

	// invalid_grant: failed and reauthorization_required at once.
	srv.Fail("invalid_grant", http.StatusBadRequest)
	refresh(http.StatusFailedDependency)
	got = expectEvents(t, events, "c1", eventRefreshFailed, eventReauthorizationRequired)
	if got[1].data.RefreshStatus != "reauthorization_required" || got[1].data.Error.Code != "invalid_grant" {
		t.Fatalf("reauthorization = %+v", got[1].data)
	}
}

func TestBackgroundRefreshEvents(t *testing.T) {
	e, srv := oauthEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now
	importExpiring(e, srv, "c1", 10*time.Minute)
	events := captureEvents(e)
	srv.Fail("server_error", http.StatusInternalServerError)
	e.tick()
	expectEvents(t, events, "c1", eventRefreshFailed)
	srv.Fail("", 0)
	advance(time.Minute)
	e.tick()
	expectEvents(t, events, "c1", eventRefreshRecovered)
}

// TestClientCredentialsEvents: a client-credentials connection's events
// follow its credentials, those the engine obtains included: created with
// its first token, updated when the write brings another client (and so
// another token), none for a metadata edit.
func TestClientCredentialsEvents(t *testing.T) {
	e, srv := oauthEnv(t)
	srv.AddClient("tenant-client", "tenant-client-secret")
	events := captureEvents(e)
	e.mustDo(logical.CreateOperation, "connections/machine/m", nil)
	if got := expectEvents(t, events, "m", eventConnectionCreated); got[0].data.AuthMode != "OAUTH2_CC" || got[0].data.RefreshStatus != "ok" {
		t.Fatalf("created = %+v", got[0].data)
	}
	e.mustDo(logical.UpdateOperation, "connections/machine/m", map[string]any{"client_id": "tenant-client", "client_secret": "tenant-client-secret"})
	expectEvents(t, events, "m", eventConnectionUpdated)
	e.mustDo(logical.UpdateOperation, "connections/machine/m", map[string]any{"metadata": map[string]any{"plan": "pro"}})
	expectEvents(t, events, "m")
	// A provider that refuses the new client: nothing stored, no event.
	e.mustFail(logical.UpdateOperation, "connections/machine/m", map[string]any{"client_id": "unknown", "client_secret": "nope-nope"}, http.StatusFailedDependency)
	expectEvents(t, events, "m")
}

// TestEventErrorWithholdsASecretEchoedInOtherForms: a provider that echoes
// the refresh token upper- or lower-cased, hex- or base64url-encoded in its
// error_description does not get it into an event body.
func TestEventErrorWithholdsASecretEchoedInOtherForms(t *testing.T) {
	for name, form := range map[string]func(string) string{
		"upper-case": strings.ToUpper,
		"lower-case": strings.ToLower,
		"hex":        func(s string) string { return hex.EncodeToString([]byte(s)) },
		"base64url":  func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) },
	} {
		t.Run(name, func(t *testing.T) {
			e, srv := oauthEnv(t)
			_, refresh := importExpiring(e, srv, "c1", 10*time.Minute)
			events := captureEvents(e)
			srv.SetOverride(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "token " + form(refresh) + " unknown"})
			})
			e.mustFail(logical.UpdateOperation, "connections/github/c1/refresh", nil, http.StatusFailedDependency)
			got := events.take()
			if len(got) == 0 {
				t.Fatal("no event recorded for the failed refresh")
			}
			for _, ev := range got {
				body, _ := json.Marshal(ev.data)
				if strings.Contains(strings.ToLower(string(body)), strings.ToLower(refresh)) ||
					strings.Contains(string(body), hex.EncodeToString([]byte(refresh))) ||
					strings.Contains(string(body), base64.RawURLEncoding.EncodeToString([]byte(refresh))) {
					t.Errorf("%s event body carries the refresh token (%s): %s", ev.typ, name, body)
				}
			}
		})
	}
}
