// SPDX-License-Identifier: MPL-2.0

package oauthtest

import (
	"net/http"
	"runtime"
	"strings"
	"time"
)

// Answer is a handler for SetOverride that answers status with a JSON body
// and the given header name/value pairs: a provider's failure as sent.
func Answer(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

// HugeBody is a handler for SetOverride that starts a token response and
// then sends about mb megabytes, stopping when the client hangs up.
func HugeBody(mb int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"access_token":"`))
		chunk := []byte(strings.Repeat("x", 1<<16))
		for range mb * 16 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
}

// SettledGoroutines waits up to 3 s for the process's goroutine count to
// come down to limit, and returns the count: a leak check after closing
// the connections a test made.
func SettledGoroutines(limit int) int {
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}
