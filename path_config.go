package connect

import (
	"context"
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
	if err := putConfig(ctx, req.Storage, cfg); err != nil {
		return nil, err
	}
	return &logical.Response{Data: configResponse(cfg)}, nil
}

func configResponse(cfg *configEntry) map[string]any {
	return map[string]any{
		"refresh_margin": int64(cfg.RefreshMargin.Seconds()),
	}
}

const pathConfigHelp = `
Mount-wide settings. Durations are accepted as seconds or Go duration strings
("15m") and returned as seconds.

  refresh_margin  How long before expiry an OAuth token is refreshed on read
                  (default 15m). A larger margin refreshes earlier and more
                  often; a margin of 0 refreshes only expired tokens.
`
