// SPDX-License-Identifier: MPL-2.0

// Benchmarks kept apart on purpose so that focused test runs do not build or run them by accident.

package connect

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// These benchmarks back the engine's scale targets. scripts/bench.sh
// runs them with the end-to-end ones and prints the table; make test does not.

// seedConnections stores n OAuth connections of integration "github"
// directly, expiring at exp, and returns a fresh backend that has built its
// queue from them, as a restarted plugin would.
func seedConnections(tb testing.TB, s logical.Storage, tokenURL string, n int, exp time.Time) *backend {
	tb.Helper()
	ctx := context.Background()
	in := &integrationEntry{Name: "github", AuthMode: catalog.OAuth2, ClientID: "c", ClientSecret: "s",
		EndpointSettings: catalog.EndpointSettings{AuthURL: "https://p.example/a", TokenURL: tokenURL, AuthStyle: "header"}}
	if err := putIntegration(ctx, s, in); err != nil {
		tb.Fatal(err)
	}
	cfg := defaultConfig()
	e := newRefreshEngine()
	for i := range n {
		c := &connectionEntry{Integration: "github", ConnectionID: fmt.Sprintf("c%06d", i), AuthMode: catalog.OAuth2,
			Credentials: credentials{AccessToken: "at", RefreshToken: fmt.Sprintf("rt-%d", i), ExpiresAt: exp}}
		e.schedule(c, cfg, time.Now())
		if err := putConnection(ctx, s, c); err != nil {
			tb.Fatal(err)
		}
	}
	b := startBackend(tb, s)
	for !b.engine.Ready() {
		time.Sleep(5 * time.Millisecond)
	}
	return b
}

// startBackend starts a backend on s as Vault starts a plugin: Factory,
// then Initialize, which builds the refresh queue in the background.
func startBackend(tb testing.TB, s logical.Storage) *backend {
	tb.Helper()
	conf := logical.TestBackendConfig()
	conf.StorageView = s
	conf.Logger = hclog.NewNullLogger()
	raw, err := Factory(context.Background(), conf)
	if err != nil {
		tb.Fatal(err)
	}
	b := raw.(*backend)
	if err := b.Initialize(context.Background(), &logical.InitializationRequest{Storage: s}); err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkStampede100: 100 concurrent reads of one expired connection.
// Target: exactly one token request, and every reader gets the new token.
func BenchmarkStampede100(b *testing.B) {
	srv := oauthtest.New()
	defer srv.Close()
	srv.SetDelay(50 * time.Millisecond)
	s := &logical.InmemStorage{}
	be := seedConnections(b, s, srv.TokenURL(), 0, time.Time{})
	in, _ := getIntegration(context.Background(), s, "github")
	in.ClientID, in.ClientSecret = srv.ClientID, srv.ClientSecret
	putIntegration(context.Background(), s, in)

	var total int
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		id := fmt.Sprintf("stampede-%d", i)
		c := &connectionEntry{Integration: "github", ConnectionID: id, AuthMode: catalog.OAuth2,
			Credentials: credentials{AccessToken: "old", RefreshToken: srv.IssueRefreshToken(), ExpiresAt: time.Now().Add(-time.Second)}}
		putConnection(context.Background(), s, c)
		before := srv.Requests()
		b.StartTimer()

		var wg sync.WaitGroup
		tokens := make([]string, 100)
		for r := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := be.HandleRequest(context.Background(), &logical.Request{
					Operation: logical.ReadOperation, Path: "connections/github/" + id, Storage: s})
				if err == nil && resp != nil && !resp.IsError() {
					tokens[r] = resp.Data["access_token"].(string)
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		for r := range tokens {
			if tokens[r] == "" || tokens[r] != tokens[0] || !srv.AccessTokenValid(tokens[r]) {
				b.Fatalf("reader %d got %q, reader 0 %q", r, tokens[r], tokens[0])
			}
		}
		total += srv.Requests() - before
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/float64(b.N), "token-requests/stampede")
}

// BenchmarkDrain1000: 1,000 due connections, a provider answering in 50 ms,
// refresh_concurrency 16. Reports the drain time against the bound
// 1000 x 50 ms / 16. Target: at most 1.2x.
func BenchmarkDrain1000(b *testing.B) {
	const n, delay, workers = 1000, 50 * time.Millisecond, 16
	bound := time.Duration(n) * delay / workers
	var ratios float64
	for range b.N {
		b.StopTimer()
		srv := oauthtest.New()
		srv.SetDelay(delay)
		s := &logical.InmemStorage{}
		be := seedConnections(b, s, srv.TokenURL(), 0, time.Time{})
		in, _ := getIntegration(context.Background(), s, "github")
		in.ClientID, in.ClientSecret = srv.ClientID, srv.ClientSecret
		putIntegration(context.Background(), s, in)
		be.mountConfig.save(context.Background(), s, &configEntry{RefreshMargin: defaultRefreshMargin, StateTTL: defaultStateTTL,
			RefreshConcurrency: workers, IdleRefreshInterval: defaultIdleRefreshInterval, MaxRefreshFailures: defaultMaxRefreshFailures})
		for i := range n {
			c := &connectionEntry{Integration: "github", ConnectionID: fmt.Sprintf("d%04d", i), AuthMode: catalog.OAuth2,
				Credentials: credentials{AccessToken: "old", RefreshToken: srv.IssueRefreshToken(), ExpiresAt: time.Now().Add(time.Minute)}}
			if _, err := be.store.Update(context.Background(), s, "github", c.ConnectionID, replaceWith(c)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		if err := be.periodic(context.Background(), &logical.Request{Storage: s}); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		if srv.Requests() != n {
			b.Fatalf("%d token requests, want %d", srv.Requests(), n)
		}
		ratios += float64(elapsed) / float64(bound)
		srv.Close()
		b.StartTimer()
	}
	b.ReportMetric(ratios/float64(b.N), "x-bound")
}
