// SPDX-License-Identifier: MPL-2.0

// Command oauth-dev is the local OAuth 2.0 provider of make dev: the test
// suite's authorization server (internal/oauthtest) on a fixed loopback
// address, with a consent page a person answers, so that authorize → open
// the URL → Allow → connected → refresh can be tried on a laptop without an
// account at any real provider.
//
// The client id and secret come from OAUTH_DEV_CLIENT_ID and
// OAUTH_DEV_CLIENT_SECRET (never from flags, which other local users can
// read in the process list). It runs until interrupted.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8300", "loopback address to listen on")
	redirects := flag.String("redirect-uri", "", "comma-separated redirect URIs to register (the mount's oauth/callback)")
	expiresIn := flag.Int("expires-in", 300, "lifetime of access tokens, in seconds: short, so that refreshes can be seen")
	flag.Parse()
	if err := run(*addr, *redirects, *expiresIn); err != nil {
		fmt.Fprintln(os.Stderr, "oauth-dev:", err)
		os.Exit(1)
	}
}

// run serves until SIGINT or SIGTERM.
func run(addr, redirects string, expiresIn int) error {
	id, secret := os.Getenv("OAUTH_DEV_CLIENT_ID"), os.Getenv("OAUTH_DEV_CLIENT_SECRET")
	if id == "" || secret == "" {
		return fmt.Errorf("set OAUTH_DEV_CLIENT_ID and OAUTH_DEV_CLIENT_SECRET")
	}
	if redirects == "" {
		return fmt.Errorf("-redirect-uri is required: the mount's oauth/callback URL")
	}
	srv, err := oauthtest.NewAt(addr, func(s *oauthtest.Server) {
		s.ClientID, s.ClientSecret = id, secret
		s.SetConsent(true)
		s.SetExpiresIn(expiresIn)
		for _, uri := range strings.Split(redirects, ",") {
			s.RegisterRedirectURI(strings.TrimSpace(uri))
		}
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("local OAuth provider at %s (authorize %s, token %s)\n", srv.URL, srv.AuthURL(), srv.TokenURL())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	return nil
}
