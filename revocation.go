package connect

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
)

// revokeTokens revokes a connection's refresh and access tokens at its
// integration's revocation endpoint (RFC 7009), refresh token first: with
// most providers that also invalidates the access tokens issued from it.
// Failures are returned as warnings; a deletion goes ahead regardless, since
// keeping a connection the customer wants gone is worse than a token that
// lives out its expiry.
func (b *backend) revokeTokens(ctx context.Context, s logical.Storage, stored *integrationEntry, c *connectionEntry) []string {
	in, err := effectiveIntegration(ctx, s, stored)
	if err != nil {
		return []string{fmt.Sprintf("tokens not revoked: %s", err)}
	}
	if in.RevocationURL == "" {
		return nil
	}
	ep, err := resolveEndpoints(in, c.ConnectionConfig)
	if err != nil {
		return []string{fmt.Sprintf("tokens not revoked: %s", err)}
	}
	var warnings []string
	for _, t := range []struct{ token, hint string }{
		{c.Credentials.RefreshToken, "refresh_token"},
		{c.Credentials.AccessToken, "access_token"},
	} {
		if t.token == "" {
			continue
		}
		if err := b.revoke(ctx, in, ep.revocation, t.token, t.hint); err != nil {
			warnings = append(warnings, fmt.Sprintf("revoking the %s failed, the connection was deleted anyway: %s", t.hint, err))
		}
	}
	return warnings
}

// revoke sends one RFC 7009 revocation request, authenticating the client
// the way the integration's auth_style says (the header unless "params").
func (b *backend) revoke(ctx context.Context, in *integrationEntry, endpoint, token, hint string) error {
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	useParams := in.AuthStyle == "params"
	if useParams {
		form.Set("client_id", in.ClientID)
		form.Set("client_secret", in.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !useParams {
		// RFC 6749 2.3.1: the credentials are form-encoded, then Basic.
		req.SetBasicAuth(url.QueryEscape(in.ClientID), url.QueryEscape(in.ClientSecret))
	}
	resp, err := b.httpClient.Do(req)
	if err != nil {
		return &providerError{cause: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	// RFC 7009 2.2: 200 whether or not the token was still valid.
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	raw := decodeTokenBody(body)
	code, _ := raw["error"].(string)
	desc, _ := raw["error_description"].(string)
	return &providerError{Status: resp.StatusCode, Code: printableN(code, 100), Description: printableN(desc, 300)}
}
