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
	// A key is what connection_config_schema and callback_config name: Zoho
	// returns accounts-server on its callback.
	placeholderRe = regexp.MustCompile(`\$\{connectionConfig\.([A-Za-z0-9_.-]{1,64})\}`)
	// A value in a host name or a path segment. Anything that could end
	// the host or start a path, query or user-info (/ ? # @ :) would let a
	// connection's configuration send the client secret elsewhere.
	placeholderValueRe = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$`)
)

// ConfigError is a connection configuration that cannot be used with its
// provider: the caller's input to fix, never the provider's failure.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// alternativeSep separates the alternatives of a URL field: "A || B" uses
// the first alternative whose placeholders the connection's config fills,
// e.g. a customer's Salesforce My Domain, else login.salesforce.com.
const alternativeSep = "||"

// Alternatives splits a URL field into its alternatives, trimmed.
func Alternatives(tmpl string) []string {
	parts := strings.Split(tmpl, alternativeSep)
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// ExpandURL fills the placeholders of tmpl from cfg; field names the URL in
// errors. A value in the host or path must be a host label or path segment
// (see placeholderValueRe), one in the query string is escaped (see
// urlPart): tmpl is a URL the plugin sends secrets to.
func ExpandURL(field, tmpl string, cfg map[string]any) (string, error) {
	return expandAlternatives(field, tmpl, cfg, false)
}

// ExpandClientURL is ExpandURL for a URL only returned to clients (the
// api_base_url of modes other than APP): a placeholder may also be filled
// with a whole absolute https URL, e.g. Salesforce's instance_url.
func ExpandClientURL(field, tmpl string, cfg map[string]any) (string, error) {
	return expandAlternatives(field, tmpl, cfg, true)
}

// expandAlternatives expands the first alternative whose placeholders are
// all present in cfg. A present value that is not allowed is an error, not
// a reason to fall back: the customer meant that host.
func expandAlternatives(field, tmpl string, cfg map[string]any, wholeURLs bool) (string, error) {
	alts := Alternatives(tmpl)
	for _, alt := range alts {
		if missingPlaceholder(alt, cfg) == "" {
			return expandOne(field, alt, cfg, wholeURLs)
		}
	}
	key := missingPlaceholder(alts[0], cfg)
	return "", &ConfigError{fmt.Sprintf("connection_config.%s is required: %s uses it", key, field)}
}

// missingPlaceholder returns the first key tmpl uses that cfg lacks (or has
// empty), "" when there is none.
func missingPlaceholder(tmpl string, cfg map[string]any) string {
	for _, m := range placeholderRe.FindAllStringSubmatch(tmpl, -1) {
		if raw, ok := cfg[m[1]]; !ok || raw == nil || fmt.Sprint(raw) == "" {
			return m[1]
		}
	}
	return ""
}

// expandOne fills the placeholders of one alternative, each value checked
// by the rule of where it sits (see urlPart).
func expandOne(field, tmpl string, cfg map[string]any, wholeURLs bool) (string, error) {
	var b strings.Builder
	last := 0
	parts := placeholderParts(tmpl)
	for i, loc := range placeholderRe.FindAllStringSubmatchIndex(tmpl, -1) {
		key := tmpl[loc[2]:loc[3]]
		val, err := placeholderValue(field, key, fmt.Sprint(cfg[key]), parts[i], wholeURLs)
		if err != nil {
			return "", err
		}
		b.WriteString(tmpl[last:loc[0]])
		b.WriteString(val)
		last = loc[1]
	}
	b.WriteString(tmpl[last:])
	return b.String(), nil
}

// placeholderValue is val as it goes into part of a URL, or a ConfigError
// naming key (never quoting val, which may be secret).
func placeholderValue(field, key, val string, part urlPart, wholeURLs bool) (string, error) {
	switch {
	case part == partQuery:
		if err := checkParamValue(field, key, val); err != nil {
			return "", err
		}
		// Escaped, a value cannot add a parameter or end the query.
		return url.QueryEscape(val), nil
	case (part == partHost || part == partPath) && placeholderValueRe.MatchString(val):
		return val, nil
	case part == partWholeURL && wholeURLs && isPlainHTTPSURL(val):
		return strings.TrimSuffix(val, "/"), nil
	case part == partWholeURL && placeholderValueRe.MatchString(val):
		return "", &ConfigError{fmt.Sprintf("connection_config.%s must be a whole https URL to be used in %s", key, field)}
	case part == partHost || part == partPath || part == partWholeURL:
		return "", &ConfigError{fmt.Sprintf("connection_config.%s must be letters, digits, '.', '_' or '-' to be used in %s", key, field)}
	}
	return "", &ConfigError{fmt.Sprintf("%s has a placeholder in its %s, which is not filled", field, part)}
}

// isPlainHTTPSURL accepts an absolute https URL with a host name and no
// user information, query, fragment or port (a placeholder does not set
// the port), and no IP literal or escape in the host (a zone id can make an
// IPv6 literal end in any domain).
func isPlainHTTPSURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil && u.Port() == "" &&
		u.RawQuery == "" && u.Fragment == "" && !strings.ContainsAny(raw, " \\") && !strings.ContainsAny(u.Host, "[]%")
}

// ValidateURLTemplate checks a URL field that may hold placeholders and
// alternatives: each alternative must be well formed and absolute once its
// placeholders are filled.
func ValidateURLTemplate(field, tmpl string) error {
	return validateAlternatives(field, tmpl, false)
}

// ValidateClientURLTemplate is ValidateURLTemplate for a URL only returned
// to clients, where an alternative may start with a placeholder that holds
// a whole URL.
func ValidateClientURLTemplate(field, tmpl string) error {
	return validateAlternatives(field, tmpl, true)
}

func validateAlternatives(field, tmpl string, wholeURLs bool) error {
	for _, alt := range Alternatives(tmpl) {
		if alt == "" {
			return fmt.Errorf("%s has an empty alternative", field)
		}
		if err := foreignPlaceholder(field, alt); err != nil {
			return err
		}
		if err := checkPlaceholderParts(field, alt, wholeURLs); err != nil {
			return err
		}
		sample := alt
		if loc := placeholderRe.FindStringIndex(alt); wholeURLs && loc != nil && loc[0] == 0 {
			sample = "https://x.example" + alt[loc[1]:]
		}
		if err := ValidateAbsoluteURL(field, placeholderRe.ReplaceAllString(sample, "x")); err != nil {
			return err
		}
	}
	return nil
}

// foreignPlaceholder refuses a ${…} in tmpl other than
// ${connectionConfig.<key>}, naming what kind it is: catalogs also use
// credentials, earlier steps' answers and keys this parser does not take.
func foreignPlaceholder(field, tmpl string) error {
	rest := placeholderRe.ReplaceAllString(tmpl, "")
	i := strings.Index(rest, "${")
	if i < 0 {
		return nil
	}
	inner, _, closed := strings.Cut(rest[i+2:], "}")
	if !closed {
		return fmt.Errorf("%s has a ${ that is not closed", field)
	}
	shown := safetext.Printable(inner, 64)
	switch {
	case isCredentialName(inner):
		return fmt.Errorf("%s: ${%s} would put a credential into it; only ${connectionConfig.<key>} placeholders are filled here", field, shown)
	case strings.HasPrefix(inner, "connectionConfig."):
		return fmt.Errorf("%s: ${%s} does not name a connection config key: a key is 1 to 64 letters, digits, '_', '.' or '-'", field, shown)
	}
	return fmt.Errorf("%s: ${%s} is not a placeholder this field takes; use ${connectionConfig.<key>}", field, shown)
}

// isCredentialName reports whether a placeholder name stands for a
// credential (as in request_headers), which never goes into a URL or a
// token parameter.
func isCredentialName(name string) bool {
	switch name {
	case "apiKey", "accessToken", "refreshToken", "username", "password", "clientSecret":
		return true
	}
	return strings.HasPrefix(name, "credentials.") || strings.HasPrefix(name, "connectionCredentials.")
}

// Placeholders lists the connection config keys a URL field uses, in order
// of first use, over all its alternatives.
func Placeholders(tmpl string) []string {
	var keys []string
	seen := map[string]bool{}
	for _, m := range placeholderRe.FindAllStringSubmatch(tmpl, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			keys = append(keys, m[1])
		}
	}
	return keys
}

// RequiredPlaceholders lists the keys a URL field cannot do without: those
// of its last alternative (the fallback), which every connection must fill.
func RequiredPlaceholders(tmpl string) []string {
	if tmpl == "" {
		return nil
	}
	alts := Alternatives(tmpl)
	return Placeholders(alts[len(alts)-1])
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
// placeholders shown as {key}, and alternatives joined by " || ": what
// changes when a provider is pointed elsewhere. Paths are not its concern.
func HostOf(tmpl string) string {
	if tmpl == "" {
		return ""
	}
	alts := Alternatives(tmpl)
	hosts := make([]string, len(alts))
	for i, alt := range alts {
		hosts[i] = hostOfOne(alt)
	}
	return strings.Join(hosts, " || ")
}

func hostOfOne(tmpl string) string {
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
// connection's configuration and attaches the integration's host policy
// (see HostPolicy): the Client sends nothing through Endpoints that did not
// come from here, and nothing to a host outside that policy.
func ResolveEndpoints(templates Endpoints, cfg map[string]any) (Endpoints, error) {
	policy := templates.policy()
	ep := Endpoints{AllowedHosts: templates.AllowedHosts, ClientAPIBase: templates.ClientAPIBase, allowed: &policy}
	resolved := ep.fields()
	for i, u := range templates.fields() {
		if u.tmpl == "" || (u.field == "api_base_url" && templates.ClientAPIBase) {
			continue
		}
		v, err := ExpandURL(u.field, u.tmpl, cfg)
		if err != nil {
			return Endpoints{}, err
		}
		if err := policy.checkExpanded(u.field, u.tmpl, v, cfg); err != nil {
			return Endpoints{}, err
		}
		*resolved[i].dst = v
	}
	return ep, nil
}
