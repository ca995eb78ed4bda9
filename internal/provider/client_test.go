// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

func testClient(timeout time.Duration) *Client {
	return New(&http.Client{Timeout: timeout}, time.Now)
}

func appOf(srv *oauthtest.Server) OAuthApp {
	return OAuthApp{ClientID: srv.ClientID, ClientSecret: srv.ClientSecret, AuthStyle: "header", Scopes: []string{"repo"}}
}

func endpointsOf(srv *oauthtest.Server) Endpoints {
	return resolved(Endpoints{Auth: srv.AuthURL(), Token: srv.TokenURL(), Revocation: srv.RevocationURL(), APIBase: srv.URL})
}

// resolved is templates without placeholders as ResolveEndpoints returns
// them, with their host policy: the only Endpoints the Client sends to.
func resolved(templates Endpoints) Endpoints {
	ep, err := ResolveEndpoints(templates, nil)
	if err != nil {
		panic(err)
	}
	return ep
}

// elsewhere is a server that must never be reached: it counts what it gets.
func elsewhere(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"access_token":"stolen","token_type":"Bearer"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv := oauthtest.New()
			defer srv.Close()
			target, hits := elsewhere(t)
			srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, target.URL+"/steal", status)
			})
			c := testClient(time.Second)
			_, refreshErr := c.Refresh(context.Background(), appOf(srv), endpointsOf(srv), srv.IssueRefreshToken())
			_, ccErr := c.ClientCredentials(context.Background(), appOf(srv), endpointsOf(srv), nil)
			revokeErr := c.Revoke(context.Background(), appOf(srv), endpointsOf(srv), "tok", "access_token")
			for name, err := range map[string]error{"refresh": refreshErr, "client credentials": ccErr, "revoke": revokeErr} {
				var pe *Error
				if !errors.As(err, &pe) || pe.Status != status || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", status)) {
					t.Errorf("%s: %v", name, err)
				}
			}
			if hits.Load() != 0 {
				t.Fatalf("the redirect target got %d requests", hits.Load())
			}
		})
	}
}

func TestResponseBodiesAreBounded(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"a","pad":"`))
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 50 << 4 { // 50 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		w.Write([]byte(`"}`))
	})
	_, err := testClient(5*time.Second).Refresh(context.Background(), appOf(srv), endpointsOf(srv), srv.IssueRefreshToken())
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("50 MiB body: %v", err)
	}
}

func TestTimeoutBoundsACall(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	srv.SetDelay(2 * time.Second)
	start := time.Now()
	_, err := testClient(200*time.Millisecond).Refresh(context.Background(), appOf(srv), endpointsOf(srv), srv.IssueRefreshToken())
	var pe *Error
	if !errors.As(err, &pe) || !pe.Unreachable() {
		t.Fatalf("timeout: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("the call took %v", time.Since(start))
	}
}

func TestErrorsCarryNoSecret(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	// A provider that echoes what it was sent in its error.
	srv.SetOverride(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_request","error_description":"bad: rt=%s code=%s verifier=%s secret=%s","refresh_token":"body-only"}`,
			r.PostForm.Get("refresh_token"), r.PostForm.Get("code"), r.PostForm.Get("code_verifier"), srv.ClientSecret)
	})
	c := testClient(time.Second)
	rt := srv.IssueRefreshToken()
	_, err1 := c.Refresh(context.Background(), appOf(srv), endpointsOf(srv), rt)
	_, err2 := c.ExchangeCode(context.Background(), appOf(srv), endpointsOf(srv), "https://r.test/cb", "the-code-123", "the-verifier-456")
	err3 := c.Revoke(context.Background(), appOf(srv), endpointsOf(srv), "revoked-token-789", "access_token")
	for _, err := range []error{err1, err2, err3} {
		msg := err.Error()
		for _, secret := range []string{rt, "the-code-123", "the-verifier-456", srv.ClientSecret, "body-only"} {
			if strings.Contains(msg, secret) {
				t.Fatalf("error %q holds a secret", msg)
			}
		}
		if !strings.Contains(msg, "invalid_request") {
			t.Fatalf("error %q lost the provider's code", msg)
		}
	}
}
