// SPDX-License-Identifier: MPL-2.0

package oauthtest

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorizeQuery is a valid authorization request of s's client.
func authorizeQuery(s *Server, redirect string) url.Values {
	return url.Values{
		"client_id": {s.ClientID}, "redirect_uri": {redirect}, "response_type": {"code"}, "state": {"st-1"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}, "scope": {"read"},
	}
}

// With consent on, authorize shows a page a person answers; allowing
// redirects with a code, denying with access_denied, both with the state.
func TestConsentPage(t *testing.T) {
	s, err := NewAt("127.0.0.1:0", func(s *Server) { s.SetConsent(true) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const redirect = "http://127.0.0.1:1/callback"
	s.RegisterRedirectURI(redirect)
	q := authorizeQuery(s, redirect)

	resp, err := noRedirects.Get(s.AuthURL() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `value="allow"`) || !strings.Contains(page, `value="deny"`) || !strings.Contains(page, s.ClientID) {
		t.Fatalf("consent page %d:\n%s", resp.StatusCode, page)
	}
	if strings.Contains(page, "code=") || strings.Contains(page, s.ClientSecret) {
		t.Fatalf("the consent page gives a code or the secret away:\n%s", page)
	}

	for decision, want := range map[string]string{"allow": "code", "deny": "error"} {
		form := url.Values{}
		for k, v := range q {
			form[k] = v
		}
		form.Set("decision", decision)
		resp, err := noRedirects.PostForm(s.URL+"/consent", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), redirect+"?") || loc.Query().Get(want) == "" || loc.Query().Get("state") != "st-1" {
			t.Fatalf("%s: %d to %v", decision, resp.StatusCode, loc)
		}
		if decision == "deny" && loc.Query().Get("error") != "access_denied" {
			t.Fatalf("deny answered %v", loc.Query())
		}
	}
}

// A consent answer is checked as the authorization request was: an
// unregistered redirect URI is never redirected to.
func TestConsentRefusesAnUnregisteredRedirect(t *testing.T) {
	s, err := NewAt("127.0.0.1:0", func(s *Server) { s.SetConsent(true) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	form := authorizeQuery(s, "https://evil.example/cb")
	form.Set("decision", "allow")
	resp, err := noRedirects.PostForm(s.URL+"/consent", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
