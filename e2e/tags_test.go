// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"reflect"
	"strings"
	"testing"
)

// TestTagsThroughTheCLI: tags written as the README's tour writes them
// (repeated key=value pairs), shown on reads, filtered on lists, refused
// with a 400 naming the field.
func TestTagsThroughTheCLI(t *testing.T) {
	s := vaultFor(t)
	s.mustCLI(t, "write", "connect/integrations/tags-stripe", "auth_mode=API_KEY")
	s.mustCLI(t, "write", "connect/connections/tags-stripe/org:123", "api_key=sk_tags_1",
		"tags=organization_id=org:123", "tags=end_user_email=ann@example.com")
	s.mustCLI(t, "write", "connect/connections/tags-stripe/other", "api_key=sk_tags_2", "tags=organization_id=org:456")
	noteSecrets("sk_tags_1", "sk_tags_2")

	got := data(t, s, "connect/connections/tags-stripe/org:123")["tags"]
	want := map[string]any{"organization_id": "org:123", "end_user_email": "ann@example.com"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tags = %v, want %v", got, want)
	}
	if out := s.mustCLI(t, "read", "connect/connections/tags-stripe/", "list=true", "tag=organization_id:org:123"); !strings.Contains(out, "org:123") || strings.Contains(out, "other") {
		t.Fatalf("filtered list:\n%s", out)
	}
	out := s.failCLI(t, "write", "connect/connections/tags-stripe/other", "tags=bad key=x")
	if !strings.Contains(out, "Code: 400") || !strings.Contains(out, "tags key") {
		t.Fatalf("bad tag: %s", out)
	}
	out = s.failCLI(t, "read", "connect/connections/tags-stripe/", "list=true", "tag=nocolon")
	if !strings.Contains(out, "Code: 400") || !strings.Contains(out, "tag must be key:value") {
		t.Fatalf("bad tag filter: %s", out)
	}

	// A policy that denies the tags parameter, as docs/events.md shows.
	policy := `path "connect/connections/tags-stripe/*" {
  capabilities = ["create", "update", "read"]
  denied_parameters = { "tags" = [] }
}`
	if out, err := s.cli([]byte(policy), "policy", "write", "tags-denied", "-"); err != nil {
		t.Fatalf("policy write: %v %s", err, out)
	}
	token := strings.TrimSpace(s.mustCLI(t, "token", "create", "-field=token", "-policy=tags-denied"))
	if status, body := s.rawAs(t, token, "POST", "connect/connections/tags-stripe/other", []byte(`{"tags": {"organization_id": "org:123"}}`)); status != 403 {
		t.Fatalf("a write of tags under a policy that denies them: %d %s", status, body)
	}
	if status, body := s.rawAs(t, token, "POST", "connect/connections/tags-stripe/other", []byte(`{"api_key": "sk_tags_3"}`)); status != 200 && status != 204 {
		t.Fatalf("a write without tags under that policy: %d %s", status, body)
	}
	noteSecrets("sk_tags_3")
}
