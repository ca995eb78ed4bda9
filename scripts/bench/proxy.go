// SPDX-License-Identifier: MPL-2.0

package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

var proxyOnly = flag.Bool("proxy-only", false, "run only the proxy benchmark")

// proxyThroughput compares, with the same concurrent clients in one run, a
// GET to a loopback API straight, the same GET through the proxy
// (connections/<i>/<id>/proxy/...), and a plain connection read: the
// throughput ratios and the latency the proxy adds (p50, p99).
func (b *bench) proxyThroughput() {
	body := []byte(`{"id":1,"name":"octocat","plan":{"name":"pro"}}`)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer gho_bench" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer api.Close()
	b.mustDo("PUT", "connect/integrations/bench-proxy", map[string]any{"auth_mode": "OAUTH2", "client_id": "c",
		"client_secret": "s", "auth_url": "https://p.example/a", "token_url": "https://p.example/t",
		"api_base_url": api.URL, "proxy_paths": "/user"})
	b.mustDo("PUT", "connect/connections/bench-proxy/acme", map[string]any{"access_token": "gho_bench",
		"refresh_token": "ghr_" + strings.Repeat("r", 36), "expires_in": 7 * 24 * 3600})

	targets := []struct {
		name, url string
		header    http.Header
	}{
		{"GET straight to the loopback API", api.URL + "/user", http.Header{"Authorization": {"Bearer gho_bench"}}},
		{"the same GET through the proxy", b.s.Addr + "/v1/connect/connections/bench-proxy/acme/proxy/user", http.Header{"X-Vault-Token": {b.s.Token}}},
		{"plain connection read", b.s.Addr + "/v1/connect/connections/bench-proxy/acme", http.Header{"X-Vault-Token": {b.s.Token}}},
	}
	ops := make([]int64, len(targets))
	lat := make([][]time.Duration, len(targets))
	for _, t := range targets { // warm up
		b.timedLoad(t.url, t.header, time.Second)
	}
	for range *rounds {
		for i, t := range targets {
			n, l := b.timedLoad(t.url, t.header, *roundTime)
			ops[i] += n
			lat[i] = append(lat[i], l...)
		}
	}
	elapsed := (time.Duration(*rounds) * *roundTime).Seconds()
	rate := func(i int) float64 { return float64(ops[i]) / elapsed }
	pct := func(i int, p float64) time.Duration {
		slices.Sort(lat[i])
		return lat[i][int(p*float64(len(lat[i])-1))]
	}
	fmt.Printf("\nProxy, %d concurrent HTTP clients, %d x %v per target, interleaved, audit device %v:\n\n", *clients, *rounds, *roundTime, *audit)
	fmt.Printf("| %-34s | %10s | %-14s | %-14s | %9s | %9s |\n", "target", "req/s", "vs straight", "vs plain read", "p50", "p99")
	fmt.Printf("|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 36), strings.Repeat("-", 12), strings.Repeat("-", 16), strings.Repeat("-", 16), strings.Repeat("-", 11), strings.Repeat("-", 11))
	for i, t := range targets {
		fmt.Printf("| %-34s | %10.0f | %13.2fx | %13.2fx | %9s | %9s |\n", t.name, rate(i), rate(i)/rate(0), rate(i)/rate(2),
			pct(i, 0.5).Round(time.Microsecond), pct(i, 0.99).Round(time.Microsecond))
	}
	fmt.Printf("\nAdded by the proxy over the straight GET: p50 %s, p99 %s; throughput %.2fx the plain read's (target: added p50 < 1ms, >= 0.6x)\n",
		(pct(1, 0.5) - pct(0, 0.5)).Round(time.Microsecond), (pct(1, 0.99) - pct(0, 0.99)).Round(time.Microsecond), rate(1)/rate(2))
}

// timedLoad GETs url from all clients for d and returns the successful
// requests and each one's latency.
func (b *bench) timedLoad(url string, header http.Header, d time.Duration) (int64, []time.Duration) {
	var mu sync.Mutex
	var all []time.Duration
	var bad int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var failed int64
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header = header.Clone()
				start := time.Now()
				resp, err := b.http.Do(req)
				if err != nil {
					failed++
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed++
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			all = append(all, mine...)
			bad += failed
			mu.Unlock()
		}()
	}
	wg.Wait()
	if bad > 0 {
		fatal(fmt.Errorf("%d failed requests to %s", bad, url))
	}
	return int64(len(all)), all
}
