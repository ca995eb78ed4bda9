// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

func TestSameClientComparesIDAndSecret(t *testing.T) {
	withClient := func(id, secret string) *connectionEntry {
		return &connectionEntry{AuthMode: catalog.OAuth2CC, Credentials: credentials{ClientID: id, ClientSecret: secret}}
	}
	for _, tc := range []struct {
		a, b *connectionEntry
		same bool
	}{
		{withClient("", ""), withClient("", ""), true},
		{withClient("id", "s"), withClient("id", "s"), true},
		{withClient("id", "s"), withClient("id", "other"), false},
		{withClient("id", "s"), withClient("other", "s"), false},
		{withClient("id", "s"), withClient("", ""), false},
	} {
		if got := sameClient(tc.a, tc.b); got != tc.same {
			t.Errorf("sameClient(%+v, %+v) = %v", tc.a.Credentials, tc.b.Credentials, got)
		}
	}
}

func TestHasOwnClientOnlyForClientCredentialsWithAnID(t *testing.T) {
	var none *connectionEntry
	if none.hasOwnClient() {
		t.Error("nil entry has its own client")
	}
	if (&connectionEntry{AuthMode: catalog.OAuth2, Credentials: credentials{ClientID: "id"}}).hasOwnClient() {
		t.Error("an OAUTH2 connection has its own client")
	}
	if (&connectionEntry{AuthMode: catalog.OAuth2CC}).hasOwnClient() {
		t.Error("an OAUTH2_CC connection without client_id has its own client")
	}
	if !(&connectionEntry{AuthMode: catalog.OAuth2CC, Credentials: credentials{ClientID: "id"}}).hasOwnClient() {
		t.Error("an OAUTH2_CC connection with client_id has no client of its own")
	}
}

// A clone's maps and slices are its own: the cache holds the original.
func TestCloneSharesNoMapOrSlice(t *testing.T) {
	c := &connectionEntry{
		Credentials:      credentials{Scopes: []string{"repo"}, Custom: map[string]string{"k": "v"}},
		RawTokenResponse: map[string]any{"scope": "repo"},
		Metadata:         map[string]any{"team": "a"},
		ConnectionConfig: map[string]any{"subdomain": "acme"},
	}
	cp := c.clone()
	cp.Credentials.Scopes[0] = "admin"
	cp.Credentials.Custom["k"] = "changed"
	cp.RawTokenResponse["scope"] = "admin"
	cp.Metadata["team"] = "b"
	cp.ConnectionConfig["subdomain"] = "evil"
	if c.Credentials.Scopes[0] != "repo" || c.Credentials.Custom["k"] != "v" || c.RawTokenResponse["scope"] != "repo" ||
		c.Metadata["team"] != "a" || c.ConnectionConfig["subdomain"] != "acme" {
		t.Fatalf("changing the clone changed the original: %+v", c)
	}
}

func TestSameJSON(t *testing.T) {
	if !sameJSON(map[string]any{"a": 1, "b": []string{"x"}}, map[string]any{"b": []string{"x"}, "a": 1}) {
		t.Error("equal values differ")
	}
	if sameJSON(map[string]any{"a": 1}, map[string]any{"a": "1"}) {
		t.Error("a number and a string are the same")
	}
	if sameJSON(func() {}, func() {}) {
		t.Error("values that do not encode are the same")
	}
}

func TestFormatTime(t *testing.T) {
	if got := formatTime(time.Time{}); got != "" {
		t.Errorf("zero time = %q, want empty", got)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))
	if got := formatTime(at); got != "2026-03-04T04:06:07Z" {
		t.Errorf("formatTime = %q, want UTC RFC 3339", got)
	}
}

func TestNonNilGivesEmptyValues(t *testing.T) {
	if s := nonNilStrings(nil); s == nil || len(s) != 0 {
		t.Errorf("nonNilStrings(nil) = %#v", s)
	}
	if m := nonNilMap(nil); m == nil || len(m) != 0 {
		t.Errorf("nonNilMap(nil) = %#v", m)
	}
	if m := nonNilObject(nil); m == nil || len(m) != 0 {
		t.Errorf("nonNilObject(nil) = %#v", m)
	}
	if m := nonNilObject(map[string]any{"a": 1}); m["a"] != 1 {
		t.Errorf("nonNilObject changed a value: %#v", m)
	}
}

// storedKinds are the entries the plugin stores under a prefix (or one
// key), each with the type it is read into. Connections and WAL records are
// read by their own functions (readConnectionEntry, decodeWAL).
var storedKinds = []struct {
	prefix string
	entry  func() any
}{
	{configStoragePath, func() any { return &configEntry{} }},
	{integrationPrefix, func() any { return &integrationEntry{} }},
	{providerPrefix, func() any { return &storedProvider{} }},
	{statePrefix, func() any { return &pendingAuthorization{} }},
	{stateIndexPrefix, func() any { return &stateIndexEntry{} }},
	{sessionPrefix, func() any { return &sessionEntry{} }},
	{sessionIDPrefix, func() any { return &sessionIDEntry{} }},
	{webhookPrefix, func() any { return &webhookEntry{} }},
	{webhookStatsPrefix, func() any { return &webhookStats{} }},
	{outboxBatchPrefix, func() any { return &outboxBatch{} }},
	{outboxPendingPrefix, func() any { return &outboxEntry{} }},
	{outboxDeadPrefix, func() any { return &outboxEntry{} }},
}

// unformattedPrefixes hold markers whose value is empty ({}): their key is
// all they say.
var unformattedPrefixes = []string{stateExpiryPrefix, stateExpiryIndexedKey, sessionExpiryPrefix, scheduleMarkPrefix, scheduleMarksCompleteKey}

// everyStoredKind writes an entry of every kind the plugin stores through
// its paths (a WAL record directly), and returns the backend.
func everyStoredKind(t *testing.T) *testEnv {
	t.Helper()
	e := newEventsEnv(t, &logical.InmemStorage{}, retryHourly)
	srv := oauthtest.New()
	t.Cleanup(srv.Close)
	rcv := newHookReceiver(t, always(http.StatusServiceUnavailable))
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"redirect_url": testRedirectURL,
		"public_url": "https://vault.example.test/v1/connect/", "allowed_return_urls": "https://app.example.test/done"})
	body := oauthIntegration(srv.TokenURL())
	body["client_id"], body["client_secret"] = srv.ClientID, srv.ClientSecret
	e.mustDo(logical.CreateOperation, "integrations/github", body)
	e.mustDo(logical.CreateOperation, "providers/acme-api", map[string]any{"auth_mode": "API_KEY", "api_base_url": "https://api.acme.test"})
	e.mustDo(logical.CreateOperation, "webhooks/app", map[string]any{"url": rcv.URL})
	e.mustDo(logical.CreateOperation, "connections/github/acme", map[string]any{
		"access_token": "at-1", "refresh_token": srv.IssueRefreshToken(), "expires_in": 3600, "tags": map[string]any{"org": "1"}})
	e.mustDo(logical.UpdateOperation, "connections/github/acme/authorize", map[string]any{
		"return_url": "https://app.example.test/done", "browser_binding": testBinding})
	e.mustDo(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "org:1"})
	waitFor(t, "a failed delivery's figures", func() bool {
		entry, _ := e.storage.Get(t.Context(), webhookStatsPrefix+"app")
		return entry != nil
	})
	c, err := getConnection(t.Context(), e.storage, "github", "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := putIssuedTokensWAL(t.Context(), e.storage, c, false, nil); err != nil {
		t.Fatal(err)
	}
	// A batch of events as the outbox stores one (the receiver's events
	// above have left theirs for entries of their own): written through
	// the outbox, never scheduled, so that it stays.
	hooks, err := e.b.outbox.receivers.all(t.Context(), e.storage)
	if err != nil {
		t.Fatal(err)
	}
	ev := &batchedEvent{ID: "evt_0000000000000001aa", Type: eventConnectionCreated, Body: `{"type":"connection.created"}`,
		Timestamp: time.Now(), Receivers: []batchedReceiver{{Name: "app", ID: hooks["app"].ID}}}
	if _, err := e.b.outbox.writeBatch(t.Context(), e.storage, []*batchedEvent{ev}); err != nil {
		t.Fatal(err)
	}
	return e
}

// readStored reads the stored entry at key as the plugin does, by its kind.
func readStored(t *testing.T, s logical.Storage, key string) error {
	t.Helper()
	ctx := t.Context()
	switch {
	case strings.HasPrefix(key, connectionPrefix):
		_, _, err := readConnectionEntry(ctx, s, key)
		return err
	case strings.HasPrefix(key, "wal/"):
		entry, err := framework.GetWAL(ctx, s, strings.TrimPrefix(key, "wal/"))
		if err != nil {
			return err
		}
		var rec issuedTokensWAL
		return decodeWAL(entry.Data, &rec)
	}
	for _, kind := range storedKinds {
		if key == kind.prefix || strings.HasPrefix(key, kind.prefix) && strings.HasSuffix(kind.prefix, "/") {
			_, err := getJSON(ctx, s, key, kind.entry())
			return err
		}
	}
	t.Fatalf("stored key %q is of no kind storedKinds knows: add its type there, with entryFormat embedded", key)
	return nil
}

// setStoredFormat rewrites the entry at key with format_version set to
// format (0 removes it, as 0.1.0 stored entries), in the record of a WAL
// entry and in its connection entry too.
func setStoredFormat(t *testing.T, s logical.Storage, key string, format int) {
	t.Helper()
	entry, err := s.Get(t.Context(), key)
	if err != nil || entry == nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(entry.Value, &doc); err != nil {
		t.Fatal(err)
	}
	set := func(m map[string]any) {
		if format == 0 {
			delete(m, "format_version")
		} else {
			m["format_version"] = format
		}
	}
	if data, ok := doc["data"].(map[string]any); ok && strings.HasPrefix(key, "wal/") {
		set(data)
		set(data["entry"].(map[string]any))
	} else {
		set(doc)
	}
	b, _ := json.Marshal(doc)
	if err := s.Put(t.Context(), &logical.StorageEntry{Key: key, Value: b}); err != nil {
		t.Fatal(err)
	}
}

// TestEveryStoredEntryCarriesItsFormat: every entry the plugin stores (but
// the empty markers) says it is of this build's storage format, a WAL
// record and the connection entry inside it too.
func TestEveryStoredEntryCarriesItsFormat(t *testing.T) {
	e := everyStoredKind(t)
	kinds := map[string]bool{}
	for key, value := range e.snapshot() {
		if slices.ContainsFunc(unformattedPrefixes, func(p string) bool { return strings.HasPrefix(key, p) }) {
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(value), &doc); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if strings.HasPrefix(key, "wal/") {
			doc = doc["data"].(map[string]any)
			if f := doc["entry"].(map[string]any)["format_version"]; f != float64(storageFormat) {
				t.Errorf("%s: the WAL record's connection entry has format_version %v, want %d", key, f, storageFormat)
			}
		}
		if f := doc["format_version"]; f != float64(storageFormat) {
			t.Errorf("%s: format_version %v, want %d", key, f, storageFormat)
		}
		kinds[strings.SplitN(key, "/", 2)[0]] = true
		if strings.HasPrefix(key, outboxBatchPrefix) {
			kinds[outboxBatchPrefix] = true
		}
		if err := readStored(t, e.storage, key); err != nil {
			t.Errorf("%s: reading it back: %v", key, err)
		}
	}
	// Each kind was written, so that the checks above saw it.
	for _, want := range []string{"config", "integrations", "providers", "oauth_states", "oauth_state_index", "connect_sessions",
		"connect_session_ids", "webhooks", "webhook_stats", "events", outboxBatchPrefix, "connections", "wal"} {
		if !kinds[want] {
			t.Errorf("no %s entry was stored", want)
		}
	}
}

// TestEntryOfNewerFormatIsRefused: an entry a newer version wrote (a
// format above this build's) is refused with an error that says so, for
// every kind of entry, even when its shape no longer decodes; the API
// answers with that error and leaves it as stored. Entries of 0.1.0
// (without a format) read as before.
func TestEntryOfNewerFormatIsRefused(t *testing.T) {
	e := everyStoredKind(t)
	for key := range e.snapshot() {
		if slices.ContainsFunc(unformattedPrefixes, func(p string) bool { return strings.HasPrefix(key, p) }) {
			continue
		}
		setStoredFormat(t, e.storage, key, storageFormat+1)
		if err := readStored(t, e.storage, key); !errors.Is(err, errNewerFormat) || !strings.Contains(err.Error(), "storage format 2") {
			t.Errorf("%s of format %d: read error %v, want the newer-format refusal", key, storageFormat+1, err)
		}
		setStoredFormat(t, e.storage, key, 0)
		if err := readStored(t, e.storage, key); err != nil {
			t.Errorf("%s without a format (0.1.0): %v", key, err)
		}
		setStoredFormat(t, e.storage, key, storageFormat)
	}

	// A newer format whose shape this build cannot decode.
	e.storage.Put(t.Context(), &logical.StorageEntry{Key: integrationKey("github"),
		Value: []byte(`{"format_version": 2, "name": "github", "auth_mode": {"mode": "OAUTH2"}}`)})
	msg := e.mustFail(logical.ReadOperation, "integrations/github", nil, http.StatusInternalServerError)
	if !strings.Contains(msg, "newer version") {
		t.Errorf("integration read: %q", msg)
	}

	// Through the API: refused, and the entry stays as the newer version
	// wrote it. A new process, as a rollback starts one: nothing cached.
	setStoredFormat(t, e.storage, connectionKey("github", "acme"), storageFormat+1)
	e.b.Cleanup(t.Context())
	e = newTestEnvOn(t, e.storage)
	before := e.snapshot()
	for _, req := range []struct {
		op   logical.Operation
		path string
		body map[string]any
	}{
		{logical.ReadOperation, "connections/github/acme", nil},
		{logical.UpdateOperation, "connections/github/acme/metadata", map[string]any{"plan": "pro"}},
		{logical.UpdateOperation, "connections/github/acme/refresh", nil},
		{logical.DeleteOperation, "connections/github/acme", nil},
	} {
		resp, status := e.do(req.op, req.path, req.body)
		if status < 500 || !strings.Contains(errorText(resp), "newer version of the plugin") {
			t.Errorf("%s %s: status %d %q, want the newer-format refusal", req.op, req.path, status, errorText(resp))
		}
	}
	e.assertUnchanged(before)
}

// TestWritesNeverOverwriteAnEntryOfNewerFormat: with every entry of a newer
// format (a rollback after a newer version wrote them), no write of this
// build replaces one: each is refused with the newer-format error, or
// answers an item-level failure (import), and storage is unchanged.
func TestWritesNeverOverwriteAnEntryOfNewerFormat(t *testing.T) {
	e := everyStoredKind(t)
	e.b.Cleanup(t.Context()) // no delivery attempt rewrites an entry meanwhile
	for key := range e.snapshot() {
		if !slices.ContainsFunc(unformattedPrefixes, func(p string) bool { return strings.HasPrefix(key, p) }) {
			setStoredFormat(t, e.storage, key, storageFormat+1)
		}
	}
	// A new process, as a rollback starts one: nothing cached.
	e = newTestEnvOn(t, e.storage)
	before := e.snapshot()
	for _, req := range []struct {
		op   logical.Operation
		path string
		body map[string]any
	}{
		{logical.UpdateOperation, "connections/github/acme", map[string]any{"access_token": "at-new", "expires_in": 60}},
		{logical.CreateOperation, "connections/github/acme", map[string]any{"access_token": "at-new", "expires_in": 60}},
		{logical.UpdateOperation, "connections/github/acme/config", map[string]any{"region": "eu"}},
		{logical.PatchOperation, "connections/github/acme/metadata", map[string]any{"plan": "pro"}},
		{logical.UpdateOperation, "connections/github/acme/authorize", nil},
		{logical.UpdateOperation, "integrations/github", map[string]any{"scopes": "repo"}},
		{logical.DeleteOperation, "integrations/github", map[string]any{"force": true}},
		{logical.UpdateOperation, "config", map[string]any{"refresh_margin": 60}},
		{logical.UpdateOperation, "providers/acme-api", map[string]any{"api_base_url": "https://api2.acme.test"}},
		{logical.UpdateOperation, "webhooks/app", map[string]any{"enabled": false}},
	} {
		resp, status := e.do(req.op, req.path, req.body)
		if status < 400 {
			t.Errorf("%s %s over entries of a newer format: status %d", req.op, req.path, status)
		} else if !strings.Contains(errorText(resp), "newer version of the plugin") {
			t.Errorf("%s %s: status %d %q, want the newer-format refusal", req.op, req.path, status, errorText(resp))
		}
	}
	resp, _ := e.do(logical.UpdateOperation, "import/github", map[string]any{"overwrite": true, "connections": []any{
		map[string]any{"connection_id": "acme", "access_token": "at-imported", "expires_in": 60}}})
	if !strings.Contains(fmt.Sprint(resp.Data), "newer version of the plugin") {
		t.Errorf("import over an entry of a newer format: %v", resp.Data)
	}
	after := e.snapshot()
	for k := range before {
		if _, ok := after[k]; !ok {
			t.Errorf("%s was deleted", k)
		}
	}
	e.assertUnchanged(before)
}

// TestForcedIntegrationDeleteKeepsANewerVersionsWAL: a newer version
// refreshed a connection and left its tokens in a WAL record, then the
// mount was rolled back; a forced delete of the integration (whose entry
// this build reads) is refused before it drops the record.
func TestForcedIntegrationDeleteKeepsANewerVersionsWAL(t *testing.T) {
	e := everyStoredKind(t)
	e.b.Cleanup(t.Context())
	for key := range e.snapshot() {
		if strings.HasPrefix(key, "wal/") || strings.HasPrefix(key, connectionPrefix) {
			setStoredFormat(t, e.storage, key, storageFormat+1)
		}
	}
	e = newTestEnvOn(t, e.storage)
	before := e.snapshot()
	msg := e.mustFail(logical.DeleteOperation, "integrations/github", map[string]any{"force": true}, http.StatusInternalServerError)
	if !strings.Contains(msg, "newer version of the plugin") {
		t.Errorf("forced delete: %q", msg)
	}
	e.assertUnchanged(before)
}

// An integration and a provider stored when credentials_schema named the
// API key apiKey are read under the API's name (api_key): their reads show
// it, and a connection write is checked against it and refused under the
// name the caller wrote, in words.
func TestOldCamelCaseCredentialsSchemaIsUpgraded(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	old := `{"auth_mode":"API_KEY","credentials_schema":{"apiKey":{"title":"Key","pattern":"k_[a-z]+","secret":true}},"request_headers":{"X-Key":"${apiKey}"},"api_base_url":"https://api.example.test"}`
	for key, raw := range map[string]string{
		"providers/old-prov":         `{"name":"old-prov",` + old[1:],
		"integrations/old-key":       `{"name":"old-key","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z",` + old[1:],
		"integrations/old-from-prov": `{"name":"old-from-prov","provider":"old-prov","auth_mode":"API_KEY","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}`,
	} {
		if err := e.storage.Put(ctx, &logical.StorageEntry{Key: key, Value: []byte(raw)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{"integrations/old-key", "integrations/old-from-prov", "providers/old-prov"} {
		schema, _ := e.mustDo(logical.ReadOperation, path, nil)["credentials_schema"].(map[string]any)
		if _, ok := schema["api_key"]; !ok || len(schema) != 1 {
			t.Errorf("%s: credentials_schema = %v, want api_key only", path, schema)
		}
	}
	for _, integration := range []string{"old-key", "old-from-prov"} {
		msg := e.mustFail(logical.UpdateOperation, "connections/"+integration+"/acme", map[string]any{"api_key": "K_WRONG"}, http.StatusBadRequest)
		if !strings.Contains(msg, "credentials.api_key is not in the form this field takes") || strings.Contains(msg, "apiKey") || strings.Contains(msg, "K_WRONG") {
			t.Errorf("%s: error = %q", integration, msg)
		}
		e.mustDo(logical.UpdateOperation, "connections/"+integration+"/acme", map[string]any{"api_key": "k_right"})
		data := e.mustDo(logical.ReadOperation, "connections/"+integration+"/acme", nil)
		if h, _ := data["headers"].(map[string]any); h["X-Key"] != "k_right" {
			t.Errorf("%s: headers = %v", integration, data["headers"])
		}
	}
	// An unrelated update stores the upgraded shape: the old name is gone.
	e.mustDo(logical.UpdateOperation, "integrations/old-key", map[string]any{"api_base_url": "https://api2.example.test"})
	raw, err := e.storage.Get(ctx, "integrations/old-key")
	if err != nil || raw == nil || strings.Contains(string(raw.Value), "apiKey\"") || !strings.Contains(string(raw.Value), `"api_key"`) {
		t.Fatalf("stored after an update: %s (%v)", raw.Value, err)
	}
}
