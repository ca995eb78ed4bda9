package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// statusFailedDependency is returned when the provider is why a request
// cannot be served: the token has expired and the provider will not renew it.
const statusFailedDependency = http.StatusFailedDependency // 424

// errNotRefreshable is a connection without the means to renew its token.
var errNotRefreshable = errors.New("the connection has no refresh token; write new tokens to it")

// refreshDue reports whether c's token should be renewed at now: it is an
// OAuth token that expires within margin, or a client-credentials
// connection that has no token yet.
func refreshDue(c *connectionEntry, margin time.Duration, now time.Time) bool {
	if !c.AuthMode.hasTokens() {
		return false
	}
	if c.Credentials.AccessToken == "" {
		return true
	}
	if c.Credentials.ExpiresAt.IsZero() {
		return false
	}
	return !now.Before(c.Credentials.ExpiresAt.Add(-margin))
}

// tokenExpired reports whether c's token can no longer be used at all.
func tokenExpired(c *connectionEntry, now time.Time) bool {
	if c.Credentials.AccessToken == "" {
		return true
	}
	return !c.Credentials.ExpiresAt.IsZero() && !now.Before(c.Credentials.ExpiresAt)
}

// readConnection returns a connection for a read, refreshing its token first
// when it is due. Warnings are for the response: a refresh failed but the old
// token still works. It returns nil, nil, nil when the connection does not
// exist.
func (b *backend) readConnection(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, []string, error) {
	c, cfg, err := loadConnectionAndConfig(ctx, s, integration, id)
	if err != nil || c == nil {
		return nil, nil, err
	}
	// The common case takes no lock: the token is fresh.
	if !refreshDue(c, cfg.RefreshMargin, b.now()) {
		return c, nil, nil
	}
	return b.refreshConnection(ctx, s, integration, id, false)
}

// refreshConnection renews a connection's token. It holds the connection's
// lock and re-reads the entry under it, so of many readers that find the same
// token due, one spends the refresh token and the others see its result
// (force=false: the re-read entry is no longer due). force=true refreshes
// whatever the expiry.
func (b *backend) refreshConnection(ctx context.Context, s logical.Storage, integration, id string, force bool) (*connectionEntry, []string, error) {
	// A provider that rotates refresh tokens has already spent the old one
	// when it answers, so the answer must be stored even if the caller has
	// gone away; only the provider timeout bounds the work.
	ctx = context.WithoutCancel(ctx)

	lock := b.connLock(integration, id)
	lock.Lock()
	defer lock.Unlock()

	c, cfg, err := loadConnectionAndConfig(ctx, s, integration, id)
	if err != nil || c == nil {
		return nil, nil, err
	}
	now := b.now()
	if !force && !refreshDue(c, cfg.RefreshMargin, now) {
		return c, nil, nil
	}
	if !c.AuthMode.hasTokens() {
		return nil, nil, logical.CodedError(http.StatusBadRequest, fmt.Sprintf("connection uses auth_mode %s, which has no token to refresh", c.AuthMode))
	}
	in, err := getIntegration(ctx, s, integration)
	if err != nil {
		return nil, nil, err
	}
	if in == nil {
		return nil, nil, fmt.Errorf("integration %q of connection %q no longer exists", integration, id)
	}

	res, eff, err := b.obtainToken(ctx, s, in, c)
	if err != nil {
		b.Logger().Warn("token refresh failed", "integration", integration, "connection_id", id, "error", err.Error())
		if !force && !tokenExpired(c, now) {
			return c, []string{fmt.Sprintf("token refresh failed, returning the current token until it expires at %s: %s", formatTime(c.Credentials.ExpiresAt), err)}, nil
		}
		// An explicit refresh of a connection that cannot be refreshed is
		// the caller's mistake; a read that finds an expired token is the
		// provider's side failing it.
		status := statusFailedDependency
		var badCfg *badConfigError
		if (force && errors.Is(err, errNotRefreshable)) || errors.As(err, &badCfg) {
			status = http.StatusBadRequest
		}
		return nil, nil, logical.CodedError(status, fmt.Sprintf("token of connection %q could not be refreshed: %s", id, err))
	}
	applyToken(c, eff, res, b.now())
	if err := putConnection(ctx, s, c); err != nil {
		return nil, nil, err
	}
	b.Logger().Debug("token refreshed", "integration", integration, "connection_id", id, "expires_at", formatTime(c.Credentials.ExpiresAt))
	return c, nil, nil
}

// loadConnectionAndConfig reads a connection and the refresh settings that
// apply to it; the connection is nil when it does not exist.
func loadConnectionAndConfig(ctx context.Context, s logical.Storage, integration, id string) (*connectionEntry, *configEntry, error) {
	c, err := getConnection(ctx, s, integration, id)
	if err != nil || c == nil {
		return nil, nil, err
	}
	cfg, err := getConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	return c, cfg, nil
}

// obtainToken asks the provider for a new token by the grant the auth mode
// uses. in is the stored integration; its provider is resolved here so that
// an operator's change to a provider applies to the next refresh.
func (b *backend) obtainToken(ctx context.Context, s logical.Storage, stored *integrationEntry, c *connectionEntry) (*tokenResult, *integrationEntry, error) {
	in, err := effectiveIntegration(ctx, s, stored)
	if err != nil {
		return nil, nil, err
	}
	ep, err := resolveEndpoints(in, c.ConnectionConfig)
	if err != nil {
		return nil, nil, err
	}
	var res *tokenResult
	switch c.AuthMode {
	case authModeOAuth2CC:
		scopes := c.Credentials.Scopes
		if len(scopes) == 0 {
			scopes = in.Scopes
		}
		res, err = b.clientCredentialsToken(ctx, in, ep, scopes)
	case authModeOAuth2:
		if c.Credentials.RefreshToken == "" {
			return nil, nil, errNotRefreshable
		}
		res, err = b.refreshToken(ctx, in, ep, c.Credentials.RefreshToken)
	case authModeApp:
		res, err = b.appInstallationToken(ctx, in, ep, c.ConnectionConfig)
	default:
		err = fmt.Errorf("auth_mode %s has no token grant", c.AuthMode)
	}
	return res, in, err
}

// applyToken stores a token response in c, and copies the members that in
// maps into the connection's config. A response without a refresh token
// keeps the old one (RFC 6749 section 6: the server may or may not issue a
// new one).
func applyToken(c *connectionEntry, in *integrationEntry, res *tokenResult, now time.Time) {
	tok := res.token
	cr := &c.Credentials
	cr.AccessToken = tok.AccessToken
	if tok.RefreshToken != "" {
		cr.RefreshToken = tok.RefreshToken
	}
	cr.TokenType = tok.Type()
	cr.ExpiresAt = tok.Expiry.UTC()
	if scopes := grantedScopes(res.raw); scopes != nil {
		cr.Scopes = scopes
	}
	c.RawTokenResponse = res.raw
	for key, member := range in.TokenResponseConfig {
		if v, ok := lookupMember(res.raw, member); ok {
			if c.ConnectionConfig == nil {
				c.ConnectionConfig = map[string]any{}
			}
			c.ConnectionConfig[key] = v
		}
	}
	c.LastRefreshedAt = now
	c.UpdatedAt = now
}
