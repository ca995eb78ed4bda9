// SPDX-License-Identifier: MPL-2.0

// Cross-cutting on purpose: a provider echoing a secret is scrubbed on
// every call the client makes, so it names no single file.

package provider

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Secrets with the characters that URL and JSON encodings change, so that
// each encoded form differs from the secret itself.
const (
	echoRefreshToken = `rt/Ab+Cd=Ef&Gh"Ij<Kl>Mn Op\Qr%St?Uv#Wx`
	echoClientSecret = `cs/Zy+Xw=Vu&Ts"Rq<Po>Nm Lk\Ji%Hg?Fe#Dc`
	echoCode         = `co/Ba+Dc=Fe&Hg"Ji<Lk>Nm Po\Rq%Ts?Vu#Xw`
	echoVerifier     = `ve/Qw+Er=Ty&Ui"Op<As>Df Gh\Jk%Lz?Xc#Vb`
	echoRevoked      = `rv/Mn+Bv=Cx&Za"Sd<Fg>Hj Kl\Po%Iu?Yt#Re`
)

// echoForm is one way a provider's error answer may carry a secret it was
// sent: the error code and the error description.
type echoForm func(secret string) (code, description string)

// echoForms are the forms a secret survived in when it was cut before it
// was scrubbed, or scrubbed only as sent. 300 and 100 are where the client
// cuts a description and a code; the secret starts 12 characters before.
var echoForms = map[string]echoForm{
	"description straddling the cut": func(s string) (string, string) {
		return "invalid_request", strings.Repeat(".", 300-12) + s
	},
	"code straddling the cut": func(s string) (string, string) {
		return strings.Repeat(".", 100-12) + s, "bad request"
	},
	"query-escaped": func(s string) (string, string) {
		return "invalid_request", "got token=" + url.QueryEscape(s)
	},
	"path-escaped": func(s string) (string, string) {
		return "invalid_request", "no such token /tokens/" + url.PathEscape(s)
	},
	"json-escaped": func(s string) (string, string) {
		return "invalid_request", "request was {\"token\":" + jsonString(s) + "}"
	},
}

// jsonString is s as a JSON string literal.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// encodedForms are a secret and its encodings, none of which, nor any part
// of which, may be in an error.
func encodedForms(s string) []string {
	j := jsonString(s)
	return []string{s, url.QueryEscape(s), url.PathEscape(s), j[1 : len(j)-1]}
}

// assertNoPartOf fails if msg holds any 8-character run of secret or of
// one of its encodings.
func assertNoPartOf(t *testing.T, msg, secret string) {
	t.Helper()
	for _, form := range encodedForms(secret) {
		r := []rune(form)
		for i := 0; i+8 <= len(r); i++ {
			if part := string(r[i : i+8]); strings.Contains(msg, part) {
				t.Fatalf("error %q holds %q, part of a secret", msg, part)
			}
		}
	}
}

// echoingServer answers every request with HTTP 400 and an error whose code
// and description echo, in form, the secret that secretOf finds in the
// request.
func echoingServer(t *testing.T, form echoForm, secretOf func(*http.Request) string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		code, desc := form(secretOf(r))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// echoApp is the OAuth app of the echo tests: its secret goes in the form
// body, where the server can read it back.
func echoApp() OAuthApp {
	return OAuthApp{ClientID: "echo-client", ClientSecret: echoClientSecret, AuthStyle: "params"}
}

func formValue(name string) func(*http.Request) string {
	return func(r *http.Request) string { return r.PostForm.Get(name) }
}

// basicCredentialOf is the encoded client id and secret of a request
// authenticated with HTTP Basic.
func basicCredentialOf(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// bearerOf is the JWT an APP request authenticates with.
func bearerOf(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// TestEchoedSecretsAreScrubbedBeforeTheCut: a provider that echoes a secret
// it was sent (refresh token, code, verifier, client secret, revoked token,
// app JWT) in its error code or description, whole across the point where
// the client cuts the text, or URL-encoded, or JSON-escaped: no part of the
// secret is in the error, whose text goes to last_refresh_error, warnings
// and logs.
func TestEchoedSecretsAreScrubbedBeforeTheCut(t *testing.T) {
	keyPEM := testAppKey(t)
	ctx := context.Background()
	c := testClient(time.Second)
	grants := []struct {
		name     string
		secretOf func(*http.Request) string
		call     func(srvURL string) error
	}{
		{"refresh token", formValue("refresh_token"), func(u string) error {
			_, err := c.Refresh(ctx, echoApp(), resolved(Endpoints{Token: u}), echoRefreshToken)
			return err
		}},
		{"client secret on refresh", formValue("client_secret"), func(u string) error {
			_, err := c.Refresh(ctx, echoApp(), resolved(Endpoints{Token: u}), echoRefreshToken)
			return err
		}},
		{"client secret as a Basic credential", basicCredentialOf, func(u string) error {
			app := echoApp()
			app.AuthStyle = "header"
			_, err := c.ClientCredentials(ctx, app, resolved(Endpoints{Token: u}), nil)
			return err
		}},
		{"client secret on client credentials", formValue("client_secret"), func(u string) error {
			_, err := c.ClientCredentials(ctx, echoApp(), resolved(Endpoints{Token: u}), nil)
			return err
		}},
		{"code", formValue("code"), func(u string) error {
			_, err := c.ExchangeCode(ctx, echoApp(), resolved(Endpoints{Token: u}), "https://r.test/cb", echoCode, echoVerifier)
			return err
		}},
		{"verifier", formValue("code_verifier"), func(u string) error {
			_, err := c.ExchangeCode(ctx, echoApp(), resolved(Endpoints{Token: u}), "https://r.test/cb", echoCode, echoVerifier)
			return err
		}},
		{"revoked token", formValue("token"), func(u string) error {
			return c.Revoke(ctx, echoApp(), resolved(Endpoints{Revocation: u}), echoRevoked, "refresh_token")
		}},
		{"client secret on revocation", formValue("client_secret"), func(u string) error {
			return c.Revoke(ctx, echoApp(), resolved(Endpoints{Revocation: u}), echoRevoked, "refresh_token")
		}},
		{"app JWT", bearerOf, func(u string) error {
			_, err := c.InstallationToken(ctx, App{AppID: "42", PrivateKey: keyPEM}, resolved(Endpoints{APIBase: u}), "987")
			return err
		}},
	}
	for _, g := range grants {
		for formName, form := range echoForms {
			t.Run(g.name+"/"+formName, func(t *testing.T) {
				var sent string
				srv := echoingServer(t, form, func(r *http.Request) string {
					sent = g.secretOf(r)
					return sent
				})
				err := g.call(srv.URL)
				if err == nil || sent == "" {
					t.Fatalf("the call did not fail with an echo (err %v, echoed %q)", err, sent)
				}
				assertNoPartOf(t, err.Error(), sent)
			})
		}
	}
}

// testAppKey is a fresh RSA key in PEM form.
func testAppKey(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
}
