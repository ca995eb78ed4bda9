// SPDX-License-Identifier: MPL-2.0

package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// verifyStandardWebhook is a verifier written from the Standard Webhooks
// specification alone (not from Sign): the signed content is
// "${webhook-id}.${webhook-timestamp}.${body}", the key is the base64
// after "whsec_", and the header holds space-delimited "v1,<base64>"
// signatures of which one must match.
func verifyStandardWebhook(t *testing.T, secret string, h http.Header, body []byte) bool {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	signed := h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)
	m := hmac.New(sha256.New, key)
	io.WriteString(m, signed)
	want := m.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

// TestSignKnownVector checks Sign against the example of the Standard
// Webhooks specification's reference libraries (secret, id, timestamp,
// payload and signature as they publish them).
func TestSignKnownVector(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign([][]byte{key}, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got != want {
		t.Fatalf("signature %q, want the published %q", got, want)
	}
}

func TestSecretGenerateParse(t *testing.T) {
	s, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseSecret(s)
	if err != nil || len(key) < MinSecretBytes {
		t.Fatalf("generated secret: %d key bytes, %v", len(key), err)
	}
	s2, _ := GenerateSecret()
	if s2 == s {
		t.Fatal("two generated secrets are equal")
	}
	short := SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 23))
	for _, bad := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!!", short, "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65))} {
		_, err := ParseSecret(bad)
		if err == nil {
			t.Fatalf("secret %q accepted", bad)
		}
		if bad != "" && strings.Contains(err.Error(), strings.TrimPrefix(bad, SecretPrefix)) {
			t.Fatalf("error quotes the secret: %v", err)
		}
	}
}

func mustSecret(t *testing.T) string {
	t.Helper()
	s, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
