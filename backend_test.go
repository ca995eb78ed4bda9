// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/helper/testhelpers/schema"
	"github.com/hashicorp/vault/sdk/logical"
)

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testEnv is a backend on in-memory storage, as HashiCorp's plugins test.
type testEnv struct {
	t       *testing.T
	b       *backend
	storage logical.Storage
	logs    *syncBuffer
	// browser is the one browser the page and callback tests play: its
	// cookies, the Origin it posts with, the last Location it was sent to.
	browser testBrowser
}

// testBrowser is what a browser keeps between the page's requests and the
// callback: the cookies set for Vault, and the last 303's Location.
type testBrowser struct {
	cookies  map[string]string
	location string
	// origin, when set, replaces the Origin of the page's posts ("-": none).
	origin string
}

// keep stores the cookies and the Location a response sets.
func (br *testBrowser) keep(resp *logical.Response) {
	br.location = ""
	if resp == nil {
		return
	}
	for _, line := range resp.Headers["Set-Cookie"] {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			continue
		}
		if br.cookies == nil {
			br.cookies = map[string]string{}
		}
		if c.MaxAge < 0 {
			delete(br.cookies, c.Name)
			continue
		}
		br.cookies[c.Name] = c.Value
	}
	if loc := resp.Headers["Location"]; len(loc) > 0 {
		br.location = loc[0]
	}
}

// cookieHeader is the Cookie header the browser sends, nil without cookies.
func (br *testBrowser) cookieHeader() []string {
	if len(br.cookies) == 0 {
		return nil
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(br.cookies)) {
		parts = append(parts, k+"="+br.cookies[k])
	}
	return []string{strings.Join(parts, "; ")}
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvOn(t, &logical.InmemStorage{})
}

// newTestEnvOn is newTestEnv on the given storage, e.g. one that counts or
// fails operations.
func newTestEnvOn(t *testing.T, s logical.Storage) *testEnv {
	t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	logs := &syncBuffer{}
	conf.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})
	b, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, b: b.(*backend), storage: conf.StorageView, logs: logs}
}

// do runs one request and returns the response and the HTTP status Vault
// would answer with.
func (e *testEnv) do(op logical.Operation, path string, data map[string]any) (*logical.Response, int) {
	e.t.Helper()
	req := &logical.Request{
		Operation: op,
		Path:      path,
		Data:      data,
		Storage:   e.storage,
	}
	if op == logical.CreateOperation || op == logical.UpdateOperation {
		// Mirror Vault's router, which asks the existence check to
		// choose between create and update.
		exists, found, err := e.b.HandleExistenceCheck(context.Background(), req)
		if err != nil {
			// Vault answers a failed existence check with the error.
			return nil, httpStatus(op, nil, err)
		}
		if found && !exists {
			req.Operation = logical.CreateOperation
		} else {
			req.Operation = logical.UpdateOperation
		}
	}
	resp, err := e.b.HandleRequest(context.Background(), req)
	status := httpStatus(op, resp, err)
	if status < 300 {
		e.validateResponse(req, status, resp)
	}
	if err != nil && resp == nil {
		// Vault shows a handler's error as the response's error text.
		resp = logical.ErrorResponse(err.Error())
	}
	return resp, status
}

// httpStatus maps a handler result to Vault's HTTP status the way its HTTP
// layer does.
func httpStatus(op logical.Operation, resp *logical.Response, err error) int {
	code, err := logical.RespondErrorCommon(&logical.Request{Operation: op}, resp, err)
	if code == 0 && err == nil {
		if resp == nil {
			return http.StatusNoContent
		}
		return http.StatusOK
	}
	logical.AdjustErrorStatusCode(&code, err)
	return code
}

// mustDo runs a request that must succeed and returns its data.
func (e *testEnv) mustDo(op logical.Operation, path string, data map[string]any) map[string]any {
	e.t.Helper()
	resp, status := e.do(op, path, data)
	if status >= 300 {
		e.t.Fatalf("%s %s: status %d: %v", op, path, status, errorText(resp))
	}
	if resp == nil {
		return nil
	}
	return resp.Data
}

// mustFail runs a request that must fail with the given status and returns
// its error text.
func (e *testEnv) mustFail(op logical.Operation, path string, data map[string]any, status int) string {
	e.t.Helper()
	resp, got := e.do(op, path, data)
	if got != status {
		e.t.Fatalf("%s %s: want status %d, got %d (%v)", op, path, status, got, errorText(resp))
	}
	return errorText(resp)
}

func errorText(resp *logical.Response) string {
	if resp == nil || resp.Data == nil {
		return ""
	}
	s, _ := resp.Data["error"].(string)
	return s
}

// rejection is a write that must fail with 400, an error naming want, and
// no echo of the secret marker.
type rejection struct {
	name, path string
	body       map[string]any
	want       string
}

// assertRejected runs each write and checks its 400 and error message.
func (e *testEnv) assertRejected(cases []rejection, secretMarker string) {
	e.t.Helper()
	for _, tc := range cases {
		e.t.Run(tc.name, func(t *testing.T) {
			// Failures are the subtest's own: the parent's FailNow would
			// panic here.
			resp, status := e.do(logical.UpdateOperation, tc.path, tc.body)
			msg := errorText(resp)
			if status != http.StatusBadRequest {
				t.Fatalf("update %s: want status 400, got %d (%v)", tc.path, status, msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not mention %q", msg, tc.want)
			}
			if strings.Contains(msg, secretMarker) {
				t.Fatalf("error echoes a secret: %q", msg)
			}
		})
	}
}

// snapshot returns every storage entry, to show that a refused request
// changed nothing.
func (e *testEnv) snapshot() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	keys, err := logical.CollectKeys(context.Background(), e.storage)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, k := range keys {
		entry, err := e.storage.Get(context.Background(), k)
		if err != nil {
			e.t.Fatal(err)
		}
		out[k] = string(entry.Value)
	}
	return out
}

// assertUnchanged fails if storage changed since before, but for entries
// under the except prefixes (a connect session's failed-post count).
func (e *testEnv) assertUnchanged(before map[string]string, except ...string) {
	e.t.Helper()
	after := e.snapshot()
	if len(before) != len(after) {
		e.t.Fatalf("storage changed: %d entries before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v && !slices.ContainsFunc(except, func(p string) bool { return strings.HasPrefix(k, p) }) {
			e.t.Fatalf("storage entry %q changed", k)
		}
	}
}

// assertNoSecretLogged fails if any of the secrets appears in the logs.
func (e *testEnv) assertNoSecretLogged(secrets ...string) {
	e.t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(e.logs.String(), s) {
			e.t.Fatalf("secret %q appears in the logs", s)
		}
	}
}

func TestBackendPathsHaveHelp(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range e.b.Paths {
		if p.HelpSynopsis == "" || p.HelpDescription == "" {
			t.Errorf("path %q lacks help", p.Pattern)
		}
		for name, f := range p.Fields {
			if f.Description == "" {
				t.Errorf("path %q field %q lacks a description", p.Pattern, name)
			}
		}
	}
}

func TestBackendSealWrapsSecrets(t *testing.T) {
	e := newTestEnv(t)
	sw := e.b.SpecialPaths().SealWrapStorage
	for _, want := range []string{"integrations/", "connections/"} {
		found := false
		for _, p := range sw {
			found = found || p == want
		}
		if !found {
			t.Errorf("SealWrapStorage lacks %q: %v", want, sw)
		}
	}
}

// fixedClock returns a clock the test can move.
func fixedClock(start time.Time) (func() time.Time, func(time.Duration)) {
	now := start
	return func() time.Time { return now }, func(d time.Duration) { now = now.Add(d) }
}

// TestProviderCallingWritesAreForwarded: every write that calls a provider
// or stores a connection is forwarded from performance standbys and
// secondaries, which must not spend a refresh token they cannot store.
func TestProviderCallingWritesAreForwarded(t *testing.T) {
	e := newTestEnv(t)
	want := map[string][]logical.Operation{
		"connections/" + segment("integration") + "/" + segment("connection_id") + "/refresh":   {logical.UpdateOperation},
		"connections/" + segment("integration") + "/" + segment("connection_id") + "/authorize": {logical.UpdateOperation},
		connectionPattern:               {logical.CreateOperation, logical.UpdateOperation, logical.DeleteOperation},
		callbackPath:                    {logical.ReadOperation},
		connectionPattern + "/metadata": {logical.UpdateOperation, logical.PatchOperation},
		connectionPattern + "/config":   {logical.UpdateOperation, logical.PatchOperation},
	}
	found := 0
	for _, p := range e.b.Paths {
		ops, ok := want[p.Pattern]
		if !ok {
			continue
		}
		found++
		for _, op := range ops {
			po, ok := p.Operations[op].(*framework.PathOperation)
			if !ok || !po.ForwardPerformanceStandby || !po.ForwardPerformanceSecondary {
				t.Errorf("%s %s is not forwarded from standbys and secondaries", op, p.Pattern)
			}
		}
	}
	if found != len(want) {
		t.Fatalf("found %d of %d paths", found, len(want))
	}
}

// TestStandbyNeitherRefreshesNorBuildsTheQueue: a forced refresh on a
// performance standby asks Vault to forward it, without calling the
// provider, and the standby builds no refresh queue.
func TestStandbyNeitherRefreshesNorBuildsTheQueue(t *testing.T) {
	e, srv := replicaEnv(t, consts.ReplicationPerformanceSecondary)
	b, storage := e.b, e.storage
	putConnection(t.Context(), storage, &connectionEntry{Integration: "github", ConnectionID: "c1", AuthMode: catalog.OAuth2,
		Credentials: credentials{AccessToken: "a", RefreshToken: srv.IssueRefreshToken(), ExpiresAt: time.Now().Add(time.Hour)}})
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: storage}); err != nil {
		t.Fatal(err)
	}
	_, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "connections/github/c1/refresh", Storage: storage})
	if err != logical.ErrReadOnly {
		t.Fatalf("forced refresh on a secondary: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if srv.Requests() != 0 || b.engine.QueueLen() != 0 || b.engine.Ready() {
		t.Fatalf("the secondary asked the provider (%d) or built a queue (%d)", srv.Requests(), b.engine.QueueLen())
	}
}

// validateResponse checks a successful response against the schema its
// operation declares, strictly: no field the schema does not list.
func (e *testEnv) validateResponse(req *logical.Request, status int, resp *logical.Response) {
	e.t.Helper()
	p := e.b.Route(req.Path)
	if p == nil {
		e.t.Fatalf("%s: no route", req.Path)
	}
	op, ok := p.Operations[req.Operation]
	if !ok {
		return // the framework answered (e.g. help)
	}
	responses := op.Properties().Responses[status]
	if len(responses) == 0 {
		e.t.Fatalf("%s %s answered %d, which its schema does not declare", req.Operation, p.Pattern, status)
	}
	if responses[0].Fields == nil {
		return // free-form documents and raw pages
	}
	schema.ValidateResponse(e.t, &responses[0], resp, true)
}

// TestEveryFieldIsDescribed: every request and response field of every
// operation has a description, so path-help and the OpenAPI document
// describe it.
func TestEveryFieldIsDescribed(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range e.b.Paths {
		for name, f := range p.Fields {
			if strings.TrimSpace(f.Description) == "" {
				t.Errorf("%s: field %s has no description", p.Pattern, name)
			}
		}
		for op, h := range p.Operations {
			props := h.Properties()
			if props.Unpublished {
				continue
			}
			if len(props.Responses) == 0 {
				t.Errorf("%s %s declares no response", op, p.Pattern)
			}
			for status, rs := range props.Responses {
				for _, r := range rs {
					if r.Description == "" {
						t.Errorf("%s %s: response %d has no description", op, p.Pattern, status)
					}
					for name, f := range r.Fields {
						if strings.TrimSpace(f.Description) == "" {
							t.Errorf("%s %s: response field %s has no description", op, p.Pattern, name)
						}
					}
				}
			}
		}
	}
}

// TestRoutes: the framework takes the first pattern that matches, in the
// order backend.go lists them; the connection paths come first for speed.
// Every path goes where it did before that, and where two patterns match a
// path the specific one wins.
func TestRoutes(t *testing.T) {
	e := newTestEnv(t)
	for path, want := range map[string]string{
		"connections/github/c1":           connectionPattern,
		"connections/github/":             "connections/" + segment("integration") + "/?$",
		"connections/github":              "connections/" + segment("integration") + "/?$",
		"connections/github/c1/metadata":  connectionPattern + "/metadata",
		"connections/github/c1/config":    connectionPattern + "/config",
		"connections/github/c1/raw":       connectionPattern + "/raw",
		"connections/github/c1/refresh":   connectionPattern + "/refresh",
		"connections/github/c1/authorize": connectionPattern + "/authorize",
		"connections/github/c1/other":     connectionPattern + "/.+",
		"connections/github/c1/raw/x":     connectionPattern + "/.+",
		"import/github":                   "import/" + segment("integration") + "$",
		"config":                          "config",
		"integrations/github":             "integrations/" + segment("name"),
		"webhooks/app/dead":               "webhooks/" + segment("name") + "/dead/?$",
		"webhooks/app":                    "webhooks/" + segment("name"),
	} {
		p := e.b.Route(path)
		if want = anchored(want); p == nil || p.Pattern != want {
			t.Errorf("%s: routed to %q, want %q", path, patternOf(p), want)
		}
	}
}

// anchored is a pattern as the framework matches it: whole paths only.
func anchored(pattern string) string {
	if !strings.HasPrefix(pattern, "^") {
		pattern = "^" + pattern
	}
	if !strings.HasSuffix(pattern, "$") {
		pattern += "$"
	}
	return pattern
}

func patternOf(p *framework.Path) string {
	if p == nil {
		return "nowhere"
	}
	return p.Pattern
}

// TestBackendReportsItsVersion: the backend reports the version the build
// gave it (scripts/build-plugin.sh, scripts/release.sh set it with -ldflags
// -X), and a semantic version with a v when it was given none, since Vault
// refuses to register a plugin whose self-reported version does not parse.
func TestBackendReportsItsVersion(t *testing.T) {
	semver := regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	for _, set := range []string{"", "v1.2.3", "v0.0.0-dev+0123456789ab"} {
		version = set
		got := newTestEnv(t).b.Backend.RunningVersion
		if set != "" && got != set {
			t.Errorf("built with version %q, the backend reports %q", set, got)
		}
		if !semver.MatchString(got) {
			t.Errorf("built with version %q, the backend reports %q: not a semantic version with a v", set, got)
		}
	}
	version = ""
}

// countingSystemView counts the replication-state questions a backend asks
// Vault: over gRPC each is a round trip from the plugin to Vault.
type countingSystemView struct {
	logical.StaticSystemView
	asked atomic.Int64
}

func (v *countingSystemView) ReplicationState() consts.ReplicationState {
	v.asked.Add(1)
	return v.StaticSystemView.ReplicationState()
}

// replicationEnv is a backend on Vault's system view sys, whose cached
// replication state reads the returned clock (which does not move unless
// the test moves it).
func replicationEnv(t *testing.T, sys logical.SystemView) (*testEnv, *time.Time) {
	t.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	conf.System = sys
	raw, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	b := raw.(*backend)
	now := time.Now()
	b.System().(*replicationStateCache).now = func() time.Time { return now }
	return &testEnv{t: t, b: b, storage: conf.StorageView, logs: &syncBuffer{}}, &now
}

// The framework asks for the replication state on every operation (to
// forward writes from a performance standby); the backend asks Vault once
// per replicationStateTTL, not once per request, and again after it.
func TestReplicationStateIsAskedOncePerTTLNotPerRequest(t *testing.T) {
	// What an open-source Vault answers (vault/core.go).
	sys := &countingSystemView{StaticSystemView: logical.StaticSystemView{
		ReplicationStateVal: consts.ReplicationDRDisabled | consts.ReplicationPerformanceDisabled}}
	e, now := replicationEnv(t, sys)
	e.mustDo(logical.UpdateOperation, "integrations/stripe", map[string]any{"provider": "stripe"})
	e.mustDo(logical.CreateOperation, "connections/stripe/acme", map[string]any{"api_key": "sk_test_" + strings.Repeat("a", 24)})
	before := sys.asked.Load()
	for range 50 {
		e.mustDo(logical.ReadOperation, "connections/stripe/acme", nil)
	}
	if n := sys.asked.Load() - before; n > 1 {
		t.Fatalf("50 reads asked Vault for the replication state %d times", n)
	}
	*now = now.Add(replicationStateTTL + time.Millisecond)
	e.mustDo(logical.ReadOperation, "connections/stripe/acme", nil)
	if n := sys.asked.Load() - before; n < 1 {
		t.Fatalf("a read after the TTL did not ask again (%d)", n)
	}
}

// unreachableOnceSystemView answers as Vault's gRPC system view client does:
// ReplicationUnknown when the question fails (once here), the node's real
// state (a performance standby) after.
type unreachableOnceSystemView struct {
	logical.StaticSystemView
	failed atomic.Bool
}

func (v *unreachableOnceSystemView) ReplicationState() consts.ReplicationState {
	if v.failed.CompareAndSwap(false, true) {
		return consts.ReplicationUnknown
	}
	return consts.ReplicationPerformanceStandby
}

// TestReplicationStateUnknownIsNotKept (review rev3 of b43a5c7): the gRPC
// system view answers ReplicationUnknown when the question fails, which
// WriteSafeReplicationState reads as writable. Kept for replicationStateTTL,
// one failed question makes a performance standby take itself for a
// writable node for a second (refreshes that rotate a refresh token then
// save into read-only storage) instead of for that one operation.
func TestReplicationStateUnknownIsNotKept(t *testing.T) {
	e, _ := replicationEnv(t, &unreachableOnceSystemView{})
	b := e.b
	b.WriteSafeReplicationState() // the failed question
	if b.WriteSafeReplicationState() {
		t.Fatal("a performance standby is write-safe after one failed replication-state question: the unknown answer was kept")
	}
}
