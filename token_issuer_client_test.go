// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// ownClientEnv is oauthEnv with a revocation endpoint on "machine" (the
// OAUTH2_CC integration, whose own client is the server's default) and a
// second client registered at the server: the one a customer created in
// the provider's console for itself.
func ownClientEnv(t *testing.T) (e *testEnv, srv *oauthtest.Server, id, secret string) {
	t.Helper()
	e, srv = oauthEnv(t)
	e.mustDo(logical.UpdateOperation, "integrations/machine", map[string]any{"revocation_url": srv.RevocationURL()})
	id, secret = "acme-client", "acme-secret-Zq7Xw9"
	srv.AddClient(id, secret)
	return e, srv, id, secret
}

// assertHidesSecret fails if a response shows the connection's client
// secret anywhere, or lacks client_id and client_secret_set.
func assertHidesSecret(t *testing.T, what string, data map[string]any, id, secret string) {
	t.Helper()
	if _, shown := data["client_secret"]; shown || strings.Contains(fmt.Sprint(data), secret) {
		t.Fatalf("%s shows the client secret: %v", what, data)
	}
	if data["client_id"] != id || data["client_secret_set"] != (id != "") {
		t.Fatalf("%s: client_id %v, client_secret_set %v; want %q, %v", what, data["client_id"], data["client_secret_set"], id, id != "")
	}
}

// TestClientCredentialsWithConnectionsOwnClient: an OAUTH2_CC connection
// with its own client_id and client_secret gets its token, its re-issues
// (on read, forced, in the background) and its revocation with that pair;
// a connection without one uses the integration's. No read, raw read,
// write answer or log line shows the connection's secret.
func TestClientCredentialsWithConnectionsOwnClient(t *testing.T) {
	e, srv, id, secret := ownClientEnv(t)
	now, advance := fixedClock(time.Now())
	e.b.now = now

	written := e.mustDo(logical.CreateOperation, "connections/machine/acme", map[string]any{"client_id": id, "client_secret": secret})
	if srv.LastClientID() != id || srv.IssuedTo(written["access_token"].(string)) != id {
		t.Fatalf("token asked by client %q, issued to %q; want %q", srv.LastClientID(), srv.IssuedTo(written["access_token"].(string)), id)
	}
	assertHidesSecret(t, "write answer", written, id, secret)

	shared := e.mustDo(logical.CreateOperation, "connections/machine/shared", nil)
	if srv.IssuedTo(shared["access_token"].(string)) != srv.ClientID {
		t.Fatalf("a connection without its own client got a token of client %q", srv.IssuedTo(shared["access_token"].(string)))
	}
	assertHidesSecret(t, "read without an own client", e.mustDo(logical.ReadOperation, "connections/machine/shared", nil), "", secret)

	assertHidesSecret(t, "read", e.mustDo(logical.ReadOperation, "connections/machine/acme", nil), id, secret)
	assertHidesSecret(t, "raw read", e.mustDo(logical.ReadOperation, "connections/machine/acme/raw", nil), id, secret)

	// Every re-issue of the client-credentials token uses the pair.
	forced := e.mustDo(logical.UpdateOperation, "connections/machine/acme/refresh", nil)
	if srv.IssuedTo(forced["access_token"].(string)) != id {
		t.Fatalf("forced refresh: token of client %q", srv.IssuedTo(forced["access_token"].(string)))
	}
	assertHidesSecret(t, "refresh answer", forced, id, secret)
	advance(50 * time.Minute) // inside the refresh margin of the hour-long token
	onRead := e.mustDo(logical.ReadOperation, "connections/machine/acme", nil)
	if onRead["access_token"] == forced["access_token"] || srv.IssuedTo(onRead["access_token"].(string)) != id {
		t.Fatalf("refresh on read: token of client %q", srv.IssuedTo(onRead["access_token"].(string)))
	}
	advance(2 * time.Hour)
	e.tick()
	stored, err := getConnection(t.Context(), e.storage, "machine", "acme")
	if err != nil || stored.Credentials.AccessToken == onRead["access_token"] || srv.IssuedTo(stored.Credentials.AccessToken) != id {
		t.Fatalf("background refresh: token of client %q (%v)", srv.IssuedTo(stored.Credentials.AccessToken), err)
	}

	// Revocation presents the pair the token was issued to; the server
	// refuses any other client.
	resp, status := e.do(logical.DeleteOperation, "connections/machine/acme", nil)
	if status >= 300 || (resp != nil && len(resp.Warnings) > 0) {
		t.Fatalf("delete: %d %v", status, resp)
	}
	if srv.LastClientID() != id || !strings.Contains(strings.Join(srv.Revoked(), " "), stored.Credentials.AccessToken) {
		t.Fatalf("revoked %v as client %q", srv.Revoked(), srv.LastClientID())
	}
	e.assertNoSecretLogged(secret, srv.ClientSecret)
}

// TestClientCredentialsConnectionClientChangeReissuesToken: a write that
// changes a connection's client (a rotated secret, another client, none so
// that the integration's applies) gets the token from the new client in
// the same request; a pair the provider refuses is a 424 that changes
// nothing and shows no secret, even one the provider echoes; half a pair
// is a 400 naming the missing field.
func TestClientCredentialsConnectionClientChangeReissuesToken(t *testing.T) {
	e, srv, id, secret := ownClientEnv(t)
	tok := e.mustDo(logical.CreateOperation, "connections/machine/acme", map[string]any{"client_id": id, "client_secret": secret})["access_token"]

	rotated := secret + "-rotated"
	srv.AddClient(id, rotated)
	other, otherSecret := "acme-second-client", "acme-second-secret-Vb3"
	srv.AddClient(other, otherSecret)
	for _, w := range []struct {
		name, wantClient string
		op               logical.Operation
		path             string
		body             map[string]any
	}{
		{"rotated secret", id, logical.UpdateOperation, "connections/machine/acme", map[string]any{"client_secret": rotated}},
		{"another client", other, logical.UpdateOperation, "connections/machine/acme", map[string]any{"client_id": other, "client_secret": otherSecret}},
		{"back to the integration's", srv.ClientID, logical.UpdateOperation, "connections/machine/acme", map[string]any{"client_id": "", "client_secret": ""}},
		{"import", id, logical.UpdateOperation, "import/machine", map[string]any{"overwrite": true, "connections": []any{
			map[string]any{"connection_id": "acme", "client_id": id, "client_secret": rotated}}}},
	} {
		answer := e.mustDo(w.op, w.path, w.body)
		read := e.mustDo(logical.ReadOperation, "connections/machine/acme", nil)
		if read["access_token"] == tok || srv.IssuedTo(read["access_token"].(string)) != w.wantClient {
			t.Fatalf("%s: the connection serves a token of client %q, want a new one of %q", w.name, srv.IssuedTo(read["access_token"].(string)), w.wantClient)
		}
		if strings.Contains(fmt.Sprint(answer), rotated) || strings.Contains(fmt.Sprint(answer), otherSecret) {
			t.Fatalf("%s: the answer shows a client secret: %v", w.name, answer)
		}
		tok = read["access_token"]
	}

	// A metadata edit keeps the token and asks the provider nothing.
	requests := srv.Requests()
	e.mustDo(logical.UpdateOperation, "connections/machine/acme", map[string]any{"metadata": map[string]any{"plan": "pro"}})
	if read := e.mustDo(logical.ReadOperation, "connections/machine/acme", nil); read["access_token"] != tok || srv.Requests() != requests {
		t.Fatal("a write that keeps the client replaced the token")
	}

	// A wrong secret, which the provider echoes in its refusal.
	before := e.snapshot()
	wrong := "wrong-secret-Kp4Lm8"
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		basic := r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":"bad client %s %s %s"}`,
			r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), basic)
	})
	msg := e.mustFail(logical.UpdateOperation, "connections/machine/acme", map[string]any{"client_secret": wrong}, http.StatusFailedDependency)
	basic := base64.StdEncoding.EncodeToString([]byte(id + ":" + wrong))
	if !strings.Contains(msg, "invalid_client") || strings.Contains(msg, wrong) || strings.Contains(msg, basic) {
		t.Fatalf("error = %q", msg)
	}
	e.assertUnchanged(before)
	msg = e.mustFail(logical.CreateOperation, "connections/machine/globex", map[string]any{"client_id": id, "client_secret": wrong}, http.StatusFailedDependency)
	if strings.Contains(msg, wrong) || strings.Contains(msg, basic) {
		t.Fatalf("error = %q", msg)
	}
	e.assertUnchanged(before)
	srv.SetOverride(nil)
	if read := e.mustDo(logical.ReadOperation, "connections/machine/acme", nil); read["access_token"] != tok {
		t.Fatal("a refused client change replaced the token")
	}

	// Half a pair: a client id is never sent with another client's secret.
	msg = e.mustFail(logical.CreateOperation, "connections/machine/initech", map[string]any{"client_id": other}, http.StatusBadRequest)
	if !strings.Contains(msg, "client_secret") {
		t.Fatalf("error = %q", msg)
	}
	msg = e.mustFail(logical.UpdateOperation, "connections/machine/acme", map[string]any{"client_id": ""}, http.StatusBadRequest)
	if !strings.Contains(msg, "client_id") {
		t.Fatalf("error = %q", msg)
	}
	e.assertUnchanged(before)
	e.assertNoSecretLogged(secret, rotated, otherSecret, wrong, basic)
}

// TestConnectionClientFieldsBelongToClientCredentials: only OAUTH2_CC
// connections take a client of their own, and credentials_schema describes
// only client_id and client_secret for them.
func TestConnectionClientFieldsBelongToClientCredentials(t *testing.T) {
	e, _ := oauthEnv(t)
	msg := e.mustFail(logical.CreateOperation, "connections/github/acme", map[string]any{"access_token": "at", "client_id": "x", "client_secret": "secret-Qw8"}, http.StatusBadRequest)
	if !strings.Contains(msg, "client_id, client_secret do not apply") || strings.Contains(msg, "secret-Qw8") {
		t.Fatalf("error = %q", msg)
	}
	msg = e.mustFail(logical.UpdateOperation, "integrations/machine", map[string]any{"credentials_schema": map[string]any{"apiKey": map[string]any{}}}, http.StatusBadRequest)
	if !strings.Contains(msg, "credentials_schema.apiKey") || !strings.Contains(msg, "client_id, client_secret") {
		t.Fatalf("error = %q", msg)
	}
}

// TestClientCredentialsProviderDescribesConnectionClient: a provider whose
// customers each bring their own client describes the pair in its
// credentials_schema; an integration of it needs no client of its own, and
// each connection is checked against the schema before any request.
func TestClientCredentialsProviderDescribesConnectionClient(t *testing.T) {
	e, srv, id, secret := ownClientEnv(t)
	e.mustDo(logical.CreateOperation, "providers/per-customer", map[string]any{
		"auth_mode": "OAUTH2_CC", "token_url": srv.TokenURL(), "revocation_url": srv.RevocationURL(),
		"credentials_schema": map[string]any{
			"client_id":     map[string]any{"title": "Client ID", "pattern": "[a-z-]+"},
			"client_secret": map[string]any{"title": "Client Secret", "secret": true},
		},
	})
	e.mustDo(logical.CreateOperation, "integrations/percust", map[string]any{"provider": "per-customer"})
	if read := e.mustDo(logical.ReadOperation, "integrations/percust", nil); read["client_secret_set"] != false {
		t.Fatalf("integration read: %v", read)
	}

	before := e.snapshot()
	requests := srv.Requests()
	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{nil, "credentials.client_id is required"},
		{map[string]any{"client_id": "ACME_1", "client_secret": secret}, "credentials.client_id is not in the form this field takes"},
	} {
		msg := e.mustFail(logical.CreateOperation, "connections/percust/acme", tc.body, http.StatusBadRequest)
		if !strings.Contains(msg, tc.want) || strings.Contains(msg, secret) {
			t.Fatalf("error = %q, want %q", msg, tc.want)
		}
	}
	e.assertUnchanged(before)
	if srv.Requests() != requests {
		t.Fatal("a connection refused by the schema reached the provider")
	}

	tok := e.mustDo(logical.CreateOperation, "connections/percust/acme", map[string]any{"client_id": id, "client_secret": secret})["access_token"].(string)
	if srv.IssuedTo(tok) != id {
		t.Fatalf("token of client %q", srv.IssuedTo(tok))
	}

	// Without a schema that requires each connection's own client, an
	// OAUTH2_CC integration must have one for its connections to use.
	msg := e.mustFail(logical.CreateOperation, "integrations/nopair", map[string]any{"auth_mode": "OAUTH2_CC", "token_url": srv.TokenURL()}, http.StatusBadRequest)
	if !strings.Contains(msg, "client_id is required") {
		t.Fatalf("error = %q", msg)
	}
}

// TestIssuedTokensRollbackKeepsANewerConnectionClient: a token issued to a
// connection's client is left unsaved (storage refused it, the WAL kept
// it), the plugin restarts, and the operator gives the connection another
// client; the rollback of the stale record must not bring back the old
// client and its token.
func TestIssuedTokensRollbackKeepsANewerConnectionClient(t *testing.T) {
	e, srv, id, secret := ownClientEnv(t)
	flaky := &flakyStorage{Storage: e.storage, failPrefix: connectionPrefix}
	e.storage = flaky
	e.mustDo(logical.CreateOperation, "connections/machine/acme", map[string]any{"client_id": id, "client_secret": secret})
	flaky.failPuts.Store(1000)
	e.mustDo(logical.UpdateOperation, "connections/machine/acme/refresh", nil)
	flaky.failPuts.Store(0)

	conf := logical.TestBackendConfig()
	conf.StorageView = flaky
	conf.Logger = hclog.NewNullLogger()
	raw, err := Factory(t.Context(), conf)
	if err != nil {
		t.Fatal(err)
	}
	restarted := &testEnv{t: t, b: raw.(*backend), storage: flaky, logs: e.logs}
	other, otherSecret := "acme-second-client", "acme-second-secret-Vb3"
	srv.AddClient(other, otherSecret)
	tok := restarted.mustDo(logical.UpdateOperation, "connections/machine/acme", map[string]any{"client_id": other, "client_secret": otherSecret})["access_token"]

	resp, err := restarted.b.HandleRequest(t.Context(), &logical.Request{
		Operation: logical.RollbackOperation, Storage: flaky, Data: map[string]any{"immediate": true}})
	if err != nil || (resp != nil && resp.IsError()) {
		t.Fatalf("rollback: %v %v", resp, err)
	}
	stored, _ := getConnection(t.Context(), flaky, "machine", "acme")
	if stored.Credentials.ClientID != other || stored.Credentials.ClientSecret != otherSecret || stored.Credentials.AccessToken != tok {
		t.Fatalf("after the rollback the connection has client %q and a token of client %q", stored.Credentials.ClientID, srv.IssuedTo(stored.Credentials.AccessToken))
	}
}

// TestImportTakesConnectionClient: import creates OAUTH2_CC connections
// with their own client as a single write does, each item on its own: one
// whose pair the provider refuses, or with half a pair, fails alone and
// its answer shows no secret.
func TestImportTakesConnectionClient(t *testing.T) {
	e, srv, id, secret := ownClientEnv(t)
	wrong := "wrong-secret-Kp4Lm8"
	answer := e.mustDo(logical.UpdateOperation, "import/machine", map[string]any{"connections": []any{
		map[string]any{"connection_id": "acme", "client_id": id, "client_secret": secret},
		map[string]any{"connection_id": "globex", "client_id": id, "client_secret": wrong},
		map[string]any{"connection_id": "initech", "client_id": id},
		map[string]any{"connection_id": "shared"},
	}})
	if answer["created"] != 2 || answer["failed"] != 2 || strings.Contains(fmt.Sprint(answer), secret) || strings.Contains(fmt.Sprint(answer), wrong) {
		t.Fatalf("import answer: %v", answer)
	}
	results := answer["results"].([]any)
	if msg := fmt.Sprint(results[2]); !strings.Contains(msg, "client_secret is required") {
		t.Fatalf("half a pair: %v", msg)
	}
	for conn, client := range map[string]string{"acme": id, "shared": srv.ClientID} {
		read := e.mustDo(logical.ReadOperation, "connections/machine/"+conn, nil)
		if srv.IssuedTo(read["access_token"].(string)) != client {
			t.Fatalf("%s: token of client %q, want %q", conn, srv.IssuedTo(read["access_token"].(string)), client)
		}
	}
	e.mustFail(logical.ReadOperation, "connections/machine/globex", nil, http.StatusNotFound)
	e.assertNoSecretLogged(secret, wrong)
}

// A write that changes a connection's client drops the token issued to the
// old client even when the connection's config no longer resolves (an
// operator's change since): the write fails or gets a token from the new
// client, never keeps the old client's token under the new one.
func TestClientChangeNeverKeepsTheOldClientsToken(t *testing.T) {
	e, srv, id, secret := ownClientEnv(t)
	first := e.mustDo(logical.CreateOperation, "connections/machine/acme", map[string]any{"client_id": id, "client_secret": secret})["access_token"].(string)
	e.mustDo(logical.UpdateOperation, "integrations/machine", map[string]any{"token_params": map[string]any{"audience": "${connectionConfig.audience}"},
		"connection_config_schema": map[string]any{"audience": map[string]any{"pattern": `https://\S+`}}})
	other, otherSecret := "acme-new-client", "acme-new-secret-Kp2"
	srv.AddClient(other, otherSecret)
	_, status := e.do(logical.UpdateOperation, "connections/machine/acme", map[string]any{"client_id": other, "client_secret": otherSecret})
	stored, _ := getConnection(t.Context(), e.storage, "machine", "acme")
	if status < 300 && stored.Credentials.ClientID == other && stored.Credentials.AccessToken == first {
		t.Fatalf("the client changed to %q but the token issued to %q is kept", other, srv.IssuedTo(first))
	}
}
