// SPDX-License-Identifier: MPL-2.0

package connectpage

import (
	"strings"
	"testing"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
)

func TestFormForAnAPIKeyIntegration(t *testing.T) {
	in := Integration{Name: "desk", AuthMode: catalog.APIKey}
	in.ConnectionConfigSchema = catalog.ValueSchema{
		"subdomain":  {Title: "Subdomain", Pattern: "[a-z0-9-]+"},
		"signingKey": {Title: "Signing key", Secret: true, Optional: true},
	}
	f := FormFor(in)
	if f.Unsupported != "" || len(f.Credentials) != 1 || len(f.Config) != 2 {
		t.Fatalf("form = %+v", f)
	}
	key := f.Credentials[0]
	if key.Name != "cred.api_key" || key.Label() != "API key" || !key.Secret {
		t.Fatalf("the API key input = %+v: want cred.api_key, labelled API key, secret", key)
	}
	for _, c := range f.Config {
		if c.Secret != (c.Key == "signingKey") {
			t.Fatalf("config input %s: secret = %v", c.Key, c.Secret)
		}
	}
}

func TestFormForRefusesWhatThePageCannotConnect(t *testing.T) {
	for _, in := range []Integration{
		{Name: "gh-app", AuthMode: catalog.App},
		{Name: "legacy", AuthMode: catalog.Custom}, // no credentials_schema: nothing to ask for
	} {
		if f := FormFor(in); f.Unsupported == "" {
			t.Errorf("%s (%s): the page offers a form", in.Name, in.AuthMode)
		}
	}
}

func TestKeptValuesNeverHoldASecret(t *testing.T) {
	in := Integration{Name: "desk", AuthMode: catalog.Basic}
	in.ConnectionConfigSchema = catalog.ValueSchema{"subdomain": {Title: "Subdomain"}}
	f := FormFor(in)
	posted := map[string]any{"cred.username": "bot", "cred.password": "pw-0123456789", "config.subdomain": "acme"}
	kept := f.KeptValues(posted)
	if kept["cred.username"] != "bot" || kept["config.subdomain"] != "acme" {
		t.Fatalf("non-secret values not kept: %v", kept)
	}
	for name, v := range kept {
		if strings.Contains(v, "pw-0123456789") {
			t.Fatalf("%s renders the password back", name)
		}
	}
}

func TestScrubPostedWithholdsEchoesOfAPostedSecret(t *testing.T) {
	f := FormFor(Integration{Name: "stripe", AuthMode: catalog.APIKey})
	posted := map[string]any{"cred.api_key": "sk_live_AbCdEf0123456789"}
	for _, msg := range []string{
		"the key sk_live_AbCdEf0123456789 is unknown",
		"the key SK_LIVE_ABCDEF0123456789 is unknown",
	} {
		if got := f.ScrubPosted(msg, posted); strings.Contains(strings.ToLower(got), "abcdef0123456789") {
			t.Fatalf("scrubPosted(%q) = %q", msg, got)
		}
	}
}

func TestFormErrorsPlaceAnErrorBesideItsInput(t *testing.T) {
	f := FormFor(Integration{Name: "stripe", AuthMode: catalog.APIKey})
	byInput, general := f.Errors("credentials.api_key must be a key that starts with sk_")
	if general != "" || byInput["cred.api_key"] != "API key must be a key that starts with sk_" {
		t.Fatalf("byInput = %v, general = %q", byInput, general)
	}
	byInput, general = f.Errors("the provider refused the request")
	if len(byInput) != 0 || general == "" {
		t.Fatalf("an error naming no input must be the form's: %v %q", byInput, general)
	}
}
