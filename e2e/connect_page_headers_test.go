// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// deploymentHeaders is the custom_response_headers block that
// docs/deployment.md tells operators to add to the listener serving the
// connect page, as written there, and the headers it sets.
func deploymentHeaders(t *testing.T) (block string, headers map[string]string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "deployment.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	_, section, ok := strings.Cut(text, "## Headers for the connect page")
	if !ok {
		t.Fatal("docs/deployment.md has no section 'Headers for the connect page'")
	}
	start := strings.Index(section, "custom_response_headers {")
	if start < 0 {
		t.Fatal("docs/deployment.md's section has no custom_response_headers block")
	}
	depth, end := 0, -1
	for i := start; i < len(section) && end < 0; i++ {
		switch section[i] {
		case '{':
			depth++
		case '}':
			if depth--; depth == 0 {
				end = i + 1
			}
		}
	}
	if end < 0 {
		t.Fatal("docs/deployment.md's custom_response_headers block is not closed")
	}
	block = section[start:end]
	headers = map[string]string{}
	for _, m := range regexp.MustCompile(`"([A-Za-z-]+)"\s*=\s*\["([^"]*)"\]`).FindAllStringSubmatch(block, -1) {
		headers[m[1]] = m[2]
	}
	if headers["X-Frame-Options"] == "" || headers["Referrer-Policy"] == "" {
		t.Fatalf("the documented block sets neither framing nor referrer headers:\n%s", block)
	}
	return block, headers
}

// TestConnectPageWithDocumentedListenerHeaders starts a Vault whose
// listener has the custom_response_headers of docs/deployment.md, verbatim,
// and checks that the connect page then carries them next to what the
// plugin sets itself: the stanza works, with this plugin's raw responses.
func TestConnectPageWithDocumentedListenerHeaders(t *testing.T) {
	vaultFor(t)
	block, want := deploymentHeaders(t)
	fs, err := vaultdev.StartFileWithListener(os.Getenv("VAULT_BIN"), os.Getenv("PLUGIN_DIR"), t.TempDir(), "  "+block+"\n")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fs.Kill)
	c := fs.Client.Logical()
	if _, err := c.Write("connect/config", map[string]any{"public_url": fs.Addr + "/v1/connect"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write("connect/integrations/hdr-key", map[string]any{"auth_mode": "API_KEY"}); err != nil {
		t.Fatal(err)
	}
	sess, err := c.Write("connect/sessions", map[string]any{"connection_id": "hdr-acme"})
	if err != nil {
		t.Fatal(err)
	}
	connectURL, _ := sess.Data["connect_url"].(string)
	if !strings.HasPrefix(connectURL, fs.Addr+"/v1/connect/") {
		t.Fatalf("connect_url %q is not under this Vault's public_url", connectURL)
	}

	resp, err := http.Get(connectURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("connect page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for name, value := range want {
		if got := resp.Header.Get(name); got != value {
			t.Errorf("%s: %q, want %q (docs/deployment.md)", name, got, value)
		}
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: %q, want no-store", got)
	}
}
