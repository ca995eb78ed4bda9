// SPDX-License-Identifier: MPL-2.0

package provider

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

func TestInstallationToken(t *testing.T) {
	srv := oauthtest.New()
	defer srv.Close()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	srv.SetApp("42", &key.PublicKey)
	c := testClient(time.Second)
	tok, err := c.InstallationToken(context.Background(), App{AppID: "42", PrivateKey: keyPEM}, endpointsOf(srv), "987")
	if err != nil || !srv.AccessTokenValid(tok.AccessToken) || srv.LastTenant() != "987" || tok.Expiry.IsZero() {
		t.Fatalf("installation token: %v (tenant %s)", err, srv.LastTenant())
	}
	var ce *ConfigError
	if _, err := c.InstallationToken(context.Background(), App{AppID: "42", PrivateKey: keyPEM}, endpointsOf(srv), "1/../2"); !errors.As(err, &ce) {
		t.Fatalf("a path in the installation id: %v", err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)}))
	var pe *Error
	if _, err := c.InstallationToken(context.Background(), App{AppID: "42", PrivateKey: otherPEM}, endpointsOf(srv), "987"); !errors.As(err, &pe) || pe.Status != http.StatusUnauthorized {
		t.Fatalf("unknown key: %v", err)
	}
}
