// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// Provider URLs may depend on the customer: Zendesk's token endpoint is
// https://${connectionConfig.subdomain}.zendesk.com/oauth/tokens. The
// placeholders are filled from the connection's configuration when the URL
// is used (authorize, callback, refresh, revocation).
var (
	placeholderRe = regexp.MustCompile(`\$\{connectionConfig\.([A-Za-z0-9_]+)\}`)
	// A value goes into a host name or a path segment. Anything that could
	// end the host or start a path, query or user-info (/ ? # @ :) would
	// let a connection's configuration send the client secret elsewhere.
	placeholderValueRe = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$`)
)

// ConfigError is a connection configuration that cannot be used with its
// provider: the caller's input to fix, never the provider's failure.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// ExpandURL fills the placeholders of tmpl from cfg; field names the URL in
// errors.
func ExpandURL(field, tmpl string, cfg map[string]any) (string, error) {
	var firstErr error
	out := placeholderRe.ReplaceAllStringFunc(tmpl, func(m string) string {
		key := placeholderRe.FindStringSubmatch(m)[1]
		raw, ok := cfg[key]
		if !ok || raw == nil || fmt.Sprint(raw) == "" {
			if firstErr == nil {
				firstErr = &ConfigError{fmt.Sprintf("connection_config.%s is required: %s uses it", key, field)}
			}
			return ""
		}
		val := fmt.Sprint(raw)
		if !placeholderValueRe.MatchString(val) {
			if firstErr == nil {
				firstErr = &ConfigError{fmt.Sprintf("connection_config.%s must be letters, digits, '.', '_' or '-' to be used in %s", key, field)}
			}
			return ""
		}
		return val
	})
	if firstErr != nil {
		return "", firstErr
	}
	return out, nil
}

// ValidateURLTemplate checks a URL that may hold placeholders: each must be
// well formed, and the URL must be absolute once they are filled.
func ValidateURLTemplate(field, tmpl string) error {
	stripped := placeholderRe.ReplaceAllString(tmpl, "")
	if strings.Contains(stripped, "${") {
		return fmt.Errorf("%s has a placeholder other than ${connectionConfig.<key>}", field)
	}
	return ValidateAbsoluteURL(field, placeholderRe.ReplaceAllString(tmpl, "x"))
}

// ValidateAbsoluteURL accepts http and https URLs with a host.
func ValidateAbsoluteURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%s must be an absolute http(s) URL, got %q", field, safetext.Printable(raw, 64))
	}
	if u.User != nil {
		return fmt.Errorf("%s must not carry user information (user@host)", field)
	}
	return nil
}

// HostOf returns the scheme and host a URL template sends requests to, with
// placeholders shown as {key}: what changes when a provider is pointed
// elsewhere. Alternatives and paths are not its concern.
func HostOf(tmpl string) string {
	if tmpl == "" {
		return ""
	}
	shown := placeholderRe.ReplaceAllString(tmpl, "{$1}")
	scheme, rest, ok := strings.Cut(shown, "://")
	if !ok {
		return strings.ToLower(shown)
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:] // user information is not where a request goes
	}
	return strings.ToLower(scheme + "://" + rest)
}

// ResolveEndpoints fills the placeholders of every template URL from one
// connection's configuration.
func ResolveEndpoints(templates Endpoints, cfg map[string]any) (Endpoints, error) {
	var ep Endpoints
	for _, u := range []struct {
		field, tmpl string
		dst         *string
	}{
		{"auth_url", templates.Auth, &ep.Auth},
		{"token_url", templates.Token, &ep.Token},
		{"refresh_url", templates.Refresh, &ep.Refresh},
		{"revocation_url", templates.Revocation, &ep.Revocation},
		{"api_base_url", templates.APIBase, &ep.APIBase},
	} {
		if u.tmpl == "" {
			continue
		}
		v, err := ExpandURL(u.field, u.tmpl, cfg)
		if err != nil {
			return Endpoints{}, err
		}
		*u.dst = v
	}
	return ep, nil
}
