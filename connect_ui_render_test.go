// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"html"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestRenderConnectPageIsSelfContainedAndUncached(t *testing.T) {
	resp := renderConnectPage(200, connectPageView{
		Title:   "Connect",
		Choices: []connectChoice{{Label: `"><script>alert(1)</script>`, Mode: "API key", Href: "?x=1"}},
	})
	body := html.UnescapeString(string(resp.Data[logical.HTTPRawBody].([]byte)))
	if strings.Contains(string(resp.Data[logical.HTTPRawBody].([]byte)), "<script>") {
		t.Fatal("a label was rendered unescaped")
	}
	if !strings.Contains(body, "default-src 'none'") || !strings.Contains(body, connectStyleHash) {
		t.Fatal("the page's Content-Security-Policy (with the stylesheet's hash) is missing")
	}
	if resp.Data[logical.HTTPCacheControlHeader] != "no-store" {
		t.Fatalf("Cache-Control = %v", resp.Data[logical.HTTPCacheControlHeader])
	}
	for _, external := range []string{"http://", "https://", "<link", "<img", "@import"} {
		if strings.Contains(body, external) {
			t.Fatalf("the page refers to something outside itself (%s)", external)
		}
	}
}

func TestInputViewsDescribeEachInputByItsHints(t *testing.T) {
	f := formFor(&integrationEntry{Name: "stripe", AuthMode: "API_KEY"})
	views := inputViews(f.Credentials, map[string]string{"cred.api_key": "never"}, map[string]string{"cred.api_key": "API key is required"})
	v := views[0]
	if v.Type != "password" || v.Value != "" {
		t.Fatalf("a secret input must be a password input with no value: %+v", v)
	}
	if !strings.Contains(v.DescribedBy, v.ID+"-error") {
		t.Fatalf("the error is not tied to its input: aria-describedby = %q", v.DescribedBy)
	}
}
