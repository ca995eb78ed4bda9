// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// Revoke sends one RFC 7009 revocation request for token, authenticating
// the client the way app.AuthStyle says (the header unless "params").
func (c *Client) Revoke(ctx context.Context, app OAuthApp, ep Endpoints, token, hint string) error {
	endpoint := ep.Revocation
	ctx, err := ep.guard(ctx, "revocation_url", endpoint)
	if err != nil {
		return err
	}
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	useParams := app.AuthStyle == "params"
	if useParams {
		form.Set("client_id", app.ClientID)
		form.Set("client_secret", app.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !useParams {
		// RFC 6749 2.3.1: the credentials are form-encoded, then Basic.
		req.SetBasicAuth(url.QueryEscape(app.ClientID), url.QueryEscape(app.ClientSecret))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &Error{cause: err}
	}
	body, err := readBounded(resp.Body)
	// RFC 7009 2.2: 200 whether or not the token was still valid.
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	if err != nil {
		return &Error{Status: resp.StatusCode, Description: err.Error()}
	}
	return errorFromResponse(resp.StatusCode, DecodeBody(body), append(app.secrets(), token))
}
