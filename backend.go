// SPDX-License-Identifier: MPL-2.0

// Package connect is a Vault secrets engine for third-party API credentials,
// modelled on Nango's integrations and connections.
//
// An integration is one external API and the way to authenticate to it (an
// OAuth2 app, an API key, Basic auth, or free-form credentials). A connection
// is one customer's credentials for one integration, keyed by a connection id
// that is unique within its integration. The engine stores both in Vault's
// encrypted storage and keeps OAuth tokens fresh, so that
//
//	vault read -field=access_token connect/connections/<integration>/<id>
//
// always returns a token that works.
package connect

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// version is the plugin's semantic version with a v, set at build time:
//
//	go build -ldflags "-X github.com/connect-vault/vault-plugin-secrets-connect.version=v1.2.3"
//
// as scripts/build-plugin.sh (v0.0.0-dev+<commit>) and scripts/release.sh
// do. Vault shows it as the mount's running_plugin_version and refuses to
// register the binary under another -version.
var version string

// devVersion is what a build given no version reports: a valid semantic
// version that sorts below every release.
const devVersion = "v0.0.0-dev"

// Version is the version the plugin reports to Vault, for the command's
// -version flag (what an operator passes to vault plugin register -version).
func Version() string { return runningVersion() }

// runningVersion is the version the backend reports to Vault.
func runningVersion() string {
	if version == "" {
		return devVersion
	}
	return version
}

// operationPrefix prefixes the OpenAPI operation ids, e.g. connect-read-connection.
const operationPrefix = "connect"

// providerTimeout bounds one request to a provider, so a hung provider
// cannot hold a connection's lock for ever.
const providerTimeout = 30 * time.Second

type backend struct {
	*framework.Backend

	// store is the only way to connection entries: locks, cache, saves.
	store *connectionStore
	// engine schedules background refreshes.
	engine *refreshEngine
	// issuer is the one owner of token issuing: the only holder of the
	// provider client.
	issuer *issuer
	// refresher renews tokens.
	refresher *refresher
	// writer creates, updates, edits and deletes connections: the one door for
	// connection writes.
	writer *connectionWriter
	// integrationWriter writes and deletes integrations.
	integrationWriter *integrationWriter
	// providerWriter writes and deletes operator-defined providers.
	providerWriter *providerWriter
	// sessionWriter creates connect sessions.
	sessionWriter *sessionWriter
	// configWriter writes the mount's configuration.
	configWriter *configWriter
	// proxier calls providers' APIs with connections' credentials.
	proxier *proxier
	// closeIdleConnections closes the provider client's idle connections
	// (the issuer's and the proxy's pools) when the mount is cleaned up.
	closeIdleConnections func()
	// authorizer runs the authorization code flow.
	authorizer *authorizer
	// pagePoster carries out the connect page's posts.
	pagePoster *pagePoster
	// mountConfig loads, caches and saves the mount's configuration.
	mountConfig *mountConfigStore
	// renderings cache how each integration's connection reads render
	// base_url and headers.
	renderings renderingCache
	// states holds the pending authorizations.
	pendingAuths *pendingAuthorizationStore
	// sessions holds the connect sessions.
	sessions *sessionStore
	// outbox is the durable outbox of lifecycle events, and delivers them
	// to the webhook receivers.
	outbox *eventOutbox

	// now is the clock, replaceable in tests.
	now func() time.Time
}

// Factory is the plugin entry point Vault calls when the engine is mounted.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if conf.System != nil {
		sys := *conf
		sys.System = &replicationStateCache{SystemView: conf.System, now: time.Now}
		conf = &sys
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func newBackend() *backend {
	httpClient := cleanhttp.DefaultPooledClient()
	httpClient.Timeout = providerTimeout
	b := &backend{
		engine:      newRefreshEngine(),
		mountConfig: newMountConfigStore(),
	}
	// The clock is read through b.now so that tests can replace it after
	// construction; the logger is the framework's, set up after it.
	b.now = time.Now
	clock := func() time.Time { return b.now() }
	logger := func() hclog.Logger { return b.Logger() }
	// What the connection store is handed comes first: the engine it
	// schedules in, the mount's configuration it schedules by and the
	// outbox it records a change's events into.
	b.outbox = newEventOutbox(clock, logger, b.mountConfig.maxPendingEvents)
	b.store = newConnectionStore(b.engine, b.mountConfig, b.outbox, logger, clock)
	b.pendingAuths = newPendingAuthorizationStore(b.mountConfig.get, clock, logger)
	b.sessions = newSessionStore(clock, logger)
	client := provider.New(httpClient, clock)
	b.closeIdleConnections = client.CloseIdleConnections
	b.issuer = &issuer{
		client: client,
		logger: logger,
		now:    clock,
	}
	b.store.revokeUnstored = b.issuer.revokeDropped
	b.refresher = &refresher{
		store:    b.store,
		engine:   b.engine,
		issuer:   b.issuer,
		config:   b.mountConfig.get,
		writable: func() bool { return b.WriteSafeReplicationState() },
		now:      clock,
		logger:   logger,
	}
	b.writer = &connectionWriter{
		store:        b.store,
		issuer:       b.issuer,
		pendingAuths: b.pendingAuths,
		writable:     func() bool { return b.WriteSafeReplicationState() },
		now:          clock,
	}
	b.integrationWriter = &integrationWriter{store: b.store, pendingAuths: b.pendingAuths, renderings: &b.renderings, now: clock}
	b.providerWriter = &providerWriter{renderings: &b.renderings}
	b.sessionWriter = &sessionWriter{sessions: b.sessions, now: clock, checkReturnURL: checkReturnURL}
	b.configWriter = &configWriter{mountConfig: b.mountConfig}
	b.proxier = &proxier{
		refresher:  b.refresher,
		renderings: &b.renderings,
		store:      b.store,
		client:     client,
		now:        clock,
		sleep:      sleepCtx,
		logger:     logger,
	}
	b.authorizer = &authorizer{
		store:     b.store,
		issuer:    b.issuer,
		putState:  b.pendingAuths.Put,
		takeState: b.pendingAuths.Take,
		peekState: b.pendingAuths.Peek,
		// The callback's: never a completion.
		takeAuthorization: b.pendingAuths.TakeAuthorization,
		sessions:          b.sessions,
		config:            b.mountConfig.get,
		events:            b.outbox,
		now:               clock,
		logger:            logger,
	}
	b.pendingAuths.dropHeld = b.authorizer.revokeHeld
	b.pagePoster = &pagePoster{
		sessions:   b.sessions,
		authorizer: b.authorizer,
		now:        clock,
		logger:     logger,
	}

	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		// Shown by vault secrets list -detailed and vault plugin info.
		RunningVersion: runningVersion(),
		PathsSpecial: &logical.Paths{
			// Providers redirect browsers, which hold no Vault token.
			// The connect page is opened by a customer's browser too; its
			// session secret authorises it.
			Unauthenticated: []string{callbackPath, connectUIPath},
			SealWrapStorage: []string{
				integrationPrefix,
				connectionPrefix,
				statePrefix,
				sessionPrefix,
				webhookPrefix, // receivers' signing secrets
				"wal/",        // issued tokens whose connection save failed
				"events/",     // the outbox: bodies hold no secret, kept sealed as defence in depth
			},
		},
		// The framework tries the patterns in this order on every request:
		// the connection paths, which most requests take, come first (no
		// other pattern matches their paths: TestRoutes), the catch-all that
		// explains bad ids after every connection sub-path.
		Paths: framework.PathAppend(
			pathConnections(b),
			pathConfig(b),
			pathStatus(b),
			pathProviders(b),
			pathIntegrations(b),
			pathOAuthCallback(b),
			pathSessions(b),
			pathConnectUI(b),
			pathConnectionDocuments(b),
			pathConnectionActions(b),
			pathConnectionAuthorize(b),
			pathConnectionComplete(b),
			pathConnectionImport(b),
			pathConnectionProxy(b),
			pathConnectionCatchAll(),
			pathWebhooks(b),
		),
		InitializeFunc:    b.initialize,
		PeriodicFunc:      b.periodic,
		WALRollback:       b.store.WALRollback,
		WALRollbackMinAge: walRollbackMinAge,
		Invalidate:        b.invalidate,
		Clean:             b.clean,
	}
	return b
}

// initialize gives the pending authorizations of an earlier version their
// expiry entries (once per mount) and starts building the refresh queue
// from storage in the background, so that the plugin serves reads at once.
func (b *backend) initialize(ctx context.Context, req *logical.InitializationRequest) error {
	if !b.WriteSafeReplicationState() {
		return nil // only where the periodic hook refreshes
	}
	s := req.Storage
	if err := b.pendingAuths.IndexEarlier(ctx, s); err != nil {
		// Not fatal: the sweep tries again on its first tick.
		b.Logger().Warn("indexing the expiry of pending authorizations of an earlier version", "error", err)
	}
	// Only here do events leave: standbys and performance standbys never
	// deliver, so that an event is sent by one node.
	b.outbox.startDelivery(s)
	// The WAL's records are applied first, while every connection that
	// has one is held back (reads wait for it); the queue's build starts
	// once each was tried, and records that failed are tried again.
	b.store.HoldForReplay()
	replayed := make(chan struct{})
	b.engine.Start(func(ctx context.Context, ready func()) error {
		go b.store.ReplayAtStart(ctx, s, b.Logger, func() { close(replayed) })
		select {
		case <-replayed:
		case <-ctx.Done():
			return ctx.Err()
		}
		return b.buildRefreshQueue(ctx, s, ready)
	})
	return nil
}

// buildRefreshQueue queues every connection from its schedule mark, ready
// at once where every stored connection has one, then reads every stored
// connection to check the queue and mend the marks
// (connection_schedule_marks.go).
func (b *backend) buildRefreshQueue(ctx context.Context, s logical.Storage, ready func()) error {
	start := time.Now()
	cfg, err := b.config(ctx, s)
	if err != nil {
		b.Logger().Error("building the refresh queue", "error", err)
		return err
	}
	marks, complete, err := b.store.LoadScheduleMarks(ctx, s, b.engine.restore)
	switch {
	case err != nil:
		// Not fatal: the check below queues every connection.
		b.Logger().Warn("listing the schedule marks; the refresh queue is ready once every connection is read", "error", err)
	case complete:
		ready()
		b.Logger().Info("refresh queue built from schedule marks", "queued", b.engine.QueueLen(), "duration", time.Since(start))
	}
	var n int
	err = b.engine.check(func(visit func(key string, f scheduleFields)) error {
		n, err = b.store.CheckSchedule(ctx, s, marks, visit)
		return err
	}, cfg, b.now)
	if err != nil {
		b.Logger().Error("checking the refresh queue against every connection", "error", err, "connections", n)
		return err
	}
	b.Logger().Info("refresh queue checked against every connection", "connections", n, "queued", b.engine.QueueLen(), "duration", time.Since(start))
	return nil
}

// periodic is the backend's PeriodicFunc, which Vault calls about once a
// minute. It runs only where storage is writable: not on performance
// standbys or secondaries, whose primaries do the work.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	// Delivery starts at initialize; this only covers a node that became
	// writable without one, and costs nothing once started.
	b.outbox.startDelivery(req.Storage)
	var errs []error
	if err := b.store.SaveUnsaved(ctx, req.Storage); err != nil {
		errs = append(errs, fmt.Errorf("saving refreshed connections: %w", err))
	}
	if err := b.store.RecordOwed(ctx, req.Storage); err != nil {
		errs = append(errs, fmt.Errorf("recording the events of saved changes: %w", err))
	}
	if err := b.store.FlushProxyCalls(ctx, req.Storage); err != nil {
		errs = append(errs, fmt.Errorf("storing proxied call counts: %w", err))
	}
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	// A start's check that storage failed is tried again.
	b.engine.Recheck(b.now(), func(ctx context.Context, ready func()) error {
		return b.buildRefreshQueue(ctx, req.Storage, ready)
	})
	b.engine.RunTick(b.now(), cfg.RefreshConcurrency, func(key string) {
		b.refresher.backgroundRefresh(ctx, req.Storage, key)
	})
	if err := b.pendingAuths.SweepExpired(ctx, req.Storage); err != nil {
		errs = append(errs, err)
	}
	if err := b.sessions.SweepExpired(ctx, req.Storage); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// config returns the caller's own copy of the mount's configuration.
func (b *backend) config(ctx context.Context, s logical.Storage) (*configEntry, error) {
	return b.mountConfig.get(ctx, s)
}

// invalidate is the backend's Invalidate hook: another node changed key.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configStoragePath:
		b.mountConfig.invalidate()
	case strings.HasPrefix(key, connectionPrefix):
		b.store.Invalidate(key)
	case strings.HasPrefix(key, integrationPrefix), strings.HasPrefix(key, providerPrefix):
		b.renderings.clear()
	case strings.HasPrefix(key, webhookPrefix):
		b.outbox.receivers.invalidate()
	}
}

// clean stops the queue build when the plugin shuts down.
func (b *backend) clean(context.Context) {
	b.engine.Stop()
	b.outbox.stopDelivery() // and event delivery
	// The provider client's pools (the proxy's keeps many connections per
	// host) would otherwise stay open until their idle timeout after the
	// mount is gone.
	b.closeIdleConnections()
}

// HandleExistenceCheck wraps the framework's check, which validates the
// request's fields first and reports a type error (metadata that is not an
// object, a negative expires_in) as a UserError; Vault's core then logs an
// ERROR line quoting the caller's input for what is only a bad request.
// Reporting "no existence check" instead lets the request reach
// HandleRequest, which runs the same validation and answers 400 quietly.
func (b *backend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	checkFound, exists, err := b.Backend.HandleExistenceCheck(ctx, req)
	var userErr errutil.UserError
	if errors.As(err, &userErr) {
		return false, false, nil
	}
	return checkFound, exists, err
}

// HandleRequest refuses a field of the wrong type in words before the
// framework converts it (see checkFieldShapes); everything else is the
// framework's.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if req.Operation != logical.HelpOperation && len(req.Data) > 0 {
		if p := b.Backend.Route(req.Path); p != nil {
			if err := checkFieldShapes(p.Fields, req.Data); err != nil {
				return logical.ErrorResponse(err.Error()), nil
			}
		}
	}
	return b.Backend.HandleRequest(ctx, req)
}

// entryOperations is the operation map of a path whose entry is read,
// written and, if del is given, deleted; read and write answer with fields.
// Create and update share one handler; the path's existence check tells
// them apart so that policies can grant "create" without "update". Writes
// are forwarded from performance standbys, which cannot write storage.
func entryOperations(read, write, del framework.OperationFunc, fields map[string]*framework.FieldSchema) map[logical.Operation]framework.OperationHandler {
	ops := map[logical.Operation]framework.OperationHandler{
		logical.ReadOperation:   localOperation(read, "read", okResponse("OK", fields)),
		logical.CreateOperation: forwardedOperation(write, "write", okResponse("OK", fields)),
		logical.UpdateOperation: forwardedOperation(write, "write", okResponse("OK", fields)),
	}
	if del != nil {
		ops[logical.DeleteOperation] = forwardedOperation(del, "delete", noContentResponse())
	}
	return ops
}

// onlyOperation is the operation map of a path with a single operation that
// only reads, such as a list.
func onlyOperation(op logical.Operation, cb framework.OperationFunc, verb string, fields map[string]*framework.FieldSchema) map[logical.Operation]framework.OperationHandler {
	return map[logical.Operation]framework.OperationHandler{op: localOperation(cb, verb, okResponse("OK", fields))}
}

// localOperation is an operation any node can serve from its own storage.
func localOperation(cb framework.OperationFunc, verb string, responses map[int][]framework.Response) *framework.PathOperation {
	return &framework.PathOperation{
		Callback:     cb,
		DisplayAttrs: &framework.DisplayAttributes{OperationVerb: verb},
		Responses:    responses,
	}
}

// forwardedOperation is an operation that writes storage or calls a
// provider, so a performance standby forwards it to the active node and a
// performance secondary to its primary: neither may spend a refresh token
// it cannot store.
func forwardedOperation(cb framework.OperationFunc, verb string, responses map[int][]framework.Response) *framework.PathOperation {
	return &framework.PathOperation{
		Callback:                    cb,
		DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: verb},
		Responses:                   responses,
		ForwardPerformanceStandby:   true,
		ForwardPerformanceSecondary: true,
	}
}

const backendHelp = `
The connect secrets engine stores third-party API credentials the way Nango
does: integrations (an external API and how to authenticate to it) and
connections (one customer's credentials for one integration).

OAuth tokens are refreshed by the engine when a read finds them within
"refresh_margin" of expiry, so applications always read a working token:

    vault read -field=access_token connect/connections/<integration>/<connection_id>

Start with "vault path-help connect/integrations/<name>" and
"vault path-help connect/connections/<integration>/<connection_id>".
`

// replicationStateTTL is how long the replication state Vault gave is
// used before it is asked again.
const replicationStateTTL = time.Second

// replicationStateCache is Vault's system view with its replication state
// kept for replicationStateTTL. The framework asks for it on every
// operation (to forward writes from a performance standby or secondary),
// and over gRPC each question is a round trip from the plugin to Vault:
// a share of every read's and every proxied call's cost. The state changes
// only when a node changes its replication role, which Vault follows by
// setting its mounts up again; for at most the TTL after, a write that
// should have been forwarded runs here, where storage refuses it as it
// does a write racing the change itself.
type replicationStateCache struct {
	logical.SystemView
	// now is the wall clock (not the backend's, which tests move).
	now func() time.Time

	mu     sync.Mutex
	state  consts.ReplicationState
	expiry time.Time
}

// ReplicationState is Vault's, asked at most once per replicationStateTTL.
func (c *replicationStateCache) ReplicationState() consts.ReplicationState {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Before(c.expiry) {
		return c.state
	}
	state := c.SystemView.ReplicationState()
	if state == consts.ReplicationUnknown {
		// What the SDK answers when it could not ask: the next operation
		// asks again rather than take a node it knows nothing of as
		// writable for a second.
		return state
	}
	c.state, c.expiry = state, now.Add(replicationStateTTL)
	return c.state
}
