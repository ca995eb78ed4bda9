// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

func TestRevoke(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	rt := srv.IssueRefreshToken()
	for _, style := range []string{"header", "params"} {
		app := appOf(srv)
		app.AuthStyle = style
		if err := testClient(time.Second).Revoke(context.Background(), app, endpointsOf(srv), rt, "refresh_token"); err != nil {
			t.Fatalf("%s: %v", style, err)
		}
	}
	if srv.RefreshTokenValid(rt) {
		t.Fatal("not revoked")
	}
	srv.FailRevocation(http.StatusServiceUnavailable)
	err := testClient(time.Second).Revoke(context.Background(), appOf(srv), endpointsOf(srv), "x-token", "access_token")
	var pe *Error
	if !errors.As(err, &pe) || pe.Status != http.StatusServiceUnavailable {
		t.Fatalf("failed revocation: %v", err)
	}
}
