// SPDX-License-Identifier: MPL-2.0

// Package webhook delivers events to receivers the way Standard Webhooks
// (https://www.standardwebhooks.com) specifies: signed with HMAC-SHA256 over
// "id.timestamp.body", sent with a bounded client that follows no redirect,
// and retried on a fixed schedule with jitter. It takes plain values and
// imports nothing from Vault; it is the only code that talks HTTP to
// receivers.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every secret, as Standard Webhooks libraries write
// and accept it.
const SecretPrefix = "whsec_"

// Secret key sizes, in decoded bytes. The specification asks for 24 to 64
// random bytes; the plugin generates 32.
const (
	MinSecretBytes       = 24
	MaxSecretBytes       = 64
	generatedSecretBytes = 32
)

// errBadSecret never quotes the secret it refuses.
var errBadSecret = errors.New("secret must be \"" + SecretPrefix + "\" followed by the standard base64 encoding of 24 to 64 bytes")

// GenerateSecret returns a new secret: the prefix and 32 random bytes in
// standard base64.
func GenerateSecret() (string, error) {
	key := make([]byte, generatedSecretBytes)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// ParseSecret returns a secret's key bytes, the HMAC key. Its error names
// what is wrong without the secret's text.
func ParseSecret(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errBadSecret
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, errBadSecret
	}
	return key, nil
}

// Sign returns the webhook-signature header value for one attempt: a
// "v1,<base64 HMAC-SHA256>" signature per key, space-separated, over
// "id.timestamp.body" with the timestamp in Unix seconds. During a secret
// rotation keys holds the new key and the previous one, and a receiver that
// knows either verifies the message.
func Sign(keys [][]byte, id string, timestamp time.Time, body []byte) string {
	ts := strconv.FormatInt(timestamp.Unix(), 10)
	sigs := make([]string, 0, len(keys))
	for _, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}
