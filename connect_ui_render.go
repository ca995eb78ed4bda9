// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// The connect page's HTML: one template, one stylesheet, no script and
// nothing loaded from elsewhere. The stylesheet is inline, allowed by its
// hash in the page's Content-Security-Policy.

//go:embed connect_ui/page.html.tmpl
var connectPageSource string

//go:embed connect_ui/style.css
var connectPageCSS string

var connectPageTemplate = template.Must(template.New("connect").Parse(connectPageSource))

// connectStyleHash is the CSP source of the inline stylesheet.
var connectStyleHash = func() string {
	sum := sha256.Sum256([]byte(connectPageCSS))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// connectPageView is what the template renders. Every string is escaped by
// html/template; nothing secret is ever put in one, except the session's
// own secret in the forms' hidden input, which the page's URL holds anyway.
type connectPageView struct {
	Title string
	// For is whom the session connects for (its display_name), Service
	// what (the integration's display name): on every page of a session,
	// so that a person sent someone else's link can see it is not theirs.
	For, Service string
	CSP          string
	CSS          template.CSS
	Alert        string
	Notice       string
	Choices      []connectChoice
	Form         *connectFormView
	ReturnURL    string
	ReturnText   string
	// RefreshTo is the content attribute of a meta refresh, built from a
	// URL escaped for HTML.
	RefreshTo template.HTMLAttr
}

// connectChoice is one integration in the page's list.
type connectChoice struct {
	Label, Mode, Href string
}

// connectFormView is one integration's form.
type connectFormView struct {
	Mode               string
	Method, Action     string
	Session            string
	Integration, Token string
	Step               string
	Error              string
	Inputs             []connectInputView
	Submit             string
	Back               string
}

// connectInputView is one input, with its label, hints and error.
type connectInputView struct {
	ID, Name, Label, Type, Pattern, Placeholder string
	// PatternHint is the input's title: what the browser says, in words,
	// of a value its pattern refuses.
	PatternHint                        string
	Prefix, Suffix, Hint, Value, Error string
	Autocomplete, DescribedBy          string
	Required                           bool
	Options                            []string
}

// modeLabel says in words how an integration connects.
func modeLabel(mode catalog.AuthMode) string {
	switch mode {
	case catalog.APIKey:
		return "Connect with an API key"
	case catalog.Basic:
		return "Connect with a user name and password"
	case catalog.Custom:
		return "Connect with your credentials"
	case catalog.OAuth2:
		return "Sign in with the provider (OAuth)"
	case catalog.OAuth2CC:
		return "Connect with client credentials"
	}
	return string(mode)
}

// integrationLabel is how the page names an integration: its name, and the
// catalog provider it is built on.
func integrationLabel(in *integrationEntry) string {
	return in.displayName()
}

// inputViews renders a form's inputs with the posted non-secret values and
// the errors of a failed post.
func inputViews(inputs []pageInput, kept, errs map[string]string) []connectInputView {
	out := make([]connectInputView, 0, len(inputs))
	for _, in := range inputs {
		f := in.Field
		v := connectInputView{
			ID: "f-" + strings.NewReplacer(".", "-").Replace(in.Name), Name: in.Name,
			Label: in.label(), Type: "text", Pattern: f.Pattern, PatternHint: f.PatternHint, Placeholder: f.Example,
			Prefix: f.Prefix, Suffix: f.Suffix, Hint: f.Description,
			Required: !f.Optional && f.DefaultValue == nil, Autocomplete: "off",
			Error: errs[in.Name],
		}
		if in.Secret {
			v.Type, v.Autocomplete = "password", "new-password"
		} else {
			v.Value = kept[in.Name]
		}
		if len(f.Enum) > 0 {
			v.Options = f.Enum
		} else if f.Type == "boolean" {
			v.Options = []string{"true", "false"}
		}
		// A screen reader reads the hints around the input with it: the
		// prefix and suffix ("https://", ".zendesk.com"), the description
		// and the error.
		var described []string
		if v.Prefix != "" {
			described = append(described, v.ID+"-prefix")
		}
		if v.Suffix != "" {
			described = append(described, v.ID+"-suffix")
		}
		if v.Hint != "" {
			described = append(described, v.ID+"-hint")
		}
		if v.Error != "" {
			described = append(described, v.ID+"-error")
		}
		v.DescribedBy = strings.Join(described, " ")
		out = append(out, v)
	}
	return out
}

// connectPageCSP is the page's policy: nothing may load, the one
// stylesheet by its hash, forms only to Vault itself. An OAuth form's
// policy also names the provider's authorization origin
// (connectPageCSPFor): its post is answered 303 to the provider, and a
// browser applies form-action to a submission's redirects too.
var connectPageCSP = strings.Join([]string{
	"default-src 'none'",
	"style-src " + connectStyleHash,
	"img-src 'none'",
	"base-uri 'none'",
	"form-action 'self'",
}, "; ")

// connectPageCSPFor is the policy of in's form page.
func connectPageCSPFor(in *integrationEntry) string {
	if in.AuthMode != catalog.OAuth2 {
		return connectPageCSP
	}
	sources := formActionSources(in.AuthURL, in.AllowedHosts)
	if len(sources) == 0 {
		return connectPageCSP
	}
	return connectPageCSP + " " + strings.Join(sources, " ")
}

// cspHostRe is what a host-source of the policy may be made of: nothing
// that could end the directive or start another.
var cspHostRe = regexp.MustCompile(`^(\*\.)?[a-z0-9.-]+(:[0-9]+)?$`)

// urlPlaceholderRe is a ${connectionConfig.<key>} placeholder.
var urlPlaceholderRe = regexp.MustCompile(`\$\{[^}]*\}`)

// formActionSources are the CSP sources of the origins an authorization
// URL template (alternatives "A || B" each) can have: its literal
// scheme://host[:port]; a leading placeholder label as a wildcard
// (https://*.okta.com); for a host that is otherwise a placeholder, the
// integration's allowed hosts.
func formActionSources(authURL string, allowedHosts []string) []string {
	var out []string
	add := func(src string) {
		if !slices.Contains(out, src) {
			out = append(out, src)
		}
	}
	for _, alt := range provider.Alternatives(authURL) {
		scheme, rest, ok := strings.Cut(alt, "://")
		scheme = strings.ToLower(scheme)
		if !ok || (scheme != "https" && scheme != "http") {
			continue
		}
		hostport := strings.ToLower(rest)
		if i := strings.IndexAny(hostport, "/?#"); i >= 0 {
			hostport = hostport[:i]
		}
		host := urlPlaceholderRe.ReplaceAllString(hostport, "*")
		if !strings.Contains(host, "*") || (strings.HasPrefix(host, "*.") && !strings.Contains(host[2:], "*")) {
			if cspHostRe.MatchString(host) {
				add(scheme + "://" + host)
			}
			continue
		}
		for _, h := range allowedHosts {
			if h = strings.ToLower(strings.TrimSpace(h)); cspHostRe.MatchString(h) {
				add(scheme + "://" + h)
			}
		}
	}
	return out
}

// renderConnectPage answers with the page and status. Cache-Control
// no-store keeps the session's forms out of caches; the headers Vault does
// not let a plugin set are the listener's (docs/deployment.md).
func renderConnectPage(status int, v connectPageView) *logical.Response {
	if v.CSP == "" {
		v.CSP = connectPageCSP
	}
	v.CSS = template.CSS(connectPageCSS)
	resp := rawHTMLResponse(status, connectPageTemplate, v, "The page could not be rendered.")
	resp.Data[logical.HTTPPragmaHeader] = "no-cache"
	return resp
}
