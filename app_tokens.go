package connect

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
)

// APP integrations authenticate as a GitHub-style app: the engine signs a
// short-lived RS256 JWT with the app's private key and exchanges it at
// {api_base_url}/app/installations/{installation_id}/access_tokens for an
// installation token, which expires after an hour and is renewed like an
// OAuth token. The installation id is the connection's
// connection_config.installation_id.

// appJWTLifetime stays under GitHub's ten-minute limit with room for clock
// skew, which is also why iat is set a minute in the past.
const appJWTLifetime = 9 * time.Minute

var installationIDRe = regexp.MustCompile(`^[0-9]{1,20}$`)

// parseAppPrivateKey reads a PEM RSA key. Its error never quotes the input.
func parseAppPrivateKey(pemText string) (*rsa.PrivateKey, error) {
	key, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(pemText))
	if err != nil {
		return nil, errors.New("private_key must be an RSA private key in PEM form (PKCS #1 or PKCS #8)")
	}
	return key, nil
}

// appJWT signs the JWT that authenticates the app itself.
func appJWT(in *integrationEntry, now time.Time) (string, error) {
	key, err := parseAppPrivateKey(in.PrivateKey)
	if err != nil {
		return "", err
	}
	claims := jwt.RegisteredClaims{
		Issuer:    in.AppID,
		IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(appJWTLifetime)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
}

// installationID reads and checks connection_config.installation_id; it is
// put into a URL path.
func installationID(cfg map[string]any) (string, error) {
	raw, ok := cfg["installation_id"]
	if !ok || raw == nil {
		return "", &badConfigError{"connection_config.installation_id is required for an APP connection"}
	}
	id := fmt.Sprint(raw)
	if !installationIDRe.MatchString(id) {
		return "", &badConfigError{"connection_config.installation_id must be a number"}
	}
	return id, nil
}

// appInstallationToken gets an installation token for one connection.
func (b *backend) appInstallationToken(ctx context.Context, in *integrationEntry, ep endpoints, cfg map[string]any) (*tokenResult, error) {
	id, err := installationID(cfg)
	if err != nil {
		return nil, err
	}
	signed, err := appJWT(in, b.now())
	if err != nil {
		return nil, err
	}
	url := strings.TrimRight(ep.apiBase, "/") + "/app/installations/" + id + "/access_tokens"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+signed)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := b.httpClient.Do(req)
	if err != nil {
		return nil, &providerError{cause: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponseBytes))
	if err != nil {
		return nil, &providerError{cause: err}
	}
	raw := decodeTokenBody(body)
	if resp.StatusCode/100 != 2 {
		msg, _ := raw["message"].(string)
		return nil, &providerError{Status: resp.StatusCode, Description: printableN(msg, 300)}
	}
	return appTokenResult(raw)
}

// appTokenResult reads {"token": ..., "expires_at": ...}.
func appTokenResult(raw map[string]any) (*tokenResult, error) {
	token, _ := raw["token"].(string)
	if token == "" {
		return nil, &providerError{Description: "response has no token"}
	}
	tok := &oauth2.Token{AccessToken: token, TokenType: "Bearer"}
	if exp, ok := raw["expires_at"].(string); ok {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			return nil, &providerError{Description: "response has an unreadable expires_at"}
		}
		tok.Expiry = t
	}
	return &tokenResult{token: tok, raw: raw}, nil
}
