// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

// newPendingAuthorization is the one constructor of a pending
// authorization: a connect session's request is bound to the session and
// its browser and never completed by the application, whatever config's
// oauth_completion; authorize's is completed by the application when
// config says so, with its return_url and browser_binding required.
func TestNewPendingAuthorizationForBothStarts(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := &configEntry{RedirectURL: "https://v.example.test/v1/connect/oauth/callback", StateTTL: 10 * time.Minute,
		OAuthCompletion: "application", AllowedReturnURLs: []string{"https://app.example.test/back"}}
	in := &integrationEntry{Name: "github", AuthMode: catalog.OAuth2, CreatedAt: now.Add(-time.Hour)}
	in.Scopes = []string{"repo"}

	sess := &sessionEntry{ConnectionID: "acme", Metadata: nil, Tags: map[string]string{"team": "blue"}}
	st, err := newPendingAuthorization(cfg, in, nil, sessionAuthorizationRequest(sess, "hash-of-secret", "cookie-value", map[string]any{"subdomain": "acme"}), now)
	if err != nil {
		t.Fatal(err)
	}
	if st.ApplicationCompletes || st.SessionHash != "hash-of-secret" || st.BrowserBindingHash != hashState("cookie-value") || !st.CreateOnly {
		t.Fatalf("a session's pending authorization: %+v", st)
	}
	if !st.ReplaceConnectionConfig || st.MergeConnectionConfig || !st.ReplaceMetadata || st.Metadata == nil || !st.ReplaceTags || st.Tags["team"] != "blue" {
		t.Fatalf("a new connection's session: config, metadata and tags not replaced: %+v", st)
	}
	if !st.ExpiresAt.Equal(now.Add(cfg.StateTTL)) || !st.IntegrationCreatedAt.Equal(in.CreatedAt) || st.RedirectURL != cfg.RedirectURL {
		t.Fatalf("expiry, integration or redirect: %+v", st)
	}

	reconnect := &sessionEntry{ConnectionID: "acme", Reconnect: true, Tags: map[string]string{"team": "red"}}
	existing := &connectionEntry{Integration: "github", ConnectionID: "acme"}
	st, err = newPendingAuthorization(cfg, in, existing, sessionAuthorizationRequest(reconnect, "h", "c", map[string]any{"subdomain": "x"}), now)
	if err != nil {
		t.Fatal(err)
	}
	if !st.MergeConnectionConfig || st.ReplaceConnectionConfig || st.ReplaceMetadata || st.ReplaceTags || st.CreateOnly || !st.Reauthorization {
		t.Fatalf("a reconnect merges the config and keeps metadata and tags: %+v", st)
	}

	if _, err := newPendingAuthorization(cfg, in, nil, authorizationRequest{connectionID: "acme"}, now); err == nil || !strings.Contains(err.Error(), "return_url is required") {
		t.Fatalf("authorize under application completion without return_url: %v", err)
	}
	r := authorizationRequest{connectionID: "acme", returnURL: "https://app.example.test/back/x", browserBinding: "0123456789abcdef-binding"}
	st, err = newPendingAuthorization(cfg, in, nil, r, now)
	if err != nil || !st.ApplicationCompletes || st.BrowserBindingHash != hashState(r.browserBinding) || st.SessionHash != "" || st.CreateOnly {
		t.Fatalf("authorize under application completion: %+v, %v", st, err)
	}
	r.scopes, r.scopesGiven = []string{"admin"}, true
	if _, err := newPendingAuthorization(cfg, in, nil, r, now); err == nil || !strings.Contains(err.Error(), "scope") {
		t.Fatalf("a scope beyond the integration's: %v", err)
	}
	r.scopes, r.tags, r.tagsGiven = nil, map[string]string{"team": "x"}, true
	r.scopesGiven = false
	if _, err := newPendingAuthorization(cfg, in, existing, r, now); err == nil || !strings.Contains(err.Error(), "tags can only be given") {
		t.Fatalf("tags for an existing connection: %v", err)
	}
	r.tagsGiven, r.returnURL = false, "https://elsewhere.example.test/"
	if _, err := newPendingAuthorization(cfg, in, nil, r, now); err == nil || !strings.Contains(err.Error(), "allowed_return_urls") {
		t.Fatalf("a return_url outside the allowed: %v", err)
	}
}

// authorize refuses a request with several faults by the first of its
// checks, in one order: scopes, documents, tags, the application's
// completion, return_url's form, return_url's allow-list (the handler
// only parses; the pending authorization's constructor checks, in that
// order, whoever builds the request).
func TestAuthorizeRefusesByTheFirstCheckInItsOrder(t *testing.T) {
	e, _ := authEnv(t)
	for _, tc := range []struct {
		name string
		body map[string]any
		want string
	}{
		// A scope beyond the integration's, and a return_url that is no
		// absolute URL: the scope was checked first.
		{"scope before return_url", map[string]any{"scopes": "not-a-scope", "return_url": "ftp://app.example.test/done"}, `scope "not-a-scope" is not one of`},
	} {
		resp, status := e.do(logical.UpdateOperation, "connections/github/acme/authorize", tc.body)
		if status != http.StatusBadRequest || resp == nil || !strings.Contains(resp.Error().Error(), tc.want) {
			t.Errorf("%s: %d %v, want 400 with %q", tc.name, status, resp, tc.want)
		}
	}
}

// The same with config's oauth_completion "application" (the default): a
// request without browser_binding was refused for it before its
// return_url's form was looked at.
func TestAuthorizeApplicationCompletionIsCheckedBeforeReturnURLsForm(t *testing.T) {
	e, srv := oauthEnv(t)
	srv.RegisterRedirectURI(testRedirectURL)
	e.mustDo(logical.UpdateOperation, "config", map[string]any{
		"redirect_url": testRedirectURL, "allowed_return_urls": "https://app.example.test/done",
	})
	e.mustDo(logical.UpdateOperation, "integrations/github", map[string]any{"auth_url": srv.AuthURL()})
	resp, status := e.do(logical.UpdateOperation, "connections/github/acme/authorize",
		map[string]any{"return_url": "ftp://app.example.test/done"})
	if status != http.StatusBadRequest || resp == nil || !strings.Contains(resp.Error().Error(), "browser_binding is required") {
		t.Fatalf("%d %v, want 400 with browser_binding is required", status, resp)
	}
}
