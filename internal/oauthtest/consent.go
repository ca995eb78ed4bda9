// SPDX-License-Identifier: MPL-2.0

package oauthtest

import (
	"html/template"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
)

// The consent page: what a person sees at a provider's authorize endpoint,
// so that the server can stand in for a provider on a laptop (make dev's
// OAuth provider, scripts/oauth-dev). The tests answer authorize without it.

const (
	consentAllow = "allow"
	consentDeny  = "deny"
)

// NewAt starts a server listening on addr (e.g. 127.0.0.1:8300, a fixed
// address that an integration's URLs can name), configured by configure
// before it serves. Call Close when done.
func NewAt(addr string, configure func(*Server)) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := newServer()
	s.Listener.Close()
	s.Listener = l
	if configure != nil {
		configure(s)
	}
	s.Start()
	return s, nil
}

// SetConsent makes authorize show a consent page a person answers with
// Allow or Deny, instead of redirecting back at once.
func (s *Server) SetConsent(on bool) { s.set(func() { s.consent = on }) }

// consentAnswer is the consent page's form: the authorization request
// again, with the person's decision. It is checked like the request itself
// (client, registered redirect URI, PKCE) before anything is redirected.
func (s *Server) consentAnswer(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	q := url.Values{}
	for k, v := range r.PostForm {
		q[k] = v
	}
	decision := q.Get("decision")
	q.Del("decision")
	if decision != consentAllow && decision != consentDeny {
		http.Error(w, "decision must be allow or deny", http.StatusBadRequest)
		return
	}
	s.answerAuthorize(w, r, q, decision)
}

// consentPage asks the person to allow or deny the client's request; the
// request's parameters ride along as hidden inputs.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorize {{.Client}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1.5rem;margin-right:.5rem}</style>
</head><body>
<h1>Local OAuth provider</h1>
<p>The application <strong>{{.Client}}</strong> asks for access to your account{{if .Scope}} with the scopes <code>{{.Scope}}</code>{{end}}.</p>
<p>It will send you back to <code>{{.Redirect}}</code>.</p>
<form method="post" action="/consent">
{{range .Params}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>
`))

type consentParam struct{ Name, Value string }

// writeConsentPage renders the consent page for the request q.
func writeConsentPage(w http.ResponseWriter, q url.Values) {
	var params []consentParam
	for _, k := range slices.Sorted(maps.Keys(q)) {
		params = append(params, consentParam{k, q.Get(k)})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline';")
	_ = consentPage.Execute(w, map[string]any{
		"Client": q.Get("client_id"), "Scope": q.Get("scope"), "Redirect": q.Get("redirect_uri"), "Params": params,
	})
}
