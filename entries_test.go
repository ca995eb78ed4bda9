// SPDX-License-Identifier: MPL-2.0

package connect

import "testing"

func TestSameClientComparesIDAndSecret(t *testing.T) {
	withClient := func(id, secret string) *connectionEntry {
		return &connectionEntry{AuthMode: authModeOAuth2CC, Credentials: credentials{ClientID: id, ClientSecret: secret}}
	}
	for _, tc := range []struct {
		a, b *connectionEntry
		same bool
	}{
		{withClient("", ""), withClient("", ""), true},
		{withClient("id", "s"), withClient("id", "s"), true},
		{withClient("id", "s"), withClient("id", "other"), false},
		{withClient("id", "s"), withClient("other", "s"), false},
		{withClient("id", "s"), withClient("", ""), false},
	} {
		if got := sameClient(tc.a, tc.b); got != tc.same {
			t.Errorf("sameClient(%+v, %+v) = %v", tc.a.Credentials, tc.b.Credentials, got)
		}
	}
}

func TestHasOwnClientOnlyForClientCredentialsWithAnID(t *testing.T) {
	var none *connectionEntry
	if none.hasOwnClient() {
		t.Error("nil entry has its own client")
	}
	if (&connectionEntry{AuthMode: authModeOAuth2, Credentials: credentials{ClientID: "id"}}).hasOwnClient() {
		t.Error("an OAUTH2 connection has its own client")
	}
	if (&connectionEntry{AuthMode: authModeOAuth2CC}).hasOwnClient() {
		t.Error("an OAUTH2_CC connection without client_id has its own client")
	}
	if !(&connectionEntry{AuthMode: authModeOAuth2CC, Credentials: credentials{ClientID: "id"}}).hasOwnClient() {
		t.Error("an OAUTH2_CC connection with client_id has no client of its own")
	}
}
