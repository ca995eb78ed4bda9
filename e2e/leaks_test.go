// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// Every secret the suite uses is registered here, and after the last test
// the whole Vault log (with the plugin's own lines) and the whole audit log
// are searched for each of them.
var (
	secretsMu   sync.Mutex
	authServers []*oauthtest.Server
	literals    []string
)

// literalSecrets are the secret values the tests write themselves.
var literalSecrets = []string{
	"first-token", "sk_e2e_key", "imported-fresh", "old-access", "dead-access", "audit-access-imported",
	"audit-api-key-plain", "audit-password-plain", "still-good", "sk_tf_e2e_key", "example-client-secret",
	"at-cust-alice", "at-cust-bob", "sk-cust-alice", "sk-cust-bob", "pw-alice",
}

func init() { noteSecrets(literalSecrets...) }

// notePEM registers the body lines of a PEM private key.
func notePEM(pemText []byte) {
	for _, line := range strings.Split(string(pemText), "\n") {
		if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
			noteSecrets(line)
		}
	}
}

// newAuthServer starts a loopback authorization server whose secrets the
// leak check knows.
func newAuthServer(t *testing.T) *oauthtest.Server {
	t.Helper()
	as := oauthtest.New()
	t.Cleanup(as.Close)
	secretsMu.Lock()
	authServers = append(authServers, as)
	secretsMu.Unlock()
	return as
}

// noteSecrets registers secrets a test writes itself.
func noteSecrets(values ...string) {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	literals = append(literals, values...)
}

// minLeakLen keeps short values that ordinary log text contains by chance
// out of the check.
const minLeakLen = 8

// checkLeaks searches the logs for every registered secret and returns what
// it found, or why the search would prove nothing.
func checkLeaks(s *vaultServer) []string {
	secretsMu.Lock()
	all := append([]string(nil), literals...)
	for _, as := range authServers {
		all = append(all, as.Secrets()...)
	}
	secretsMu.Unlock()
	vaultLog, err := s.LogText()
	if err != nil {
		return []string{err.Error()}
	}
	auditLog, err := os.ReadFile(s.auditLog)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	if !strings.Contains(vaultLog, "refresh queue built") {
		problems = append(problems, "the Vault log has no line of the plugin's: the search would prove nothing")
	}
	if !strings.Contains(string(auditLog), "hmac-sha256:") {
		problems = append(problems, "the audit log has no HMAC: the search would prove nothing")
	}
	checked, callbackURIHits := 0, 0
	for _, secret := range all {
		if len(secret) < minLeakLen {
			continue
		}
		checked++
		if strings.Contains(vaultLog, secret) {
			problems = append(problems, fmt.Sprintf("the Vault log contains the secret %q", secret))
		}
		for _, i := range occurrences(string(auditLog), secret) {
			if inBrowserURI(string(auditLog), i) || inLocationHeader(string(auditLog), i) {
				callbackURIHits++
				continue
			}
			problems = append(problems, fmt.Sprintf("the audit log contains the plaintext secret %q: …%s…",
				secret, auditLog[max(0, i-300):min(len(auditLog), i+100)]))
			break
		}
	}
	if checked < 20 {
		problems = append(problems, fmt.Sprintf("only %d secrets were registered: the search would prove little", checked))
	}
	fmt.Fprintf(os.Stderr, "figure|leak check: %d secrets searched in %d bytes of Vault log and %d bytes of audit log; %d codes, states and session secrets seen in the request_uri of the callback or the connect page (Vault logs it as is; see docs/security.md)\n",
		checked, len(vaultLog), len(auditLog), callbackURIHits)
	return problems
}

func occurrences(text, s string) []int {
	var out []int
	for from := 0; ; {
		i := strings.Index(text[from:], s)
		if i < 0 {
			return out
		}
		out = append(out, from+i)
		from += i + len(s)
	}
}

// browserURIs are the unauthenticated paths a browser reaches with a secret
// in the query: the OAuth callback (the provider's code and state, single
// use and spent when the entry is written) and the connect page (the
// session's secret, short-lived and connecting once).
var browserURIs = []string{
	`"request_uri":"/v1/connect/oauth/callback?`,
	`"request_uri":"/v1/connect/connect/ui?`,
}

// locationHeader is how the audit log records a response's Location:
// Vault writes response headers as they are, so the provider's URL of the
// connect page's 303 (its state) and the callback's 303 to the
// application (its connect_completion) are there in plain text, like the
// callback's request_uri (see docs/security.md).
const locationHeader = `"Location":["`

// inLocationHeader reports whether position i of the audit log is inside
// a response's Location header.
func inLocationHeader(text string, i int) bool {
	start := strings.LastIndex(text[:i], locationHeader)
	if start < 0 {
		return false
	}
	end := strings.Index(text[start+len(locationHeader):], `"`)
	return end >= 0 && i < start+len(locationHeader)+end
}

// inBrowserURI reports whether position i of the audit log is inside the
// request_uri of a request to one of browserURIs: Vault records every
// request's URI as is.
func inBrowserURI(text string, i int) bool {
	for _, field := range browserURIs {
		start := strings.LastIndex(text[:i], field)
		if start < 0 {
			continue
		}
		end := strings.Index(text[start+len(field):], `"`)
		if end >= 0 && i < start+len(field)+end {
			return true
		}
	}
	return false
}

// reliabilityCase marks a test as a row of docs/reliability.md.
func reliabilityCase(t testing.TB, injected, expectation string) {
	t.Helper()
	t.Logf("reliability|%s|%s", injected, expectation)
}
