package connect

import (
	"context"
	"strings"
	"time"

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
				Description: "URL prefixes the browser may be sent to after the callback (authorize's return_url must start with one).",
			},
		},
		Operations: entryOperations(b.pathConfigRead, b.pathConfigWrite, nil),
		// The configuration always exists (with defaults), so writes are
		// updates and need only the "update" capability.
		ExistenceCheck:  func(context.Context, *logical.Request, *framework.FieldData) (bool, error) { return true, nil },
		HelpSynopsis:    "Configure the connect secrets engine.",
		HelpDescription: pathConfigHelp,
	}}
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: configResponse(cfg)}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	cfg, err := getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if v, ok := d.GetOk("refresh_margin"); ok {
		cfg.RefreshMargin = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("state_ttl"); ok {
		cfg.StateTTL = time.Duration(v.(int)) * time.Second
		if cfg.StateTTL < time.Minute || cfg.StateTTL > 24*time.Hour {
			return logical.ErrorResponse("state_ttl must be between 1m and 24h"), nil
		}
	}
	if v, ok := d.GetOk("redirect_url"); ok {
		cfg.RedirectURL = strings.TrimSpace(v.(string))
		if cfg.RedirectURL != "" {
			if err := validateAbsoluteURL("redirect_url", cfg.RedirectURL); err != nil {
				return logical.ErrorResponse(err.Error()), nil
			}
		}
	}
	if v, ok := d.GetOk("allowed_return_urls"); ok {
		for _, prefix := range v.([]string) {
			if err := validateAbsoluteURL("allowed_return_urls", prefix); err != nil {
				return logical.ErrorResponse(err.Error()), nil
			}
		}
		cfg.AllowedReturnURLs = v.([]string)
	}
	if err := putConfig(ctx, req.Storage, cfg); err != nil {
		return nil, err
	}
	return &logical.Response{Data: configResponse(cfg)}, nil
}

func configResponse(cfg *configEntry) map[string]any {
	return map[string]any{
		"refresh_margin":      int64(cfg.RefreshMargin.Seconds()),
		"redirect_url":        cfg.RedirectURL,
		"state_ttl":           int64(cfg.StateTTL.Seconds()),
		"allowed_return_urls": nonNilStrings(cfg.AllowedReturnURLs),
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
  allowed_return_urls  URL prefixes that authorize's return_url may start
                       with.
`
