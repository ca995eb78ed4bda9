// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"reflect"
	"testing"
)

// One rule decides the config an authorization resolves its URLs with and
// stores: the one authorize was given, else the connection's as it is.
func TestStateConnectionConfigRule(t *testing.T) {
	given := map[string]any{"subdomain": "given"}
	own := map[string]any{"subdomain": "own"}
	conn := &connectionEntry{ConnectionConfig: own}
	for _, tc := range []struct {
		name string
		st   *oauthStateEntry
		c    *connectionEntry
		want map[string]any
	}{
		{"given, connection exists", &oauthStateEntry{ConnectionConfig: given, ReplaceConnectionConfig: true}, conn, given},
		{"given, no connection", &oauthStateEntry{ConnectionConfig: given, ReplaceConnectionConfig: true}, nil, given},
		{"not given, connection exists", &oauthStateEntry{}, conn, own},
		{"not given, no connection", &oauthStateEntry{}, nil, nil},
	} {
		if got := tc.st.connectionConfig(tc.c); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
