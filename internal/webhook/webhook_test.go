// SPDX-License-Identifier: MPL-2.0

package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
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

func TestScheduleDefault(t *testing.T) {
	first := time.Unix(1_800_000_000, 0)
	noJitter := func() float64 { return 0.5 } // (0.5*2-1) = 0: no jitter
	want := []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}
	last := first
	for i, w := range want {
		at, ok := DefaultSchedule.Next(first, last, i+1, noJitter)
		if !ok || at.Sub(last) != w {
			t.Fatalf("after failure %d: wait %v ok=%v, want %v", i+1, at.Sub(last), ok, w)
		}
		last = at
	}
	failures := len(want)
	for {
		failures++
		at, ok := DefaultSchedule.Next(first, last, failures, noJitter)
		if !ok {
			break
		}
		if at.Sub(last) != time.Hour {
			t.Fatalf("after failure %d: wait %v, want 1h", failures, at.Sub(last))
		}
		last = at
	}
	if last.Sub(first) > 24*time.Hour || last.Sub(first) < 23*time.Hour {
		t.Fatalf("last retry %v after the first attempt, want within the last hour of 24h", last.Sub(first))
	}
	// 6 listed retries reach 1h42m35s; hourly ones then fill to 24h.
	if attempts := failures; attempts != 29 {
		t.Fatalf("%d attempts before dead, want 29", attempts)
	}
	// Jitter spreads the wait by at most 10% either way.
	lo, _ := DefaultSchedule.Next(first, first, 2, func() float64 { return 0 })
	hi, _ := DefaultSchedule.Next(first, first, 2, func() float64 { return 0.999999 })
	if lo.Sub(first) != 27*time.Second || hi.Sub(first) < 32*time.Second || hi.Sub(first) > 33*time.Second {
		t.Fatalf("jittered 30s wait spans %v..%v", lo.Sub(first), hi.Sub(first))
	}
}

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"https://example.com/hook", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x", "https://10.0.0.1/x"} {
		if err := CheckURL(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://example.com/hook", "ftp://example.com", "/relative", "https://user:pw@example.com/", "https://example.com/#f", "http://127.0.0.1.example.com/", ""} {
		err := CheckURL(bad)
		if err == nil {
			t.Errorf("%s accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error quotes the URL: %v", err)
		}
	}
}

func TestSendSignsWithEveryKey(t *testing.T) {
	oldSecret, _ := GenerateSecret()
	newSecret, _ := GenerateSecret()
	oldKey, _ := ParseSecret(oldSecret)
	newKey, _ := ParseSecret(newSecret)
	var got atomic.Pointer[http.Request]
	var gotBody atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(r)
		gotBody.Store(&b)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := NewSender(time.Second, nil)
	at := time.Unix(1_900_000_000, 0)
	s.Now = func() time.Time { return at }
	body := []byte(`{"type":"connection.created","id":"evt_1"}`)
	res := s.Send(context.Background(), Message{URL: srv.URL, ID: "evt_1", Body: body, Keys: [][]byte{newKey, oldKey}})
	if res.Err != nil || res.Status != http.StatusNoContent {
		t.Fatalf("send: %+v", res)
	}
	r := got.Load()
	if r.Header.Get("webhook-id") != "evt_1" || r.Header.Get("webhook-timestamp") != strconv.FormatInt(at.Unix(), 10) {
		t.Fatalf("headers %v", r.Header)
	}
	if n := len(strings.Fields(r.Header.Get("webhook-signature"))); n != 2 {
		t.Fatalf("%d signatures, want 2", n)
	}
	for name, secret := range map[string]string{"new": newSecret, "old": oldSecret} {
		if !verifyStandardWebhook(t, secret, r.Header, *gotBody.Load()) {
			t.Fatalf("the %s secret does not verify the message", name)
		}
	}
	other, _ := GenerateSecret()
	if verifyStandardWebhook(t, other, r.Header, *gotBody.Load()) {
		t.Fatal("an unrelated secret verifies the message")
	}
	tampered := append([]byte{}, *gotBody.Load()...)
	tampered[2] = 'X'
	if verifyStandardWebhook(t, newSecret, r.Header, tampered) {
		t.Fatal("a changed body verifies")
	}
}

func TestSendFailures(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	var okHits atomic.Int32
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { okHits.Add(1) })
	mux.HandleFunc("/429", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "slow down, secret-looking body")
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second):
		}
	})
	var bigWritten atomic.Int64
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 16<<10)
		for i := 0; i < 1024; i++ { // 16 MiB offered
			n, err := w.Write(chunk)
			bigWritten.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	key, _ := ParseSecret(mustSecret(t))
	s := NewSender(300*time.Millisecond, nil)
	send := func(path string) Result {
		return s.Send(context.Background(), Message{URL: srv.URL + path + "?token=q-secret", ID: "evt", Body: []byte("{}"), Keys: [][]byte{key}})
	}
	if res := send("/redirect"); res.Err == nil || res.Status != http.StatusFound || okHits.Load() != 0 {
		t.Fatalf("redirect: %+v, followed %d times", res, okHits.Load())
	}
	res := send("/429")
	if res.Err == nil || res.Status != http.StatusTooManyRequests || strings.Contains(res.Err.Error(), "slow down") {
		t.Fatalf("429: %+v", res)
	}
	start := time.Now()
	res = send("/hang")
	if res.Err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("hang: %+v after %v", res, time.Since(start))
	}
	if strings.Contains(res.Err.Error(), "q-secret") || strings.Contains(res.Err.Error(), srv.URL) {
		t.Fatalf("error quotes the URL: %v", res.Err)
	}
	if res := send("/big"); res.Err != nil {
		t.Fatalf("big body: %+v", res)
	}
	// The sender stopped reading at 64 KiB; what the server got into the
	// socket's buffers beyond that is far from the 16 MiB it offered.
	time.Sleep(100 * time.Millisecond)
	if n := bigWritten.Load(); n > 8<<20 {
		t.Fatalf("the receiver wrote %d bytes of its answer", n)
	}
	if res := s.Send(context.Background(), Message{URL: "http://example.com/", ID: "e", Keys: [][]byte{key}}); res.Err == nil {
		t.Fatal("http to a non-loopback host was sent")
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
