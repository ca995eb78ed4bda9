// SPDX-License-Identifier: MPL-2.0

// Cross-cutting on purpose: every grant (oauth.go, app.go, revocation.go)
// under every provider fault, so it names no single file.

package provider

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// fault is one way a provider fails, as a handler that replaces its
// answers; nil handler means a closed port.
type fault struct {
	name    string
	handler http.HandlerFunc
	delay   time.Duration
	want    string // in the error
}

func providerFaults(redirectTarget string) []fault {
	return []fault{
		{"http 500", oauthtest.Answer(500, `{"error":"server_error"}`), 0, "HTTP 500"},
		{"503 retry-after", oauthtest.Answer(503, `{"error":"temporarily_unavailable"}`, "Retry-After", "120"), 0, "HTTP 503"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Second) // past the client's timeout, for every endpoint
			oauthtest.Answer(200, `{"access_token":"late"}`)(w, r)
		}, 0, "could not be reached"},
		{"connection refused", nil, 0, "could not be reached"},
		{"invalid_grant", oauthtest.Answer(400, `{"error":"invalid_grant"}`), 0, "invalid_grant"},
		{"invalid_client", oauthtest.Answer(401, `{"error":"invalid_client"}`), 0, "invalid_client"},
		{"temporarily_unavailable", oauthtest.Answer(503, `{"error":"temporarily_unavailable"}`), 0, "temporarily_unavailable"},
		{"malformed json", oauthtest.Answer(200, `{"access_token":`), 0, "HTTP 200"},
		{"no access_token", oauthtest.Answer(200, `{"token_type":"Bearer"}`), 0, "access_token"},
		{"expires_in a string", oauthtest.Answer(200, `{"access_token":"a","expires_in":"soon"}`), 0, "HTTP 200"},
		{"50 MB body", oauthtest.HugeBody(50), 0, "exceeds"},
		{"307 elsewhere", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, redirectTarget, http.StatusTemporaryRedirect)
		}, 0, "HTTP 307"},
	}
}

// answers200 are the faults whose HTTP status is 200.
var answers200 = map[string]bool{"malformed json": true, "no access_token": true, "expires_in a string": true, "50 MB body": true}

// TestEveryGrantUnderEveryFault runs the four provider calls (refresh,
// client credentials, code exchange, revocation) against each fault: an
// error that names the fault and carries no secret, no panic, and no
// goroutine left behind.
func TestEveryGrantUnderEveryFault(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the redirect target was called")
	}))
	defer target.Close()
	for _, f := range providerFaults(target.URL) {
		t.Run(f.name, func(t *testing.T) {
			reliabilityCase(t, "provider "+f.name+", for refresh, client credentials, code exchange and revocation",
				"an error that says "+f.want+", without secrets; no panic; no goroutine left")
			srv := oauthtest.New()
			defer srv.Close()
			ep := endpointsOf(srv)
			if f.handler == nil {
				l, _ := net.Listen("tcp", "127.0.0.1:0")
				closed := "http://" + l.Addr().String()
				l.Close()
				ep = resolved(Endpoints{Token: closed + "/token", Revocation: closed + "/revoke"})
			} else {
				srv.SetOverride(f.handler)
			}
			srv.SetDelay(f.delay)
			c := New(&http.Client{Timeout: 300 * time.Millisecond}, time.Now)
			rt := srv.IssueRefreshToken()
			before := runtime.NumGoroutine()
			calls := map[string]func() error{
				"refresh": func() error {
					_, err := c.Refresh(context.Background(), appOf(srv), ep, rt)
					return err
				},
				"client credentials": func() error {
					_, err := c.ClientCredentials(context.Background(), appOf(srv), ep, nil)
					return err
				},
				"code exchange": func() error {
					_, err := c.ExchangeCode(context.Background(), appOf(srv), ep, "https://r.test/cb", "code-secret-1", "verifier-secret-1")
					return err
				},
				"revocation": func() error {
					return c.Revoke(context.Background(), appOf(srv), ep, rt, "refresh_token")
				},
			}
			for grant, call := range calls {
				err := call()
				if grant == "revocation" && answers200[f.name] {
					if err != nil {
						t.Errorf("revocation answered 200 but failed: %v", err)
					}
					continue // RFC 7009: a 200 is a revocation, whatever its body
				}
				if err == nil {
					t.Errorf("%s: no error", grant)
					continue
				}
				msg := err.Error()
				var pe *Error
				if !errors.As(err, &pe) {
					t.Errorf("%s: %T is not a provider error: %v", grant, err, err)
				}
				want := f.want
				if grant == "revocation" && want == "access_token" {
					want = "HTTP"
				}
				if !strings.Contains(msg, want) {
					t.Errorf("%s: error %q does not say %q", grant, msg, want)
				}
				for _, secret := range []string{rt, srv.ClientSecret, "code-secret-1", "verifier-secret-1"} {
					if strings.Contains(msg, secret) {
						t.Errorf("%s: error %q holds a secret", grant, msg)
					}
				}
				if f.name == "503 retry-after" && grant != "revocation" && (pe == nil || time.Until(pe.RetryAfter) < 100*time.Second) {
					t.Errorf("%s: Retry-After not read: %+v", grant, pe)
				}
			}
			c.CloseIdleConnections()
			srv.CloseClientConnections()
			if n := oauthtest.SettledGoroutines(before); n > before {
				t.Errorf("goroutines: %d before, %d after", before, n)
			}
		})
	}
}
