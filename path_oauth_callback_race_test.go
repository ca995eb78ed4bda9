// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// TestForcedIntegrationDeleteDuringExchange: the integration is deleted
// with force while the provider exchanges the code; the callback must not
// leave an orphan connection behind.
func TestForcedIntegrationDeleteDuringExchange(t *testing.T) {
	reliabilityCase(t, "forced integration delete during the code exchange", "no orphan connection")
	e, srv := authEnv(t)
	q := consent(t, e, "connections/github/acme/authorize", nil)
	srv.OnToken(func() {
		e.mustDo(logical.DeleteOperation, "integrations/github", map[string]any{"force": true})
	})
	status, page, _ := callback(e, q)
	srv.OnToken(nil)
	if status == http.StatusOK {
		t.Fatalf("callback stored a connection of a deleted integration: %s", page)
	}
	if c, _ := getConnection(t.Context(), e.storage, "github", "acme"); c != nil {
		t.Fatal("an orphan connection was left behind")
	}
}

// TestConnectionCreateRacingForcedIntegrationDelete: a client-credentials
// connection is being created (the provider is slow) when its integration
// is deleted with force: either the create fails or the delete removes it;
// no orphan remains.
func TestConnectionCreateRacingForcedIntegrationDelete(t *testing.T) {
	reliabilityCase(t, "forced integration delete while a client-credentials connection is created", "no orphan connection")
	e, srv := oauthEnv(t)
	deleted := make(chan struct{})
	srv.OnToken(func() {
		go func() {
			defer close(deleted)
			e.do(logical.DeleteOperation, "integrations/machine", map[string]any{"force": true})
		}()
		time.Sleep(100 * time.Millisecond) // the delete starts while the token is being issued
	})
	e.do(logical.CreateOperation, "connections/machine/m1", nil)
	<-deleted
	if in, _ := getIntegration(t.Context(), e.storage, "machine"); in != nil {
		t.Fatal("the integration was not deleted")
	}
	if c, _ := getConnection(t.Context(), e.storage, "machine", "m1"); c != nil {
		t.Fatal("an orphan connection was left behind")
	}
}

// TestDeletingAConnectionDeletesItsPendingAuthorization: an authorization
// URL issued before a connection was deleted cannot re-create it.
func TestDeletingAConnectionDeletesItsPendingAuthorization(t *testing.T) {
	e, _ := authEnv(t)
	e.mustDo(logical.CreateOperation, "connections/github/acme", map[string]any{"access_token": "a"})
	q := consent(t, e, "connections/github/acme/authorize", nil)
	e.mustDo(logical.DeleteOperation, "connections/github/acme", nil)
	if status, _, _ := callback(e, q); status != http.StatusBadRequest {
		t.Fatalf("callback after the delete: %d", status)
	}
	e.mustFail(logical.ReadOperation, "connections/github/acme", nil, http.StatusNotFound)
	if left, _ := e.storage.List(t.Context(), statePrefix); len(left) != 0 {
		t.Fatalf("%d states left", len(left))
	}
}

// TestDeletingAnIntegrationDeletesItsPendingAuthorizations: after an
// integration is deleted and re-created, an old authorization URL neither
// creates a connection nor sends its code and verifier to the new token URL.
func TestDeletingAnIntegrationDeletesItsPendingAuthorizations(t *testing.T) {
	e, srv := authEnv(t)
	q := consent(t, e, "connections/github/acme/authorize", nil)
	e.mustDo(logical.DeleteOperation, "integrations/github", nil)
	body := oauthIntegration(srv.TokenURL())
	body["client_id"], body["client_secret"], body["auth_url"] = srv.ClientID, srv.ClientSecret, srv.AuthURL()
	e.mustDo(logical.CreateOperation, "integrations/github", body)
	before := srv.Requests()
	if status, _, _ := callback(e, q); status != http.StatusBadRequest {
		t.Fatalf("callback after the integration was re-created: %d", status)
	}
	if srv.Requests() != before {
		t.Fatal("the old code was sent to the re-created integration's token URL")
	}
	e.mustFail(logical.ReadOperation, "connections/github/acme", nil, http.StatusNotFound)
}

// TestStaleStateOfRecreatedIntegrationIsRefused: the integration is
// re-created while a state survives (stored before this version deleted
// states with their integration): its creation time tells them apart.
func TestStaleStateOfRecreatedIntegrationIsRefused(t *testing.T) {
	e, srv := authEnv(t)
	q := consent(t, e, "connections/github/acme/authorize", nil)
	in, _ := getIntegration(t.Context(), e.storage, "github")
	in.CreatedAt = in.CreatedAt.Add(time.Hour) // as if deleted and created again
	putIntegration(t.Context(), e.storage, in)
	before := srv.Requests()
	if status, page, _ := callback(e, q); status != http.StatusBadRequest || !strings.Contains(page, "deleted") {
		t.Fatalf("callback: %d %s", status, page)
	}
	if srv.Requests() != before {
		t.Fatal("the code was exchanged")
	}
}

// TestReauthorizationKeepsConfigEditedMeanwhile: config patched between
// authorize and callback survives the callback.
func TestReauthorizationKeepsConfigEditedMeanwhile(t *testing.T) {
	e, _ := authEnv(t)
	e.mustDo(logical.CreateOperation, "connections/github/acme", map[string]any{"access_token": "a", "connection_config": map[string]any{"region": "us"}})
	q := consent(t, e, "connections/github/acme/authorize", nil)
	e.mustDo(logical.PatchOperation, "connections/github/acme/config", map[string]any{"region": "eu", "plan": "pro"})
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	cfg := e.mustDo(logical.ReadOperation, "connections/github/acme/config", nil)
	if cfg["region"] != "eu" || cfg["plan"] != "pro" {
		t.Fatalf("config after the callback = %v: the authorize-time snapshot was written back", cfg)
	}
	// Config given to authorize does replace it.
	q = consent(t, e, "connections/github/acme/authorize", map[string]any{"connection_config": map[string]any{"region": "ap"}})
	callback(e, q)
	if cfg := e.mustDo(logical.ReadOperation, "connections/github/acme/config", nil); cfg["region"] != "ap" || cfg["plan"] != nil {
		t.Fatalf("config given to authorize not applied: %v", cfg)
	}
}

// TestOnePendingAuthorizationPerConnection: a new authorize replaces the
// previous one, whose URL stops working.
func TestOnePendingAuthorizationPerConnection(t *testing.T) {
	e, _ := authEnv(t)
	first := consent(t, e, "connections/github/acme/authorize", nil)
	for range 5 {
		e.mustDo(logical.UpdateOperation, "connections/github/acme/authorize", nil)
	}
	second := consent(t, e, "connections/github/acme/authorize", nil)
	if left, _ := e.storage.List(t.Context(), statePrefix); len(left) != 1 {
		t.Fatalf("%d pending states for one connection", len(left))
	}
	if status, _, _ := callback(e, first); status != http.StatusBadRequest {
		t.Fatalf("a replaced authorization completed: %d", status)
	}
	if status, page, _ := callback(e, second); status != http.StatusOK {
		t.Fatalf("the newest authorization failed: %d %s", status, page)
	}
}

// TestPendingStateSizeIsCapped: what a state carries is bounded.
func TestPendingStateSizeIsCapped(t *testing.T) {
	e, _ := authEnv(t)
	big := map[string]any{"blob": strings.Repeat("x", maxDocumentBytes)}
	e.assertRejected([]rejection{
		{"metadata", "connections/github/acme/authorize", map[string]any{"metadata": big}, "limit"},
		{"connection_config", "connections/github/acme/authorize", map[string]any{"connection_config": big}, "limit"},
		{"return_url", "connections/github/acme/authorize", map[string]any{"return_url": "https://app.example.test/done/" + strings.Repeat("a", 3000)}, "longer than"},
	}, "secret-marker-never-sent")
}

// TestCallbackConfigAndNoPKCE: a provider that sends the customer's
// account id only in its redirect (QuickBooks' realmId) and rejects PKCE.
func TestCallbackConfigAndNoPKCE(t *testing.T) {
	e, srv := authEnv(t)
	srv.SetCallbackExtras(map[string][]string{"realmId": {"4620816365"}, "other": {"x"}})
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"callback_config": "realmId"})
	q := consent(t, e, "connections/github/acme/authorize", nil)
	if q.Get("realmId") == "" {
		t.Fatal("the provider sent no realmId")
	}
	if status, page, _ := callback(e, q); status != http.StatusOK {
		t.Fatalf("callback: %d %s", status, page)
	}
	cfg := e.mustDo(logical.ReadOperation, "connections/github/acme/config", nil)
	if cfg["realmId"] != "4620816365" || cfg["other"] != nil {
		t.Fatalf("config = %v", cfg)
	}
	// pkce=false on a provider is inherited by its integrations.
	e.mustDo(logical.CreateOperation, "providers/nopkce", map[string]any{"auth_mode": "OAUTH2", "auth_url": srv.AuthURL(), "token_url": srv.TokenURL(), "pkce": false})
	e.mustDo(logical.CreateOperation, "integrations/np", map[string]any{"provider": "nopkce", "client_id": srv.ClientID})
	u := e.mustDo(logical.UpdateOperation, "connections/np/acme/authorize", nil)["authorization_url"].(string)
	if strings.Contains(u, "code_challenge") || e.mustDo(logical.ReadOperation, "integrations/np", nil)["pkce"] != false {
		t.Fatalf("authorization URL %s uses PKCE", u)
	}
	e.mustFail(logical.UpdateOperation, "integrations/np", map[string]any{"callback_config": "state"}, http.StatusBadRequest)
	e.mustFail(logical.UpdateOperation, "integrations/np", map[string]any{"token_request_format": "xml"}, http.StatusBadRequest)
}

// TestSessionConnectsOnceWhenFormPostedDuringCallback: a connect session
// offering two integrations has an OAuth authorization in flight when its
// page posts an API key for the other one. The session connects once:
// whichever comes first is stored, the other is refused.
func TestSessionConnectsOnceWhenFormPostedDuringCallback(t *testing.T) {
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"public_url": "https://vault.example.test/v1/connect"})
	e.mustDo(logical.CreateOperation, "integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	secret, id := newSession(e, map[string]any{"connection_id": "org:9", "integrations": "github,stripe"})
	apiForm := formOf(e, secret, "stripe", map[string]any{"cred.api_key": "sk_test_abcdef"})
	_, body := uiPost(e, formOf(e, secret, "github", nil))
	q := followConsent(t, continueURL(e, body))
	postStatus := 0
	posted := make(chan struct{})
	srv.OnToken(func() {
		go func() {
			defer close(posted)
			resp, err := e.b.HandleRequest(context.WithoutCancel(t.Context()), &logical.Request{
				Operation: logical.UpdateOperation, Path: connectUIPath, Data: apiForm, Storage: e.storage, Unauthenticated: true,
				Headers: map[string][]string{"Origin": {"https://vault.example.test"}},
			})
			if err == nil {
				postStatus, _ = resp.Data[logical.HTTPStatusCode].(int)
			}
		}()
		// Give the post the time to finish while the provider answers,
		// unless it waits on the callback.
		select {
		case <-posted:
		case <-time.After(300 * time.Millisecond):
		}
	})
	status, _, _ := callback(e, q)
	srv.OnToken(nil)
	<-posted
	_, ghStatus := e.do(logical.ReadOperation, "connections/github/org:9", nil)
	_, stStatus := e.do(logical.ReadOperation, "connections/stripe/org:9", nil)
	sess := e.mustDo(logical.ReadOperation, "sessions/"+id, nil)
	if ghStatus == http.StatusOK && stStatus == http.StatusOK {
		t.Fatalf("one session connected two integrations: page post %d, callback %d, session records only %v", postStatus, status, sess["connected_integration"])
	}
	if (ghStatus == http.StatusOK) == (stStatus == http.StatusOK) {
		t.Fatalf("neither integration connected: page post %d, callback %d", postStatus, status)
	}
	if ghStatus == http.StatusOK && (status != http.StatusOK || postStatus != http.StatusConflict || sess["connected_integration"] != "github") {
		t.Fatalf("github connected: callback %d, page post %d (want 409), session records %v", status, postStatus, sess["connected_integration"])
	}
}

// TestIntegrationRecreatedDuringExchange: the integration is force-deleted
// and created again under the same name while the callback exchanges the
// code. The old provider's tokens are not stored in the new integration:
// the callback refuses, revokes them at the provider that issued them, and
// stores nothing.
func TestIntegrationRecreatedDuringExchange(t *testing.T) {
	reliabilityCase(t, "integration force-deleted and re-created during the code exchange",
		"the callback refuses, revokes the issued tokens and stores nothing")
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": srv.RevocationURL()})
	q := consent(t, e, "connections/github/acme/authorize", nil)
	body := oauthIntegration(srv.TokenURL())
	body["client_id"], body["client_secret"], body["auth_url"] = srv.ClientID, srv.ClientSecret, srv.AuthURL()
	srv.OnToken(func() {
		e.mustDo(logical.DeleteOperation, "integrations/github", map[string]any{"force": true})
		time.Sleep(2 * time.Millisecond) // a CreatedAt of its own
		e.mustDo(logical.CreateOperation, "integrations/github", body)
	})
	status, page, _ := callback(e, q)
	srv.OnToken(nil)
	if status == http.StatusOK {
		t.Fatalf("the callback stored the old integration's tokens in the new one: %s", page)
	}
	if c, _ := getConnection(t.Context(), e.storage, "github", "acme"); c != nil {
		t.Fatal("a connection was stored in the re-created integration")
	}
	if len(srv.Revoked()) == 0 {
		t.Fatal("the issued tokens were not revoked")
	}
}

// TestConnectionDeletedDuringReauthorizationExchange: a connection being
// re-authorized is deleted while the callback exchanges the code; the
// tokens the provider issued for it are revoked, nothing is stored.
func TestConnectionDeletedDuringReauthorizationExchange(t *testing.T) {
	e, srv := authEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"revocation_url": srv.RevocationURL()})
	e.mustDo(logical.CreateOperation, "connections/github/acme", map[string]any{"access_token": "a", "refresh_token": srv.IssueRefreshToken()})
	q := consent(t, e, "connections/github/acme/authorize", nil)
	srv.OnToken(func() {
		e.mustDo(logical.DeleteOperation, "connections/github/acme", map[string]any{"revoke": false})
	})
	status, page, _ := callback(e, q)
	srv.OnToken(nil)
	if status == http.StatusOK {
		t.Fatalf("the callback stored a deleted connection: %s", page)
	}
	if c, _ := getConnection(t.Context(), e.storage, "github", "acme"); c != nil {
		t.Fatal("the deleted connection was stored again")
	}
	if len(srv.Revoked()) == 0 {
		t.Fatal("the tokens issued for the deleted connection were not revoked")
	}
}
