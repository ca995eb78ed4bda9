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
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// operationPrefix prefixes the OpenAPI operation ids, e.g. connect-read-connection.
const operationPrefix = "connect"

// providerTimeout bounds one request to a provider's token endpoint, so a
// hung provider cannot hold a connection's lock for ever.
const providerTimeout = 30 * time.Second

type backend struct {
	*framework.Backend

	// connLocks serialise the writers of one connection: refreshes, writes
	// and deletes. Readers of a fresh token take no lock.
	connLocks []*locksutil.LockEntry

	// integrationLocks serialise the read-modify-write of an integration's
	// partial update and its deletion. They are a separate set from
	// connLocks because a forced delete holds an integration's lock while it
	// takes its connections' locks: with one shared set, two keys hashing
	// to the same lock would deadlock. The order is always integration,
	// then connection.
	integrationLocks []*locksutil.LockEntry

	// stateLocks make taking a pending authorization atomic.
	stateLocks []*locksutil.LockEntry

	// httpClient talks to providers. Tests point integrations at loopback
	// servers; nothing here is test-specific.
	httpClient *http.Client

	// now is the clock, replaceable in tests.
	now func() time.Time

	// cache serves reads of connections and config from memory.
	cache *connectionCache
	// engine schedules background refreshes.
	engine *refreshEngine
}

// Factory is the plugin entry point Vault calls when the engine is mounted.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func newBackend() *backend {
	client := cleanhttp.DefaultPooledClient()
	client.Timeout = providerTimeout
	b := &backend{
		connLocks:        locksutil.CreateLocks(),
		integrationLocks: locksutil.CreateLocks(),
		stateLocks:       locksutil.CreateLocks(),
		httpClient:       client,
		now:              time.Now,
		cache:            newConnectionCache(),
		engine:           newRefreshEngine(),
	}

	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			// Providers redirect browsers, which hold no Vault token.
			Unauthenticated: []string{callbackPath},
			SealWrapStorage: []string{
				integrationPrefix,
				connectionPrefix,
				statePrefix,
			},
		},
		// The specific connection sub-paths come before the generic
		// connection path, and the catch-all that explains bad ids last.
		Paths: framework.PathAppend(
			pathConfig(b),
			pathStatus(b),
			pathProviders(b),
			pathIntegrations(b),
			pathOAuthCallback(b),
			pathConnectionDocuments(b),
			pathConnectionActions(b),
			pathConnectionAuthorize(b),
			pathConnections(b),
		),
		PeriodicFunc:   b.periodic,
		InitializeFunc: b.initialize,
		Invalidate:     b.invalidate,
		Clean:          b.clean,
	}
	return b
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

// entryOperations is the operation map of a path whose entry is read,
// written and, if del is given, deleted. Create and update share one handler;
// the path's existence check tells them apart so that policies can grant
// "create" without "update". Writes are forwarded from performance standbys,
// which cannot write storage.
func entryOperations(read, write, del framework.OperationFunc) map[logical.Operation]framework.OperationHandler {
	ops := map[logical.Operation]framework.OperationHandler{
		logical.ReadOperation:   localOperation(read, "read"),
		logical.CreateOperation: forwardedOperation(write, "write"),
		logical.UpdateOperation: forwardedOperation(write, "write"),
	}
	if del != nil {
		ops[logical.DeleteOperation] = forwardedOperation(del, "delete")
	}
	return ops
}

// onlyOperation is the operation map of a path with a single operation that
// only reads, such as a list.
func onlyOperation(op logical.Operation, cb framework.OperationFunc, verb string) map[logical.Operation]framework.OperationHandler {
	return map[logical.Operation]framework.OperationHandler{op: localOperation(cb, verb)}
}

// localOperation is an operation any node can serve from its own storage.
func localOperation(cb framework.OperationFunc, verb string) *framework.PathOperation {
	return &framework.PathOperation{
		Callback:     cb,
		DisplayAttrs: &framework.DisplayAttributes{OperationVerb: verb},
	}
}

// forwardedOperation is an operation that writes storage, so a performance
// standby forwards it to the active node.
func forwardedOperation(cb framework.OperationFunc, verb string) *framework.PathOperation {
	return &framework.PathOperation{
		Callback:                  cb,
		DisplayAttrs:              &framework.DisplayAttributes{OperationVerb: verb},
		ForwardPerformanceStandby: true,
	}
}

// connLock returns the lock that serialises writers of one connection.
func (b *backend) connLock(integration, id string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.connLocks, connectionKey(integration, id))
}

// stateLock returns the lock of one pending authorization.
func (b *backend) stateLock(stateHash string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.stateLocks, stateHash)
}

// integrationLock returns the lock that serialises writers of one
// integration.
func (b *backend) integrationLock(name string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.integrationLocks, integrationKey(name))
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
