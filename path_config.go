// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "config",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "configuration",
		},
		Fields: map[string]*framework.FieldSchema{
			"refresh_margin": {
				Type:        framework.TypeDurationSecond,
				Default:     int(defaultRefreshMargin.Seconds()),
				Description: "How long before expiry an OAuth token is refreshed, e.g. '15m'. Reads within this margin refresh first.",
			},
			"redirect_url": {
				Type:        framework.TypeString,
				Description: "External address of this mount's OAuth callback, e.g. https://vault.example.com/v1/connect/oauth/callback. Register it with each provider as the redirect URI. Required for authorize.",
			},
			"state_ttl": {
				Type:        framework.TypeDurationSecond,
				Default:     int(defaultStateTTL.Seconds()),
				Description: "How long an authorization URL stays usable, from authorize to callback. Default 10m.",
			},
			"allowed_return_urls": {
				Type:        framework.TypeCommaStringSlice,
				Description: "URLs the browser may be sent back to after the callback: authorize's return_url must have the scheme and host of one and a path at or under its path.",
			},
			"refresh_concurrency": {
				Type:        framework.TypeInt,
				Default:     defaultRefreshConcurrency,
				Description: "How many background refreshes may be in flight at once. Default 8.",
			},
			"idle_refresh_interval": {
				Type:        framework.TypeDurationSecond,
				Default:     int(defaultIdleRefreshInterval.Seconds()),
				Description: "Refresh connections whose refresh tokens expire at least this often, even when their access tokens do not expire, so the refresh tokens stay alive. Default 24h.",
			},
			"max_refresh_failures": {
				Type:        framework.TypeInt,
				Default:     defaultMaxRefreshFailures,
				Description: "Failed refreshes in a row after which a connection is 'exhausted' and the background stops trying. Default 4.",
			},
			"max_pending_authorizations": {
				Type:    framework.TypeInt,
				Default: defaultMaxPendingAuthorizations,
				Description: "How many authorizations of one integration may be pending (between authorize and the callback, for up to state_ttl) at once. " +
					"Beyond it authorize answers 429 until some complete or expire; re-authorizing a connection that has one pending replaces it and always works. Default 10000.",
			},
			"public_url": {
				Type:        framework.TypeString,
				Description: "External address of this mount, e.g. https://vault.example.com/v1/connect: sessions' connect_url is under it. Default: redirect_url without its oauth/callback.",
			},
			"max_sessions": {
				Type:        framework.TypeInt,
				Default:     defaultMaxSessions,
				Description: "How many connect sessions the mount may hold at once (until they expire or are revoked). Beyond it sessions answers 429. Default 10000.",
			},
			"oauth_completion": {
				Type:          framework.TypeString,
				Default:       completionApplication,
				AllowedValues: []any{completionApplication, completionCallback},
				Description: "Who stores the connection of an authorization started through authorize: 'application' (default) sends the browser back to authorize's return_url with a one-time connect_completion, and the application, once it has checked that the browser is its user's, calls connections/<integration>/<connection_id>/complete with it and its browser_binding; " +
					"'callback' stores it at the callback, which cannot tell whose browser came back (see docs/security.md). The connect page binds its own authorizations to the browser by a cookie, whatever this says.",
			},
			"max_pending_events": {
				Type:    framework.TypeInt,
				Default: defaultMaxPendingEvents,
				Description: "How many event deliveries may wait in the outbox for each webhook receiver (each receiver's own bound, so that one that is down does not hold up the others). " +
					"Beyond it a new event is not queued for that receiver: it is kept as dead for it (webhooks/<name>/dead), counted in status and logged. Default 100000.",
			},
		},
		Operations: entryOperations(b.pathConfigRead, b.pathConfigWrite, nil, configResponseFields()),
		// The configuration always exists (with defaults), so writes are
		// updates and need only the "update" capability.
		ExistenceCheck:  func(context.Context, *logical.Request, *framework.FieldData) (bool, error) { return true, nil },
		HelpSynopsis:    "Configure the connect secrets engine.",
		HelpDescription: pathConfigHelp,
	}}
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.config(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: configResponse(cfg)}, nil
}

// pathConfigWrite applies the request's fields to the mount's
// configuration, through the configWriter.
func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.configWriter.write(ctx, req.Storage, fieldValuesOf(d))
	if err != nil {
		return respondError(err)
	}
	return &logical.Response{Data: configResponse(cfg)}, nil
}

func configResponse(cfg *configEntry) map[string]any {
	return map[string]any{
		"refresh_margin":             int64(cfg.RefreshMargin.Seconds()),
		"redirect_url":               cfg.RedirectURL,
		"state_ttl":                  int64(cfg.StateTTL.Seconds()),
		"allowed_return_urls":        nonNilStrings(cfg.AllowedReturnURLs),
		"refresh_concurrency":        cfg.RefreshConcurrency,
		"idle_refresh_interval":      int64(cfg.IdleRefreshInterval.Seconds()),
		"max_refresh_failures":       cfg.MaxRefreshFailures,
		"max_pending_authorizations": cfg.MaxPendingAuthorizations,
		"public_url":                 cfg.PublicURL,
		"max_sessions":               cfg.MaxSessions,
		"max_pending_events":         cfg.MaxPendingEvents,
		"oauth_completion":           cfg.oauthCompletion(),
	}
}

const pathConfigHelp = `
Mount-wide settings. Durations are accepted as seconds or Go duration strings
("15m") and returned as seconds.

  refresh_margin       How long before expiry an OAuth token is refreshed on
                       read (default 15m). A larger margin refreshes earlier
                       and more often; 0 refreshes only expired tokens.
  redirect_url         The external address of this mount's oauth/callback,
                       registered with providers as the redirect URI.
  state_ttl            How long an authorization URL stays usable (default
                       10m).
  allowed_return_urls  URLs that authorize's return_url must be under: the
                       same scheme and host, and a path at or below the
                       allowed path at a '/' boundary.
  refresh_concurrency  Background refreshes in flight at once (default 8).
  idle_refresh_interval
                       How often connections whose refresh tokens expire are
                       refreshed even when idle (default 24h).
  max_refresh_failures Failed refreshes in a row before a connection is
                       "exhausted" and the background stops (default 4).
  max_pending_authorizations
                       Authorizations of one integration that may be pending
                       at once (default 10000). Authorize accepts ids of
                       connections that do not exist yet, and each pending
                       one is stored until its callback or state_ttl; beyond
                       the limit authorize answers 429 until some complete
                       or expire. Re-authorizing a connection replaces its
                       pending one and is never refused.
  public_url           This mount's external address, e.g.
                       https://vault.example.com/v1/connect: a session's
                       connect_url is its connect/ui. Default: redirect_url
                       without its oauth/callback.
  max_sessions         Connect sessions the mount may hold at once (default
                       10000); beyond it sessions answers 429.
  max_pending_events   Event deliveries that may wait in the outbox for
                       each webhook receiver (default 100000): each
                       receiver's own bound, so that one that is down does
                       not hold up the others. Beyond it a new event is kept
                       as dead for that receiver instead of queued, counted
                       in status and logged; see docs/events.md.
  oauth_completion     Who stores the connection of an authorization
                       started through authorize. "application" (default):
                       authorize requires return_url and browser_binding;
                       the callback exchanges the code, keeps the tokens
                       (at most state_ttl) and sends the browser to
                       return_url with connect_completion; the application
                       checks the browser is its user's and calls
                       connections/<integration>/<connection_id>/complete.
                       "callback": the callback stores the connection, and
                       cannot tell whose browser brought the code (the
                       account-linking attack of docs/security.md).
`

// configResponseFields are what a config read returns.
func configResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		"refresh_margin":             typed(framework.TypeDurationSecond, "Seconds before expiry that a token is refreshed."),
		"redirect_url":               str("External address of this mount's oauth/callback."),
		"state_ttl":                  typed(framework.TypeDurationSecond, "Seconds an authorization URL stays usable."),
		"allowed_return_urls":        typed(framework.TypeStringSlice, "URLs that authorize's return_url must be under."),
		"refresh_concurrency":        typed(framework.TypeInt, "Background refreshes in flight at once."),
		"idle_refresh_interval":      typed(framework.TypeDurationSecond, "Seconds after which an idle connection with an expiring refresh token is refreshed."),
		"max_refresh_failures":       typed(framework.TypeInt, "Failed refreshes in a row before a connection is exhausted."),
		"max_pending_authorizations": typed(framework.TypeInt, "Authorizations of one integration that may be pending at once."),
		"public_url":                 typed(framework.TypeString, "This mount's external address, where connect sessions' pages are."),
		"max_sessions":               typed(framework.TypeInt, "Connect sessions the mount may hold at once."),
		"max_pending_events":         typed(framework.TypeInt, "Event deliveries that may wait in the outbox for each webhook receiver."),
		"oauth_completion":           str("Who stores the connection of an authorization started through authorize: application or callback."),
	}
}
