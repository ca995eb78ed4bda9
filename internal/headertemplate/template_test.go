// SPDX-License-Identifier: MPL-2.0

package headertemplate

import (
	"strings"
	"testing"
)

func lookupFrom(m map[string]string) Lookup {
	return func(name string) (string, bool) { v, ok := m[name]; return v, ok }
}

func TestRender(t *testing.T) {
	vars := lookupFrom(map[string]string{
		"accessToken": "at-1", "apiKey": "k-1", "username": "u", "password": "p:w",
		"connectionConfig.account": "acme", "credentials.token": "ct",
	})
	for tmpl, want := range map[string]string{
		"Bearer ${accessToken}":                            "Bearer at-1",
		"Basic ${base64(${apiKey}:)}":                      "Basic ay0xOg==", // "k-1:"
		"Basic ${base64(${username}:${password})}":         "Basic dTpwOnc=", // "u:p:w"
		"${connectionConfig.account}/${credentials.token}": "acme/ct",
		"x ${base64(a${base64(b)}c)} y":                    "x YVlnPT1j y", // base64("a"+base64("b")+"c"), base64("b") = "Yg=="
		"plain":                                            "plain",
		"a)}b":                                             "a)}b",
	} {
		tp, err := Parse(tmpl)
		if err != nil {
			t.Errorf("Parse(%q): %v", tmpl, err)
			continue
		}
		got, err := tp.Render(vars)
		if err != nil || got != want {
			t.Errorf("Render(%q) = %q, %v; want %q", tmpl, got, err, want)
		}
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	for _, bad := range []string{"${accessToken", "${base64(${apiKey}:}", "${secret}", "${connectionConfig.}", "${base64(x", "${env.HOME}",
		"${base64(${base64(${base64(${base64(${base64(x)})})})})}"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestRenderNamesAMissingVariable(t *testing.T) {
	tp, err := Parse("Bearer ${credentials.token}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Render(lookupFrom(nil)); err == nil || !strings.Contains(err.Error(), "credentials.token") {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Join(tp.Variables(), ","); got != "credentials.token" {
		t.Fatalf("Variables = %q", got)
	}
}
