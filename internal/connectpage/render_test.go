// SPDX-License-Identifier: MPL-2.0

package connectpage

import (
	"html"
	"strings"
	"testing"
)

func TestRenderConnectPageIsSelfContainedAndUncached(t *testing.T) {
	p := Render(200, View{
		Title:   "Connect",
		Choices: []Choice{{Label: `"><script>alert(1)</script>`, Mode: "API key", Href: "?x=1"}},
	})
	body := html.UnescapeString(string(p.Body))
	if strings.Contains(string(p.Body), "<script>") {
		t.Fatal("a label was rendered unescaped")
	}
	if !strings.Contains(body, "default-src 'none'") || !strings.Contains(body, styleHash) {
		t.Fatal("the page's Content-Security-Policy (with the stylesheet's hash) is missing")
	}
	if p.CacheControl != "no-store" {
		t.Fatalf("Cache-Control = %v", p.CacheControl)
	}
	for _, external := range []string{"http://", "https://", "<link", "<img", "@import"} {
		if strings.Contains(body, external) {
			t.Fatalf("the page refers to something outside itself (%s)", external)
		}
	}
}

func TestInputViewsDescribeEachInputByItsHints(t *testing.T) {
	f := FormFor(Integration{Name: "stripe", AuthMode: "API_KEY"})
	views := inputViews(f.Credentials, map[string]string{"cred.api_key": "never"}, map[string]string{"cred.api_key": "API key is required"})
	v := views[0]
	if v.Type != "password" || v.Value != "" {
		t.Fatalf("a secret input must be a password input with no value: %+v", v)
	}
	if !strings.Contains(v.DescribedBy, v.ID+"-error") {
		t.Fatalf("the error is not tied to its input: aria-describedby = %q", v.DescribedBy)
	}
}
