// SPDX-License-Identifier: MPL-2.0

package e2e

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// pythonBlockRe is docs/events.md's Python verifier.
var pythonBlockRe = regexp.MustCompile("(?s)```python\n(.*?)```\n")

// The Python verifier of docs/events.md answers true for a message the
// Standard Webhooks library signed, whatever the headers' mapping and case,
// and false, never an exception, for a missing or malformed header, a
// changed body or a replay.
func TestDocsPythonVerifier(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	page, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := pythonBlockRe.FindSubmatch(page)
	if m == nil {
		t.Fatal("docs/events.md has no Python block")
	}
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a-receiver-secret-of-24-bytes!"))
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"type":"connection.created"}`
	now := time.Now()
	sig, err := wh.Sign("msg_1", now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	old := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	script := string(m[1]) + `
import sys
secret, ts, old, sig, body = sys.argv[1:6]
body = body.encode()
good = {"webhook-id": "msg_1", "webhook-timestamp": ts, "webhook-signature": sig}
class Headers:  # a framework's case-insensitive headers object
    def __init__(self, d): self.d = d
    def items(self): return [(k.title(), v) for k, v in self.d.items()]
    def keys(self): return [k.title() for k in self.d]
    def __getitem__(self, k): return self.d[k.lower()]
cases = {
    "plain dict": (good, body, True),
    "capitalised": ({k.title(): v for k, v in good.items()}, body, True),
    "headers object": (Headers(good), body, True),
    "no headers": ({}, body, False),
    "no signature": ({k: v for k, v in good.items() if k != "webhook-signature"}, body, False),
    "bad timestamp": (dict(good, **{"webhook-timestamp": "soon"}), body, False),
    "replay": (dict(good, **{"webhook-timestamp": old}), body, False),
    "bad base64": (dict(good, **{"webhook-signature": "v1,%%%"}), body, False),
    "changed body": (good, body + b" ", False),
}
for name, (headers, b, want) in cases.items():
    try:
        got = verify(secret, headers, b)
    except Exception as e:
        print(f"{name}: raised {e!r}"); sys.exit(1)
    if got is not want:
        print(f"{name}: {got}, want {want}"); sys.exit(1)
print("ok")
`
	out, err := exec.Command(python, "-c", script, secret, ts, old, sig, body).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("the verifier: %v\n%s", err, out)
	}
}
