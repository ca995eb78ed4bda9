// SPDX-License-Identifier: MPL-2.0

// Cross-cutting on purpose: invariants that hold across every path and store, so they name no single file.

package connect

import (
	"context"
	"encoding/json"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// The invariant table: every surface that can change a connection, driven
// with input that would break each invariant, and each invariant checked
// over everything stored afterwards. A fix made where one surface was named
// and bypassed through its neighbour shows up here as a failing cell; a new
// API surface that changes connections without a row fails
// TestEverySurfaceHasARow.

// attack is what a surface is asked to put into a connection: its config
// and metadata, or, for surfaces fed by the provider, the members of a
// token response or the query of a redirect.
type attack struct {
	config, metadata map[string]any
}

// invEnv is an egressEnv on storage that can fail connection saves, with
// a clock the test moves and every integration mapping token response
// members into the config.
type invEnv struct {
	*egressEnv
	flaky   *flakyStorage
	advance func(time.Duration)
}

func newInvEnv(t *testing.T) *invEnv {
	t.Helper()
	flaky := &flakyStorage{Storage: &logical.InmemStorage{}, failPrefix: connectionPrefix}
	e := newEgressEnvOn(t, flaky)
	schema := map[string]any{"host": map[string]any{"type": "string"}, "region": map[string]any{"enum": []any{"eu", "us"}, "optional": true}}
	for _, in := range []string{"cc", "oauth", "app"} {
		body := map[string]any{"connection_config_schema": schema}
		if in != "app" { // installation tokens map nothing into the config
			body["token_response_config"] = map[string]any{"host": "host", "region": "region", "installation_id": "installation_id", "big": "big"}
		}
		e.mustDo(logical.UpdateOperation, "integrations/"+in, body)
	}
	now, advance := fixedClock(time.Now())
	e.b.now = now
	ie := &invEnv{egressEnv: e, flaky: flaky, advance: advance}
	ie.mustDo(logical.CreateOperation, "connections/cc/acme", map[string]any{"connection_config": hostConfig(providerHost)})
	ie.mustDo(logical.CreateOperation, "connections/app/acme", map[string]any{"installation_id": "987", "connection_config": hostConfig(providerHost)})
	ie.mustDo(logical.CreateOperation, "connections/oauth/acme", map[string]any{"access_token": "at-0", "refresh_token": e.srv.IssueRefreshToken(),
		"expires_in": 3600, "connection_config": hostConfig(providerHost)})
	return ie
}

// credentialsFor are what a create or import of kind needs besides config.
func (e *invEnv) credentialsFor(kind string) map[string]any {
	switch kind {
	case "oauth":
		return map[string]any{"access_token": "at-1", "refresh_token": e.srv.IssueRefreshToken(), "expires_in": 3600}
	case "app":
		return map[string]any{"installation_id": "987"}
	}
	return map[string]any{}
}

// withConfig merges the attack's config into a valid one, so that each
// attack breaks one invariant at a time.
func withConfig(cfg map[string]any) map[string]any {
	out := hostConfig(providerHost)
	for k, v := range cfg {
		out[k] = v
	}
	return out
}

// stringValues is cfg as a redirect's query carries it.
func stringValues(cfg map[string]any) url.Values {
	q := url.Values{}
	for k, v := range cfg {
		if s, ok := v.(string); ok {
			q.Set(k, s)
		}
	}
	return q
}

// authorizeAndCallback runs a whole consent for oauth/acme; body goes to
// authorize.
func (e *invEnv) authorizeAndCallback(body map[string]any) func() {
	resp, status := e.do(logical.UpdateOperation, "connections/oauth/acme/authorize", body)
	if status != 200 {
		return func() {}
	}
	q, ok := consentAt(e.testEnv, resp.Data["authorization_url"].(string))
	return func() {
		if ok {
			callback(e.testEnv, q)
		}
	}
}

// authorizeAndComplete runs a whole consent for oauth/acme completed by
// the application (config's oauth_completion "application"): authorize
// with body and the test's browser binding, the callback, and complete
// with binding.
func (e *invEnv) authorizeAndComplete(body map[string]any, binding string) func() {
	e.mustDo(logical.UpdateOperation, "config", map[string]any{"oauth_completion": "application", "allowed_return_urls": "https://app.example.test/done"})
	body = merged(body, map[string]any{"return_url": "https://app.example.test/done", "browser_binding": testBinding})
	resp, status := e.do(logical.UpdateOperation, "connections/oauth/acme/authorize", body)
	if status != 200 {
		return func() {}
	}
	q, ok := consentAt(e.testEnv, resp.Data["authorization_url"].(string))
	return func() {
		if !ok {
			return
		}
		_, _, cb := callback(e.testEnv, q)
		loc, err := url.Parse(strings.Join(cb.Headers["Location"], ""))
		if err != nil || loc.Query().Get(completionParam) == "" {
			return
		}
		e.do(logical.UpdateOperation, "connections/oauth/acme/complete", map[string]any{"completion": loc.Query().Get(completionParam), "browser_binding": binding})
	}
}

// pageAuthorization runs a whole consent through the connect page for
// oauth/new: a session with the attack's metadata, a form with its config,
// the 303 to the provider, the callback with the page's cookie (or, when
// withCookie is false, from a browser without it).
func (e *invEnv) pageAuthorization(a attack, withCookie bool) func() {
	e.browser = testBrowser{}
	resp, status := e.do(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "new", "integrations": "oauth", "metadata": a.metadata})
	if status != 200 { // the session refused the metadata: the config is still posted
		resp, _ = e.do(logical.UpdateOperation, "sessions", map[string]any{"connection_id": "new", "integrations": "oauth"})
	}
	u, _ := url.Parse(resp.Data["connect_url"].(string))
	secret := u.Query().Get(sessionParam)
	_, body := uiGet(e.testEnv, url.Values{sessionParam: {secret}, integrationParam: {"oauth"}})
	form := hiddenInputs(e.t, body)
	for k, v := range withConfig(a.config) {
		if s, ok := v.(string); ok {
			form["config."+k] = s
		}
	}
	if status, _ := uiPost(e.testEnv, form); status != 303 {
		return func() {}
	}
	q, ok := consentAt(e.testEnv, e.browser.location)
	return func() {
		if !withCookie {
			e.browser.cookies = nil
		}
		if ok {
			callback(e.testEnv, q)
		}
	}
}

// failingRefresh refreshes kind/acme with the provider's answer carrying
// the attack while storage refuses connection saves: the answer is kept
// unsaved (and in a WAL record) until storage recovers.
func (e *invEnv) failingRefresh(kind string, a attack) {
	e.srv.SetExtraFields(a.config)
	e.flaky.failPuts.Store(1 << 30)
	e.do(logical.UpdateOperation, "connections/"+kind+"/acme/refresh", nil)
	e.flaky.failPuts.Store(0)
	e.srv.SetExtraFields(nil)
}

// failingCreate creates kind/new, whose first token the engine obtains,
// while storage refuses connection saves: the new connection exists only
// in memory (and in a WAL record) until storage recovers.
func (e *invEnv) failingCreate(kind string, a attack) {
	body := e.credentialsFor(kind)
	body["connection_config"], body["metadata"] = withConfig(a.config), a.metadata
	e.flaky.failPuts.Store(1 << 30)
	e.do(logical.CreateOperation, "connections/"+kind+"/new", body)
	e.flaky.failPuts.Store(0)
}

// restart replaces the backend with a new one on the same storage, as a
// plugin process that was killed and started again; the old one's memory
// (unsaved entries included) is gone.
func (e *invEnv) restart() {
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	conf.Logger = hclog.New(&hclog.LoggerOptions{Output: e.logs, Level: hclog.Trace})
	b, err := Factory(context.Background(), conf)
	if err != nil {
		e.t.Fatal(err)
	}
	b.(*backend).now = e.b.now
	e.b = b.(*backend)
}

// startReplaying starts the backend as Vault starts a mount: the WAL's
// records are replayed while every connection that has one is held back;
// it returns once the replay and the queue's build are done.
func (e *invEnv) startReplaying() {
	b := e.b
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { b.clean(context.Background()) })
	for deadline := time.Now().Add(10 * time.Second); !b.engine.Ready() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *invEnv) rollback() {
	_, err := e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RollbackOperation, Storage: e.storage, Data: map[string]any{"immediate": true},
	})
	// A rollback that fails leaves a WAL record unapplied: the invariant the
	// surface checks would then hold only because nothing happened, so the
	// failure fails the test instead of passing it quietly.
	if err != nil && err != logical.ErrUnsupportedOperation {
		e.t.Fatalf("rollback: %v", err)
	}
}

// surface is one way a connection changes. start does what comes before
// the moment an integration could be deleted (an authorize, a failed
// save); the func it returns completes the change.
type surface struct {
	name string
	// covers are the API routes ("<pattern> <operation>") and lifecycle
	// hooks ("hook:<name>") this row drives.
	covers []string
	// kinds are the connections it applies to.
	kinds []string
	start func(e *invEnv, kind string, a attack) func()
}

const connRoute = "connections/{integration}/{connection_id}"

var allKinds = []string{"cc", "oauth", "app"}

var surfaces = []surface{
	{"create", []string{connRoute + " create"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		return func() {
			body := e.credentialsFor(kind)
			body["connection_config"], body["metadata"] = withConfig(a.config), a.metadata
			e.do(logical.CreateOperation, "connections/"+kind+"/new", body)
		}
	}},
	{"create across its first token's provider call", []string{connRoute + " create"}, []string{"cc"}, func(e *invEnv, kind string, a attack) func() {
		// The integration lock is not held across the provider call: the
		// last column's forced delete runs while the token is issued.
		asked := make(chan struct{})
		e.srv.OnToken(func() {
			e.srv.OnToken(nil)
			close(asked)
		})
		e.srv.SetDelay(300 * time.Millisecond)
		done := make(chan struct{})
		go func() {
			defer close(done)
			body := e.credentialsFor(kind)
			body["connection_config"], body["metadata"] = withConfig(a.config), a.metadata
			e.do(logical.CreateOperation, "connections/"+kind+"/new", body)
		}()
		select {
		case <-asked:
		case <-done: // refused before any token request
		}
		return func() {
			<-done
			e.srv.SetDelay(0)
		}
	}},
	{"update", []string{connRoute + " update"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		return func() {
			e.do(logical.UpdateOperation, "connections/"+kind+"/acme", map[string]any{"connection_config": withConfig(a.config), "metadata": a.metadata})
		}
	}},
	{"config write", []string{connRoute + "/config create", connRoute + "/config update"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		return func() { e.do(logical.UpdateOperation, "connections/"+kind+"/acme/config", withConfig(a.config)) }
	}},
	{"config patch", []string{connRoute + "/config patch"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		return func() { e.do(logical.PatchOperation, "connections/"+kind+"/acme/config", withConfig(a.config)) }
	}},
	{"metadata write", []string{connRoute + "/metadata create", connRoute + "/metadata update"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		return func() {
			e.do(logical.UpdateOperation, "connections/"+kind+"/acme/metadata", merged(a.metadata, a.config))
		}
	}},
	{"metadata patch", []string{connRoute + "/metadata patch"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		return func() {
			e.do(logical.PatchOperation, "connections/"+kind+"/acme/metadata", merged(a.metadata, a.config))
		}
	}},
	{"import", []string{"import/{integration} update"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		return func() {
			item := e.credentialsFor(kind)
			item["connection_id"], item["connection_config"], item["metadata"] = "acme", withConfig(a.config), a.metadata
			e.do(logical.UpdateOperation, "import/"+kind, map[string]any{"connections": []any{item}, "overwrite": true})
		}
	}},
	{"authorize + callback", []string{connRoute + "/authorize update", "oauth/callback read"}, []string{"oauth"}, func(e *invEnv, _ string, a attack) func() {
		return e.authorizeAndCallback(map[string]any{"connection_config": withConfig(a.config), "metadata": a.metadata})
	}},
	{"authorize + callback + complete", []string{connRoute + "/authorize update", "oauth/callback read", connRoute + "/complete update"}, []string{"oauth"}, func(e *invEnv, _ string, a attack) func() {
		return e.authorizeAndComplete(map[string]any{"connection_config": withConfig(a.config), "metadata": a.metadata}, testBinding)
	}},
	{"connect page post + callback", []string{connectUIPath + " update", "oauth/callback read"}, []string{"oauth"}, func(e *invEnv, _ string, a attack) func() {
		return e.pageAuthorization(a, true)
	}},
	{"callback_config", []string{"oauth/callback read"}, []string{"oauth"}, func(e *invEnv, _ string, a attack) func() {
		keys := slices.Sorted(maps.Keys(a.config))
		e.mustDo(logical.UpdateOperation, "integrations/oauth", map[string]any{"callback_config": strings.Join(keys, ",")})
		e.srv.SetCallbackExtras(stringValues(a.config))
		finish := e.authorizeAndCallback(nil)
		return func() {
			finish()
			e.srv.SetCallbackExtras(nil)
		}
	}},
	{"token_response_config (code exchange)", []string{"oauth/callback read"}, []string{"oauth"}, func(e *invEnv, _ string, a attack) func() {
		finish := e.authorizeAndCallback(nil)
		return func() {
			e.srv.SetExtraFields(a.config)
			finish()
			e.srv.SetExtraFields(nil)
		}
	}},
	{"refresh on read", []string{connRoute + " read", connRoute + "/raw read"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		return func() {
			e.srv.SetExtraFields(a.config)
			e.advance(2 * time.Hour)
			e.do(logical.ReadOperation, "connections/"+kind+"/acme", nil)
			e.srv.SetExtraFields(nil)
		}
	}},
	{"proxied call (refresh on read, 401 renewal)", []string{connRoute + "/proxy/{path} read", connRoute + "/proxy/{path} update", connRoute + "/proxy/{path} patch"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		u, _ := url.Parse(e.srv.URL)
		e.mustDo(logical.UpdateOperation, "integrations/"+kind, map[string]any{
			"api_base_url": "http://${connectionConfig.host}:" + u.Port(), "proxy_paths": "/*", "proxy_methods": "GET,POST,PATCH"})
		return func() {
			e.srv.SetExtraFields(a.config)
			e.advance(2 * time.Hour)
			path := "connections/" + kind + "/acme/proxy/"
			e.do(logical.ReadOperation, path+"v1/x", nil)
			e.do(logical.UpdateOperation, path+"v1/x", map[string]any{"json": map[string]any{"a": 1}})
			e.do(logical.PatchOperation, path+"v1/x", map[string]any{"json": map[string]any{"a": 1}})
			e.srv.SetExtraFields(nil)
		}
	}},
	{"forced refresh", []string{connRoute + "/refresh update"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		return func() {
			e.srv.SetExtraFields(a.config)
			e.do(logical.UpdateOperation, "connections/"+kind+"/acme/refresh", nil)
			e.srv.SetExtraFields(nil)
		}
	}},
	{"forced refresh across its provider call", []string{connRoute + "/refresh update"}, []string{"cc", "oauth"}, func(e *invEnv, kind string, a attack) func() {
		// As the create's row: the last column's forced delete runs while
		// the provider answers the refresh, which then stores nothing.
		asked := make(chan struct{})
		e.srv.OnToken(func() {
			e.srv.OnToken(nil)
			close(asked)
		})
		e.srv.SetExtraFields(a.config)
		e.srv.SetDelay(300 * time.Millisecond)
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.do(logical.UpdateOperation, "connections/"+kind+"/acme/refresh", nil)
		}()
		select {
		case <-asked:
		case <-done:
		}
		return func() {
			<-done
			e.srv.SetDelay(0)
			e.srv.SetExtraFields(nil)
		}
	}},
	{"background refresh", []string{"hook:periodic"}, allKinds, func(e *invEnv, _ string, a attack) func() {
		return func() {
			e.srv.SetExtraFields(a.config)
			e.advance(2 * time.Hour)
			e.tick()
			e.srv.SetExtraFields(nil)
		}
	}},
	{"unsaved retry", []string{"hook:periodic"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		e.failingRefresh(kind, a)
		return func() { e.tick() }
	}},
	{"unsaved retry of a new connection", []string{"hook:periodic"}, []string{"cc", "app"}, func(e *invEnv, kind string, a attack) func() {
		e.failingCreate(kind, a)
		return func() { e.tick() }
	}},
	{"WAL rollback of a new connection", []string{"hook:wal-rollback"}, []string{"cc", "app"}, func(e *invEnv, kind string, a attack) func() {
		e.failingCreate(kind, a)
		return func() {
			e.restart()
			e.rollback()
		}
	}},
	{"edits of a connection held unsaved, then a restart", []string{connRoute + "/metadata update", connRoute + "/config update", "hook:initialize"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		e.srv.SetExtraFields(a.config)
		e.flaky.failPuts.Store(1 << 30)
		e.do(logical.UpdateOperation, "connections/"+kind+"/acme/refresh", nil)
		e.srv.SetExtraFields(nil)
		e.do(logical.UpdateOperation, "connections/"+kind+"/acme/metadata", merged(a.metadata, a.config))
		e.do(logical.UpdateOperation, "connections/"+kind+"/acme/config", withConfig(a.config))
		e.flaky.failPuts.Store(0)
		return func() {
			e.restart()
			e.startReplaying()
		}
	}},
	{"WAL replay at start", []string{"hook:initialize"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		e.failingRefresh(kind, a)
		return func() {
			e.restart()
			e.startReplaying()
		}
	}},
	{"WAL rollback", []string{"hook:wal-rollback"}, allKinds, func(e *invEnv, kind string, a attack) func() {
		e.failingRefresh(kind, a)
		return func() {
			e.restart()
			e.rollback()
		}
	}},
}

func merged(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range []map[string]any{a, b} {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// invariant is one promise, the input that would break it, and its check
// over everything stored.
type invariant struct {
	name   string
	attack attack
	check  func(e *invEnv)
}

var invariants = []invariant{
	{"installation only through its field",
		attack{config: map[string]any{"installation_id": "555"}, metadata: map[string]any{"installation_id": "555"}},
		func(e *invEnv) {
			for _, c := range e.storedConnections("app") {
				if c.InstallationID != "987" {
					e.t.Errorf("app/%s mints for installation %q", c.ConnectionID, c.InstallationID)
				}
				if _, ok := c.ConnectionConfig["installation_id"]; ok {
					e.t.Errorf("app/%s keeps installation_id in its config", c.ConnectionID)
				}
			}
			if _, status := e.do(logical.UpdateOperation, "connections/app/acme/refresh", nil); status == 200 && e.srv.LastTenant() != "987" {
				e.t.Errorf("a refresh asked for installation %q", e.srv.LastTenant())
			}
		}},
	{"secrets only to allowed hosts",
		attack{config: map[string]any{"host": decoyHost}},
		func(e *invEnv) {
			for _, kind := range allKinds {
				for _, c := range e.storedConnections(kind) {
					e.do(logical.UpdateOperation, "connections/"+kind+"/"+c.ConnectionID+"/refresh", nil)
				}
			}
			e.do(logical.DeleteOperation, "connections/oauth/acme", nil) // revocation
			if got := e.decoy.requested(); len(got) > 0 {
				e.t.Errorf("requests reached a host outside allowed_hosts: %v", got)
			}
		}},
	{"documents within caps",
		attack{config: map[string]any{"big": strings.Repeat("c", maxDocumentBytes+1024)}, metadata: map[string]any{"big": strings.Repeat("m", maxDocumentBytes+1024)}},
		func(e *invEnv) {
			for _, kind := range allKinds {
				for _, c := range e.storedConnections(kind) {
					for field, doc := range map[string]map[string]any{"metadata": c.Metadata, "connection_config": c.ConnectionConfig} {
						if b, _ := json.Marshal(doc); len(b) > maxDocumentBytes {
							e.t.Errorf("%s/%s: %s is %d bytes", kind, c.ConnectionID, field, len(b))
						}
					}
					if b, _ := json.Marshal(c); len(b) > maxConnectionEntryBytes {
						e.t.Errorf("%s/%s: the entry is %d bytes", kind, c.ConnectionID, len(b))
					}
				}
			}
		}},
	{"schema holds",
		attack{config: map[string]any{"region": "mars"}},
		func(e *invEnv) {
			for _, kind := range allKinds {
				in, err := e.b.issuer.integration(context.Background(), e.storage, kind)
				if err != nil {
					continue
				}
				for _, c := range e.storedConnections(kind) {
					if err := in.ConnectionConfigSchema.Check("connection_config", c.ConnectionConfig); err != nil {
						e.t.Errorf("%s/%s holds a config its schema refuses: %v", kind, c.ConnectionID, err)
					}
				}
			}
		}},
}

// storedConnections reads what storage holds for an integration, past the
// cache.
func (e *invEnv) storedConnections(integration string) []*connectionEntry {
	ids, err := e.storage.List(context.Background(), connectionPrefix+integration+"/")
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*connectionEntry
	for _, id := range ids {
		if c, err := getConnection(context.Background(), e.storage, integration, id); err == nil && c != nil {
			out = append(out, c)
		}
	}
	return out
}

// storedJSON is everything storage holds for an integration's
// connections, for telling whether a surface changed anything.
func (e *invEnv) storedJSON(integration string) string {
	b, _ := json.Marshal(e.storedConnections(integration))
	return string(b)
}

// checkNothingOutlivesItsIntegration: after a forced delete of the
// integration, nothing of it is stored or served, whatever ran since.
func (e *invEnv) checkNothingOutlivesItsIntegration(kind string) {
	e.t.Helper()
	e.tick()
	if got := e.storedConnections(kind); len(got) > 0 {
		e.t.Errorf("%d connection(s) of deleted integration %s are stored", len(got), kind)
	}
	for _, id := range []string{"acme", "new"} {
		if _, status := e.do(logical.ReadOperation, "connections/"+kind+"/"+id, nil); status == 200 {
			e.t.Errorf("connection %s/%s of the deleted integration is served", kind, id)
		}
	}
}

// TestNothingStoredWithoutTheBinding: the surfaces that bind an
// authorization to the browser that started it store nothing when the
// browser that comes back is another one: complete with another binding,
// the page's callback without its cookie. Each stores with it (the table's
// rows).
func TestNothingStoredWithoutTheBinding(t *testing.T) {
	benign := attack{config: map[string]any{"region": "eu"}, metadata: map[string]any{"region": "eu"}}
	for name, run := range map[string]func(e *invEnv) func(){
		"complete with another binding": func(e *invEnv) func() {
			return e.authorizeAndComplete(map[string]any{"metadata": benign.metadata}, testBinding+"-other")
		},
		"page callback without its cookie": func(e *invEnv) func() { return e.pageAuthorization(benign, false) },
	} {
		t.Run(name, func(t *testing.T) {
			e := newInvEnv(t)
			before := e.storedJSON("oauth")
			requests := e.srv.Requests()
			run(e)()
			if after := e.storedJSON("oauth"); after != before {
				t.Errorf("stored without the binding:\n%s", after)
			}
			if strings.HasPrefix(name, "page") && e.srv.Requests() != requests {
				t.Error("the code was exchanged without the cookie")
			}
		})
	}
}

func TestInvariantTable(t *testing.T) {
	for _, s := range surfaces {
		for _, inv := range invariants {
			t.Run(s.name+"/"+inv.name, func(t *testing.T) {
				e := newInvEnv(t)
				for _, kind := range s.kinds {
					s.start(e, kind, inv.attack)()
				}
				inv.check(e)
			})
		}
		// A row whose surface changes nothing would pass every column: a
		// valid change through it must reach storage.
		t.Run(s.name+"/a valid change is stored", func(t *testing.T) {
			benign := attack{config: map[string]any{"region": "eu"}, metadata: map[string]any{"region": "eu"}}
			for _, kind := range s.kinds {
				e := newInvEnv(t)
				before := e.storedJSON(kind)
				s.start(e, kind, benign)()
				if after := e.storedJSON(kind); after == before {
					t.Errorf("%s: nothing stored changed", kind)
				}
			}
		})
		t.Run(s.name+"/no connection outlives its integration", func(t *testing.T) {
			for _, kind := range s.kinds {
				e := newInvEnv(t)
				finish := s.start(e, kind, attack{})
				e.mustDo(logical.DeleteOperation, "integrations/"+kind, map[string]any{"force": true})
				finish()
				e.checkNothingOutlivesItsIntegration(kind)
			}
		})
	}
}

// TestEverySurfaceHasARow holds the table against the backend's routes: a
// route that can change a connection (any create, update, patch, or a read
// that may refresh) must be driven by a row, or be listed here as one that
// cannot.
func TestEverySurfaceHasARow(t *testing.T) {
	cannotChange := map[string]string{
		connRoute + "/metadata read": "returns a document, never refreshes",
		connRoute + "/config read":   "returns a document, never refreshes",
		connRoute + "/.+ read":       "answers 404 for unknown sub-paths",
		connRoute + "/.+ update":     "answers 404 for unknown sub-paths",
		connRoute + "/.+ patch":      "answers 404 for unknown sub-paths",
	}
	covered := map[string]bool{}
	for _, s := range surfaces {
		for _, c := range s.covers {
			covered[c] = true
		}
	}
	e := newTestEnv(t)
	var missing []string
	for _, p := range e.b.Backend.Paths {
		pattern := normalizeRoute(p.Pattern)
		if !regexp.MustCompile(`^(connections/|import/|oauth/callback)`).MatchString(pattern) {
			continue
		}
		for op := range p.Operations {
			if op == logical.ListOperation || op == logical.DeleteOperation {
				continue // lists change nothing; deletes are what the last column checks against
			}
			route := pattern + " " + string(op)
			if !covered[route] && cannotChange[route] == "" {
				missing = append(missing, route)
			}
		}
	}
	for _, hook := range []struct {
		name string
		set  bool
	}{{"hook:periodic", e.b.Backend.PeriodicFunc != nil}, {"hook:wal-rollback", e.b.Backend.WALRollback != nil},
		{"hook:initialize", e.b.Backend.InitializeFunc != nil}} {
		if hook.set && !covered[hook.name] {
			missing = append(missing, hook.name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("surfaces that can change a connection without a row in the invariant table: %v", missing)
	}
}

// normalizeRoute turns a path pattern into the route names above.
func normalizeRoute(pattern string) string {
	r := regexp.MustCompile(`\(\?P<([a-z_]+)>[^)]*\)`).ReplaceAllString(pattern, "{$1}")
	return strings.TrimSuffix(strings.TrimSuffix(r, "$"), "/?")
}
