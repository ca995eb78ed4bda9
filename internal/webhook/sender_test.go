// SPDX-License-Identifier: MPL-2.0

package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

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
