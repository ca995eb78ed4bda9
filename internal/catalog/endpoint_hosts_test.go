// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"reflect"
	"testing"
)

// HostKeys are the config keys that choose where a URL sends secrets, and
// EndpointHosts each URL's host.
func TestHostKeysAndEndpointHosts(t *testing.T) {
	es := EndpointSettings{
		AuthURL:      "https://${connectionConfig.subdomain}.p.example/auth",
		TokenURL:     "https://p.example/token?tenant=${connectionConfig.tenant}",
		APIBaseURL:   "https://${connectionConfig.host}",
		AllowedHosts: []string{"*.p.example"},
	}
	if got, want := es.HostKeys(), []string{"host", "subdomain"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("HostKeys = %v, want %v", got, want)
	}
	hosts := es.EndpointHosts()
	if hosts["token_url"] != "https://p.example" || len(hosts) != 5 {
		t.Fatalf("EndpointHosts = %v", hosts)
	}
}

// A URL whose host a connection's config chooses needs allowed_hosts.
func TestValidateEgress(t *testing.T) {
	es := EndpointSettings{TokenURL: "https://${connectionConfig.host}/token"}
	if err := es.validateEgress(); err == nil {
		t.Fatal("a host wholly chosen by config passed without allowed_hosts")
	}
	es.AllowedHosts = []string{"*.p.example"}
	if err := es.validateEgress(); err != nil {
		t.Fatalf("with allowed_hosts: %v", err)
	}
	if err := (EndpointSettings{AllowedHosts: []string{"*"}}).validateEgress(); err == nil {
		t.Fatal("allowed_hosts * passed")
	}
}
