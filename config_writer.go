// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// configWriter writes the mount's configuration: the fields a write gives
// (fieldValues) checked one by one and applied over the configuration as
// it is, saved by the mount config store.
type configWriter struct {
	mountConfig *mountConfigStore
}

// write applies the fields f gives to the mount's configuration and saves
// it. A field out of its bounds is a userError that names it, and nothing
// is saved.
func (w *configWriter) write(ctx context.Context, s logical.Storage, f fieldValues) (*configEntry, error) {
	cfg, err := w.mountConfig.get(ctx, s)
	if err != nil {
		return nil, err
	}
	if err := applyConfigFields(cfg, f); err != nil {
		return nil, err
	}
	if err := w.mountConfig.save(ctx, s, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// applyConfigFields sets on cfg the fields f gives, each checked; the
// first that is out of its bounds is a userError.
func applyConfigFields(cfg *configEntry, f fieldValues) error {
	refuse := func(format string, args ...any) error { return &userError{fmt.Sprintf(format, args...)} }
	if v, ok := f.Ints["refresh_concurrency"]; ok {
		if cfg.RefreshConcurrency = v; cfg.RefreshConcurrency < 1 || cfg.RefreshConcurrency > 256 {
			return refuse("refresh_concurrency must be between 1 and 256")
		}
	}
	if v, ok := f.Ints["max_refresh_failures"]; ok {
		if cfg.MaxRefreshFailures = v; cfg.MaxRefreshFailures < 1 {
			return refuse("max_refresh_failures must be at least 1")
		}
	}
	if v, ok := f.Ints["max_pending_authorizations"]; ok {
		if cfg.MaxPendingAuthorizations = v; cfg.MaxPendingAuthorizations < 1 || cfg.MaxPendingAuthorizations > maxMaxPendingAuthorizations {
			return refuse("max_pending_authorizations must be between 1 and %d", maxMaxPendingAuthorizations)
		}
	}
	if v, ok := f.Ints["max_sessions"]; ok {
		if cfg.MaxSessions = v; cfg.MaxSessions < 1 || cfg.MaxSessions > maxMaxPendingAuthorizations {
			return refuse("max_sessions must be between 1 and %d", maxMaxPendingAuthorizations)
		}
	}
	if v, ok := f.Strings["public_url"]; ok {
		cfg.PublicURL = strings.TrimSuffix(strings.TrimSpace(v), "/")
		if cfg.PublicURL != "" {
			if err := provider.ValidateAbsoluteURL("public_url", cfg.PublicURL); err != nil {
				return badInput(err)
			}
		}
	}
	if v, ok := f.Ints["max_pending_events"]; ok {
		if cfg.MaxPendingEvents = v; cfg.MaxPendingEvents < 1 || cfg.MaxPendingEvents > maxMaxPendingEvents {
			return refuse("max_pending_events must be between 1 and %d", maxMaxPendingEvents)
		}
	}
	if v, ok := f.Strings["oauth_completion"]; ok {
		switch v {
		case completionApplication, completionCallback:
			cfg.OAuthCompletion = v
		default:
			return refuse("oauth_completion must be %q or %q", completionApplication, completionCallback)
		}
	}
	if v, ok := f.Ints["idle_refresh_interval"]; ok {
		cfg.IdleRefreshInterval = time.Duration(v) * time.Second
	}
	if v, ok := f.Ints["refresh_margin"]; ok {
		cfg.RefreshMargin = time.Duration(v) * time.Second
	}
	if v, ok := f.Ints["state_ttl"]; ok {
		cfg.StateTTL = time.Duration(v) * time.Second
		if cfg.StateTTL < time.Minute || cfg.StateTTL > 24*time.Hour {
			return refuse("state_ttl must be between 1m and 24h")
		}
	}
	if v, ok := f.Strings["redirect_url"]; ok {
		cfg.RedirectURL = strings.TrimSpace(v)
		if cfg.RedirectURL != "" {
			if err := provider.ValidateAbsoluteURL("redirect_url", cfg.RedirectURL); err != nil {
				return badInput(err)
			}
		}
	}
	if v, ok := f.Lists["allowed_return_urls"]; ok {
		for _, prefix := range v {
			if err := provider.ValidateAbsoluteURL("allowed_return_urls", prefix); err != nil {
				return badInput(err)
			}
		}
		cfg.AllowedReturnURLs = v
	}
	return nil
}
