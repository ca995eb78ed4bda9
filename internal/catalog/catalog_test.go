// SPDX-License-Identifier: MPL-2.0

package catalog

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/provider"
)

// minCatalogSize is the size the catalog promises: the APIs SaaS products
// integrate with most, each checked against its own documentation.
const minCatalogSize = 250

// TestCatalogCoversEveryAuthMode keeps the catalog at its promised size and
// spanning the modes B2B products integrate with.
func TestCatalogCoversEveryAuthMode(t *testing.T) {
	if len(builtin) < minCatalogSize {
		t.Fatalf("catalog has %d providers, want at least %d", len(builtin), minCatalogSize)
	}
	modes := map[AuthMode]int{}
	for _, p := range builtin {
		modes[p.AuthMode]++
	}
	for _, m := range []AuthMode{OAuth2, OAuth2CC, APIKey, Basic} {
		if modes[m] == 0 {
			t.Errorf("catalog has no %s provider", m)
		}
	}
}

// TestCatalogNamesAreUnique guards against two spellings of one provider
// (e.g. "help-scout" and "helpscout"), which would confuse operators.
func TestCatalogNamesAreUnique(t *testing.T) {
	seen := map[string]string{}
	names := make([]string, 0, len(builtin))
	for n := range builtin {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		k := strings.ReplaceAll(n, "-", "")
		if other, ok := seen[k]; ok {
			t.Errorf("%s and %s differ only in dashes", other, n)
		}
		seen[k] = n
	}
}

func TestCatalogShipsCommonProviders(t *testing.T) {
	for _, name := range []string{"github", "gitlab", "google", "microsoft", "slack", "salesforce", "hubspot", "notion",
		"atlassian", "zendesk", "shopify", "okta", "linear", "asana", "dropbox", "box", "zoom", "intercom", "airtable",
		"xero", "quickbooks", "discord", "spotify", "stripe", "twilio", "github-app"} {
		if _, ok := builtin[name]; !ok {
			t.Errorf("catalog lacks %s", name)
		}
	}
	if builtin["salesforce"].TokenResponseConfig["instance_url"] != "instance_url" {
		t.Error("salesforce does not map instance_url into connection config")
	}
	if !strings.Contains(builtin["zendesk"].TokenURL, "${connectionConfig.subdomain}") {
		t.Error("zendesk token URL is not templated by subdomain")
	}
}

// TestCatalogCorrectedEntries pins the corrections to entries that were
// wrong or incomplete.
func TestCatalogCorrectedEntries(t *testing.T) {
	zd := builtin["zendesk"]
	if zd.TokenParams["expires_in"] == "" || zd.RefreshParams["expires_in"] == "" || !zd.TokensExpire {
		t.Errorf("zendesk must ask for expiring tokens: token_params %v refresh_params %v tokens_expire %v", zd.TokenParams, zd.RefreshParams, zd.TokensExpire)
	}
	if got := builtin["figma"].RefreshURL; got != "https://api.figma.com/v1/oauth/refresh" {
		t.Errorf("figma refresh_url = %q", got)
	}
	if got := builtin["quickbooks"].CallbackConfig; !slices.Contains(got, "realmId") {
		t.Errorf("quickbooks callback_config = %v", got)
	}
	sf := builtin["salesforce"]
	for _, u := range []string{sf.AuthURL, sf.TokenURL} {
		alts := provider.Alternatives(u)
		if len(alts) != 2 || !strings.Contains(alts[0], "${connectionConfig.hostname}") || !strings.HasPrefix(alts[1], "https://login.salesforce.com/") {
			t.Errorf("salesforce URL %q is not My Domain || login.salesforce.com", u)
		}
	}
	ic := builtin["intercom"]
	if alts := provider.Alternatives(ic.TokenURL); len(alts) != 2 || !strings.Contains(alts[0], "${connectionConfig.region}") {
		t.Errorf("intercom token_url %q has no regional alternative", ic.TokenURL)
	}
	if got := ic.ConnectionConfigSchema["region"].Enum; strings.Join(got, ",") != "eu,au" {
		t.Errorf("intercom region enum = %v", got)
	}
	for _, name := range []string{"slack", "linear", "zoom", "figma"} {
		if builtin[name].ScopeSeparator != "," {
			t.Errorf("%s scope_separator = %q, want ','", name, builtin[name].ScopeSeparator)
		}
	}
}

// Lookup hands out a copy: a caller that sets a field of what it got does
// not change the catalog.
func TestLookupReturnsACopy(t *testing.T) {
	p := Lookup("github")
	if p == nil || p.Name != "github" {
		t.Fatalf("Lookup(github) = %v", p)
	}
	p.TokenURL = "https://elsewhere.example/token"
	if Lookup("github").TokenURL == p.TokenURL {
		t.Fatal("a change to a looked-up provider reached the catalog")
	}
	if Lookup("no-such-provider") != nil {
		t.Fatal("Lookup of an unknown name is not nil")
	}
}

// snakeCaseRe is how the API names fields: what credentials_schema keys
// of the built-in catalog must look like.
var snakeCaseRe = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// The catalog names every credential as connection writes do (api_key,
// never apiKey), and says in words what each pattern admits: an error
// quotes the words, never the expression.
func TestCatalogSchemasSpeakTheAPI(t *testing.T) {
	for _, name := range Names() {
		p := builtin[name]
		for _, k := range p.CredentialsSchema.Keys() {
			if !snakeCaseRe.MatchString(k) {
				t.Errorf("%s: credentials_schema.%s is not snake_case", name, k)
			}
		}
		for what, s := range map[string]ValueSchema{"credentials_schema": p.CredentialsSchema, "connection_config_schema": p.ConnectionConfigSchema} {
			for _, k := range s.Keys() {
				f := s[k]
				if f.Pattern != "" && f.PatternHint == "" {
					t.Errorf("%s: %s.%s has a pattern and no pattern_hint", name, what, k)
				}
				if f.PatternHint != "" && strings.ContainsAny(f.PatternHint, "[]()|\\*+?{}^$") {
					t.Errorf("%s: %s.%s's pattern_hint %q reads like an expression", name, what, k, f.PatternHint)
				}
			}
		}
	}
}
