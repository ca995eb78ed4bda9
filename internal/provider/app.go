// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

// App is a GitHub-style app: it signs a short-lived RS256 JWT with its
// private key and exchanges it at
// {api_base_url}/app/installations/{installation_id}/access_tokens for an
// installation token, which expires after an hour.
type App struct {
	AppID      string
	PrivateKey string // PEM
}

// appJWTLifetime stays under GitHub's ten-minute limit with room for clock
// skew, which is also why iat is set a minute in the past.
const appJWTLifetime = 9 * time.Minute

var installationIDRe = regexp.MustCompile(`^[0-9]{1,20}$`)

// ValidInstallationID reports whether id can go into the installation
// token URL: a number, nothing that could change the path.
func ValidInstallationID(id string) bool { return installationIDRe.MatchString(id) }

// ParseAppPrivateKey reads a PEM RSA key. Its error never quotes the input.
func ParseAppPrivateKey(pemText string) (*rsa.PrivateKey, error) {
	key, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(pemText))
	if err != nil {
		return nil, errors.New("private_key must be an RSA private key in PEM form (PKCS #1 or PKCS #8)")
	}
	return key, nil
}

// signJWT signs the JWT that authenticates the app itself.
func (a App) signJWT(now time.Time) (string, error) {
	key, err := ParseAppPrivateKey(a.PrivateKey)
	if err != nil {
		return "", err
	}
	claims := jwt.RegisteredClaims{
		Issuer:    a.AppID,
		IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(appJWTLifetime)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
}

// InstallationToken gets an installation token of one installation of app
// from the API at ep.APIBase.
func (c *Client) InstallationToken(ctx context.Context, app App, ep Endpoints, installationID string) (*Token, error) {
	if !ValidInstallationID(installationID) {
		return nil, &ConfigError{"connection installation_id must be a number"}
	}
	signed, err := app.signJWT(c.now())
	if err != nil {
		return nil, err
	}
	url := strings.TrimRight(ep.APIBase, "/") + "/app/installations/" + installationID + "/access_tokens"
	ctx, err = ep.guard(ctx, "api_base_url", url)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+signed)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &Error{cause: err}
	}
	body, err := readBounded(resp.Body)
	if err != nil {
		return nil, &Error{Status: resp.StatusCode, Description: err.Error()}
	}
	raw := DecodeBody(body)
	if resp.StatusCode/100 != 2 {
		// The JWT mints tokens for every installation of the app for
		// minutes: an answer that echoes it must not carry it further.
		pe := errorFromResponse(resp.StatusCode, raw, []string{signed})
		pe.RetryAfter = parseRetryAfter(resp.Header, c.now())
		return nil, pe
	}
	return appToken(raw)
}

// appToken reads {"token": ..., "expires_at": ...}.
func appToken(raw map[string]any) (*Token, error) {
	token, _ := raw["token"].(string)
	if token == "" {
		return nil, &Error{Description: "response has no token"}
	}
	tok := &oauth2.Token{AccessToken: token, TokenType: "Bearer"}
	if exp, ok := raw["expires_at"].(string); ok {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			return nil, &Error{Description: "response has an unreadable expires_at"}
		}
		tok.Expiry = t
	}
	return &Token{Token: tok, Raw: raw}, nil
}
