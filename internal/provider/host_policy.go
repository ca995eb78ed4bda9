// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/safetext"
)

// The egress rule: a request that carries a secret (a client secret, a
// code, a refresh token, an app JWT) goes only to a host the operator
// approved. The approved hosts of an integration are
//
//   - the literal hosts of its URL templates,
//   - for a template whose host holds a placeholder inside a fixed
//     registrable suffix (${connectionConfig.subdomain}.zendesk.com), every
//     host under that suffix (*.zendesk.com), and
//   - the host patterns its provider or operator declares (allowed_hosts),
//     which a template whose host is wholly a placeholder requires.
//
// A connection's config therefore chooses among the operator's hosts, never
// beyond them. The Client checks every URL against the policy of the
// endpoints it was given before it sends, and every request again in its
// transport (egressGuard), which nothing it sends bypasses.

// HostPolicy is the set of hosts one integration's requests may go to. The
// zero value allows nothing.
type HostPolicy struct {
	exact    map[string]bool
	suffixes []string // "okta.com" for the pattern *.okta.com
}

// EgressError is a request, or a URL a connection's config makes, to a host
// outside the integration's policy. Host is for the caller's own checks;
// the message leaves it out.
type EgressError struct {
	Field string // the URL field, e.g. token_url
	Host  string
	Keys  []string // connection_config keys that chose the host, if known
}

// Error names the field and the keys, not the host: the host is made of
// config values, which may be marked secret and are never quoted back.
func (e *EgressError) Error() string {
	who := "the connection's config"
	if len(e.Keys) > 0 {
		who = "connection_config." + strings.Join(e.Keys, ", connection_config.")
	}
	return fmt.Sprintf("%s points %s at a host outside the integration's allowed hosts (the literal hosts of its URLs and its allowed_hosts)", who, e.Field)
}

// hostLabelRe is one DNS label.
var hostLabelRe = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$|^[a-z0-9]$`)

// normalizeHost lower-cases a host and drops a trailing dot, so that
// "API.Example.com." and "api.example.com" are one host.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// validHostName accepts a DNS name of whole labels or an IP literal.
func validHostName(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if !hostLabelRe.MatchString(label) {
			return false
		}
	}
	return true
}

// ValidateHostPatterns checks allowed_hosts: each entry is a host name or
// IP literal, or "*." and a suffix that is not itself a public suffix
// (*.com or *.co.uk would approve the whole internet).
func ValidateHostPatterns(field string, patterns []string) error {
	for _, raw := range patterns {
		p := normalizeHost(strings.TrimSpace(raw))
		suffix, wild := strings.CutPrefix(p, "*.")
		if !validHostName(suffix) || strings.Contains(suffix, "*") {
			return fmt.Errorf("%s: %q is neither a host name nor *.<domain>", field, safetext.Printable(raw, 100))
		}
		if wild {
			if net.ParseIP(suffix) != nil || !strings.Contains(suffix, ".") {
				return fmt.Errorf("%s: %q must name a domain under a public suffix, e.g. *.okta.com", field, safetext.Printable(raw, 100))
			}
			if coversPublicSuffix(suffix) {
				return fmt.Errorf("%s: %q covers a whole public suffix; name the provider's domain, e.g. *.okta.com", field, safetext.Printable(raw, 100))
			}
		}
	}
	return nil
}

// coversPublicSuffix reports whether *.suffix would match hosts of
// different owners under an ICANN public suffix: the suffix is one (com,
// co.uk), or sits under a wildcard rule (every <x>.kobe.jp is one), or
// ends in a number (a piece of an IP address).
func coversPublicSuffix(suffix string) bool {
	labels := strings.Split(suffix, ".")
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return true
	}
	probe := "probe." + suffix
	ps, icann := publicsuffix.PublicSuffix(probe)
	return icann && (ps == suffix || ps == probe)
}

// NewHostPolicy builds the policy of an integration from its URL templates
// and its declared allowed_hosts (already validated).
func NewHostPolicy(templates []string, declared []string) HostPolicy {
	p := HostPolicy{exact: map[string]bool{}}
	add := func(pattern string) {
		if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
			p.suffixes = append(p.suffixes, suffix)
		} else {
			p.exact[pattern] = true
		}
	}
	for _, d := range declared {
		add(normalizeHost(strings.TrimSpace(d)))
	}
	for _, tmpl := range templates {
		if tmpl == "" {
			continue
		}
		for _, alt := range Alternatives(tmpl) {
			if pattern, ok := impliedPattern(templateHost(alt)); ok {
				add(pattern)
			}
		}
	}
	sort.Strings(p.suffixes)
	return p
}

// Allows reports whether host (a URL's Hostname) is in the policy.
func (p HostPolicy) Allows(host string) bool {
	h := normalizeHost(host)
	if h == "" || strings.ContainsAny(h, "%[]") {
		return false // a zone id or an escape: not a host a pattern names
	}
	if p.exact[h] {
		return true
	}
	// A pattern names DNS hosts of whole labels: an IPv6 literal whose zone
	// id ends in ".okta.com" dials the IP.
	if !validHostName(h) || net.ParseIP(h) != nil {
		return false
	}
	for _, s := range p.suffixes {
		if prefix, ok := strings.CutSuffix(h, "."+s); ok && prefix != "" {
			return true
		}
	}
	return false
}

// String lists the policy's patterns, for messages.
func (p HostPolicy) String() string {
	var out []string
	for h := range p.exact {
		out = append(out, h)
	}
	for _, s := range p.suffixes {
		out = append(out, "*."+s)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// checkURL returns an EgressError when raw's host is outside the policy.
func (p HostPolicy) checkURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return &ConfigError{fmt.Sprintf("%s is not a URL", field)}
	}
	if !p.Allows(u.Hostname()) {
		return &EgressError{Field: field, Host: u.Hostname()}
	}
	return nil
}

// checkExpanded checks expanded, the URL tmpl made with cfg, against p;
// an EgressError names the config keys that chose its host.
func (p HostPolicy) checkExpanded(field, tmpl, expanded string, cfg map[string]any) error {
	err := p.checkURL(field, expanded)
	var ee *EgressError
	if alt, ok := chosenAlternative(tmpl, cfg); ok && errors.As(err, &ee) {
		ee.Keys = Placeholders(templateHost(alt))
	}
	return err
}

// templateHost is the host part of one template alternative, placeholders
// kept, port dropped: what a connection's config can change of where a
// request goes.
func templateHost(alt string) string {
	_, rest, ok := strings.Cut(alt, "://")
	if !ok {
		// A template that starts with a placeholder holding a whole URL: the
		// placeholder is the host.
		if loc := placeholderRe.FindStringIndex(alt); loc != nil && loc[0] == 0 {
			return alt[:loc[1]]
		}
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	if strings.HasPrefix(rest, "[") { // an IPv6 literal: the port follows "]"
		if i := strings.IndexByte(rest, ']'); i >= 0 {
			return rest[1:i]
		}
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i:], "}") {
		rest = rest[:i]
	}
	return rest // not lower-cased: placeholders are case-sensitive
}

// impliedPattern is the host pattern a template host stands for without a
// declaration: itself when literal; "*.<suffix>" when its placeholders sit
// left of a fixed suffix that is a registrable domain (not a public suffix,
// private ones such as github.io included: their subdomains belong to
// different owners). ok is false when the host needs allowed_hosts.
func impliedPattern(host string) (pattern string, ok bool) {
	locs := placeholderRe.FindAllStringIndex(host, -1)
	if len(locs) == 0 {
		return normalizeHost(host), host != ""
	}
	fixed := normalizeHost(host[locs[len(locs)-1][1]:])
	dot := strings.IndexByte(fixed, '.')
	if dot < 0 {
		return "", false
	}
	suffix := fixed[dot+1:]
	if !validHostName(suffix) || net.ParseIP(suffix) != nil || coversPublicSuffix(suffix) {
		return "", false
	}
	// Private public suffixes too (github.io, myshopify.com): each
	// subdomain has its own owner, so only a declaration names them.
	if ps, _ := publicsuffix.PublicSuffix("probe." + suffix); ps == suffix || ps == "probe."+suffix {
		return "", false
	}
	if _, err := publicsuffix.EffectiveTLDPlusOne(suffix); err != nil {
		return "", false
	}
	return "*." + suffix, true
}

// ValidateTemplateEgress refuses a URL template whose host a connection's
// config could set to anything: a host that is wholly a placeholder, or a
// placeholder under a public suffix, unless allowed_hosts declares where it
// may point. A placeholder in the port is refused outright.
func ValidateTemplateEgress(field, tmpl string, declared []string) error {
	if tmpl == "" {
		return nil
	}
	for _, alt := range Alternatives(tmpl) {
		if err := portPlaceholder(field, alt); err != nil {
			return err
		}
		host := templateHost(alt)
		if _, ok := impliedPattern(host); ok || len(declared) > 0 {
			continue
		}
		return fmt.Errorf("%s: the host %q is chosen by connection config, so allowed_hosts must say which hosts it may be (e.g. *.okta.com)",
			field, safetext.Printable(host, 120))
	}
	return nil
}

func portPlaceholder(field, alt string) error {
	_, rest, ok := strings.Cut(alt, "://")
	if !ok {
		return nil
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && strings.Contains(rest[i:], "${") {
		return fmt.Errorf("%s: a placeholder may not set the port", field)
	}
	return nil
}

// CheckConfigHosts expands each template with one connection's config and
// refuses the config when an expanded host is outside the policy, naming
// the keys that chose it. Templates whose placeholders the config does not
// fill are skipped: nothing is sent there.
func CheckConfigHosts(templates Endpoints, cfg map[string]any) error {
	clientAPIBase := templates.ClientAPIBase
	policy := templates.policy()
	for _, u := range templates.fields() {
		if u.tmpl == "" {
			continue
		}
		alt, ok := chosenAlternative(u.tmpl, cfg)
		if !ok {
			continue
		}
		whole := clientAPIBase && u.field == "api_base_url"
		expanded, err := expandOne(u.field, alt, cfg, whole)
		if err != nil {
			return err
		}
		if err := policy.checkExpanded(u.field, u.tmpl, expanded, cfg); err != nil {
			return err
		}
	}
	return nil
}

// WithPolicy returns templates with their host policy computed once, for a
// caller that expands them often (every connection read renders base_url).
// It does not make them sendable: only ResolveEndpoints does.
func (ep Endpoints) WithPolicy() Endpoints {
	p := ep.policy()
	ep.cachedPolicy = &p
	return ep
}

// ClientBaseURL expands the api_base_url of templates for a client, as
// ExpandClientURL does, and refuses a result outside the templates' host
// policy: an application sends its tokens to the base_url it is given.
func ClientBaseURL(templates Endpoints, cfg map[string]any) (string, error) {
	base, err := ExpandClientURL("api_base_url", templates.APIBase, cfg)
	if err != nil {
		return "", err
	}
	if err := templates.policy().checkExpanded("api_base_url", templates.APIBase, base, cfg); err != nil {
		return "", err
	}
	return base, nil
}

// chosenAlternative is the alternative expandAlternatives would use.
func chosenAlternative(tmpl string, cfg map[string]any) (string, bool) {
	for _, alt := range Alternatives(tmpl) {
		if missingPlaceholder(alt, cfg) == "" {
			return alt, true
		}
	}
	return "", false
}

// templateField is one URL field of Endpoints.
type templateField struct {
	field, tmpl string
	dst         *string
}

func (ep *Endpoints) fields() []templateField {
	return []templateField{
		{"auth_url", ep.Auth, &ep.Auth},
		{"token_url", ep.Token, &ep.Token},
		{"refresh_url", ep.Refresh, &ep.Refresh},
		{"revocation_url", ep.Revocation, &ep.Revocation},
		{"api_base_url", ep.APIBase, &ep.APIBase},
	}
}

// policy is the host policy of endpoint templates and their AllowedHosts.
func (ep Endpoints) policy() HostPolicy {
	if ep.cachedPolicy != nil {
		return *ep.cachedPolicy
	}
	return NewHostPolicy([]string{ep.Auth, ep.Token, ep.Refresh, ep.Revocation, ep.APIBase}, ep.AllowedHosts)
}

// policyKey carries the HostPolicy of one client call to its transport.
type policyKey struct{}

func withPolicy(ctx context.Context, p HostPolicy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

// egressGuard is the Client's transport: it refuses any request whose host
// is outside the policy of the call that made it, and any request made
// without one. Every secret-bearing request of the Client passes through
// it, whatever URL the caller passed.
type egressGuard struct{ next http.RoundTripper }

func (g egressGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	p, ok := req.Context().Value(policyKey{}).(HostPolicy)
	if !ok || !p.Allows(req.URL.Hostname()) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &EgressError{Field: "request", Host: req.URL.Hostname()}
	}
	next := g.next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of the transport the
// guard wraps, so that http.Client.CloseIdleConnections reaches them.
func (g egressGuard) CloseIdleConnections() {
	next := g.next
	if next == nil {
		next = http.DefaultTransport
	}
	if c, ok := next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// HostPlaceholders lists the connection config keys that appear in the host
// of any alternative of tmpl: the keys that choose where requests go.
func HostPlaceholders(tmpl string) []string {
	if tmpl == "" {
		return nil
	}
	var hosts []string
	for _, alt := range Alternatives(tmpl) {
		hosts = append(hosts, templateHost(alt))
	}
	return Placeholders(strings.Join(hosts, " "))
}

// PatternCovered reports whether every host pattern matches is allowed by
// patterns already: narrowing allowed_hosts (*.eu.okta.com under
// *.okta.com) reaches no new host.
func PatternCovered(pattern string, patterns []string) bool {
	p := NewHostPolicy(nil, patterns)
	suffix, wild := strings.CutPrefix(normalizeHost(strings.TrimSpace(pattern)), "*.")
	if !wild {
		return p.Allows(suffix)
	}
	for _, s := range p.suffixes {
		if suffix == s || strings.HasSuffix(suffix, "."+s) {
			return true
		}
	}
	return false
}
