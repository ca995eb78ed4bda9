// SPDX-License-Identifier: MPL-2.0

package connectpage

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html"
	"html/template"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// The page's HTML: one template, one stylesheet, no script and nothing
// loaded from elsewhere. The stylesheet is inline, allowed by its hash in
// the page's Content-Security-Policy.

//go:embed page.html.tmpl
var pageSource string

//go:embed style.css
var pageCSS string

var pageTemplate = template.Must(template.New("connect").Parse(pageSource))

// styleHash is the CSP source of the inline stylesheet.
var styleHash = func() string {
	sum := sha256.Sum256([]byte(pageCSS))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

// View is what the template renders. Every string is escaped by
// html/template; nothing secret is ever put in one, except the session's
// own secret in the forms' hidden input, which the page's URL holds anyway.
type View struct {
	Title string
	// For is whom the session connects for (its display_name), Service
	// what (the integration's display name): on every page of a session,
	// so that a person sent someone else's link can see it is not theirs.
	For, Service string
	CSP          string
	CSS          template.CSS
	Alert        string
	Notice       string
	Choices      []Choice
	Form         *FormView
	ReturnURL    string
	ReturnText   string
	// RefreshTo is the content attribute of a meta refresh, built from a
	// URL escaped for HTML.
	RefreshTo template.HTMLAttr
	// NoReferrer: the page's URL holds what no Referer may carry (the
	// callback's code and state). The page's own (same-origin) sends one,
	// since with no-referrer a browser's posts carry Origin "null".
	NoReferrer bool
}

// Choice is one integration in the page's list.
type Choice struct {
	Label, Mode, Href string
}

// FormView is one integration's form.
type FormView struct {
	Mode               string
	Method, Action     string
	Session            string
	Integration, Token string
	Step               string
	Error              string
	Inputs             []InputView
	Submit             string
	Back               string
}

// InputView is one input, with its label, hints and error.
type InputView struct {
	ID, Name, Label, Type, Pattern, Placeholder string
	// PatternHint is the input's title: what the browser says, in words,
	// of a value its pattern refuses.
	PatternHint                        string
	Prefix, Suffix, Hint, Value, Error string
	Autocomplete, DescribedBy          string
	Required                           bool
	Options                            []string
}

// ModeLabel says in words how an integration connects.
func ModeLabel(mode catalog.AuthMode) string {
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

// FormPage is what one integration's form page shows: whom the session
// connects for, the integration, the session's secret and the form's
// token (its hidden inputs), the link back to the list ("" when the
// session offers one integration), and after a failed post the kept
// non-secret values and the errors, by input and general.
type FormPage struct {
	For            string
	Integration    Integration
	Session, Token string
	Back           string
	Kept, Errors   map[string]string
	General        string
}

// Render renders the form page with status; a form the page cannot show
// is a 200 that says why.
func (p FormPage) Render(status int) Page {
	in := p.Integration
	f := FormFor(in)
	view := View{Title: "Connect " + in.DisplayName, For: p.For, Service: in.DisplayName, CSP: CSPFor(in)}
	if f.Unsupported != "" {
		view.Alert = f.Unsupported
		return Render(http.StatusOK, view)
	}
	form := &FormView{
		Mode:    ModeLabel(in.AuthMode),
		Session: p.Session, Integration: in.Name, Token: p.Token,
		Error:  p.General,
		Inputs: inputViews(f.inputs(), p.Kept, p.Errors),
		Submit: "Connect",
		Back:   p.Back,
	}
	if in.AuthMode == catalog.OAuth2 {
		form.Submit = "Continue to sign in"
	}
	view.Form = form
	return Render(status, view)
}

// inputViews renders a form's inputs with the posted non-secret values and
// the errors of a failed post.
func inputViews(inputs []Input, kept, errs map[string]string) []InputView {
	out := make([]InputView, 0, len(inputs))
	for _, in := range inputs {
		f := in.Field
		v := InputView{
			ID: "f-" + strings.NewReplacer(".", "-").Replace(in.Name), Name: in.Name,
			Label: in.Label(), Type: "text", Pattern: f.Pattern, PatternHint: f.PatternHint, Placeholder: f.Example,
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

// pageCSP is the page's policy: nothing may load, the one stylesheet by
// its hash, forms only to Vault itself. An OAuth form's policy also names
// the provider's authorization origin (CSPFor): its post is answered 303
// to the provider, and a browser applies form-action to a submission's
// redirects too.
var pageCSP = strings.Join([]string{
	"default-src 'none'",
	"style-src " + styleHash,
	"img-src 'none'",
	"base-uri 'none'",
	"form-action 'self'",
}, "; ")

// CSPFor is the policy of in's form page.
func CSPFor(in Integration) string {
	if in.AuthMode != catalog.OAuth2 {
		return pageCSP
	}
	sources := formActionSources(in.AuthURL, in.AllowedHosts)
	if len(sources) == 0 {
		return pageCSP
	}
	return pageCSP + " " + strings.Join(sources, " ")
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

// Page is a rendered page: its status, its body and the headers it is
// answered with. Headers holds what the plugin's answer adds beside the
// content type, cache and pragma headers (a redirect's Location, a
// Set-Cookie line).
type Page struct {
	Status       int
	Body         []byte
	ContentType  string
	CacheControl string
	Pragma       string
	Headers      map[string][]string
}

// Message is a page with a title and a message that alerts.
func Message(status int, title, msg string) Page {
	return Render(status, View{Title: title, Alert: msg})
}

// Render renders v with status. Cache-Control no-store keeps the
// session's forms out of caches; the headers Vault does not let a plugin
// set are the listener's (docs/deployment.md). Should the template fail
// (it cannot: it is fixed and its data strings), the answer is a fixed
// plain-text line, never a partly rendered page that could echo input.
func Render(status int, v View) Page {
	if v.CSP == "" {
		v.CSP = pageCSP
	}
	v.CSS = template.CSS(pageCSS)
	p := Page{Status: status, ContentType: "text/html; charset=utf-8", CacheControl: "no-store", Pragma: "no-cache"}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, v); err != nil {
		buf.Reset()
		buf.WriteString("The page could not be rendered.")
		p.ContentType = "text/plain; charset=utf-8"
	}
	p.Body = buf.Bytes()
	return p
}

// SeeOther is the callback's 303 to location with a body for a browser
// that was not sent on (Vault passes the Location header only where the
// mount allows it): the body refreshes to location and links to it with
// linkText, and sends no Referer.
func SeeOther(location, linkText string) Page {
	p := Render(http.StatusSeeOther, View{
		Title:      "Continue",
		Notice:     "Taking you back to the application.",
		RefreshTo:  template.HTMLAttr(`content="0; url=` + html.EscapeString(location) + `"`),
		ReturnURL:  location,
		ReturnText: linkText,
		NoReferrer: true,
	})
	p.Headers = map[string][]string{"Location": {location}}
	return p
}
