// SPDX-License-Identifier: MPL-2.0

package connect

import "testing"

func TestValidateAbsoluteURL(t *testing.T) {
	for _, u := range []string{"https://p.example/token", "http://127.0.0.1:8080/t"} {
		if err := validateAbsoluteURL("token_url", u); err != nil {
			t.Errorf("%q rejected: %v", u, err)
		}
	}
	for _, u := range []string{"", "/token", "p.example/token", "ftp://p.example/t", "https://", "javascript:alert(1)"} {
		if err := validateAbsoluteURL("token_url", u); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
