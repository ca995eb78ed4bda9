// SPDX-License-Identifier: MPL-2.0

// Command load is make load: a bounded load run through a real Vault dev
// server on loopback. Workers each own a set of connections and keep a model
// of what they wrote; they read, write, patch metadata, delete, authorize
// and force refreshes against a loopback OAuth server that answers slowly
// and fails a small share of token requests. Every minute it prints the
// plugin's RSS and goroutines; at the end it compares storage with the
// models, reports p50/p99 latencies per operation, and exits non-zero on
// any unexpected error, a model mismatch, or growing memory or goroutines.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// loadReturnURL is where the load's authorizations send the browser back:
// the application completes them (oauth_completion's default).
const loadReturnURL = "https://app.load.test/done"

var (
	vaultBin  = flag.String("vault", "bin/vault", "Vault binary")
	pluginDir = flag.String("plugins", "bin/plugins", "plugin directory")
	duration  = flag.Duration("duration", 5*time.Minute, "how long the load runs (it stops by itself)")
	workers   = flag.Int("workers", 16, "concurrent clients")
	perWorker = flag.Int("connections", 20, "API-key and OAuth connections owned by each worker")
	latency   = flag.Duration("provider-latency", 20*time.Millisecond, "the OAuth server's answer time")
	failRate  = flag.Float64("provider-failure-rate", 0.02, "share of token requests the OAuth server fails")
	interval  = flag.Duration("report", time.Minute, "how often RSS and goroutines are printed")
)

type client struct {
	addr string
	http *http.Client
}

// do sends one request with the root token; it returns the status and body.
func (c *client) do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.addr+"/v1/"+path, rd)
	req.Header.Set("X-Vault-Token", "root")
	if method == "PATCH" {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

// stats collects latencies and unexpected outcomes per operation.
type stats struct {
	mu         sync.Mutex
	latencies  map[string][]time.Duration
	unexpected map[string]int
	examples   []string
}

func (s *stats) record(op string, d time.Duration, status int, ok bool, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latencies[op] = append(s.latencies[op], d)
	if !ok {
		s.unexpected[op]++
		if len(s.examples) < 10 {
			s.examples = append(s.examples, fmt.Sprintf("%s: %d %s", op, status, strings.TrimSpace(string(body))))
		}
	}
}

// model is one worker's view of its API-key connections: absent, or
// present with an api_key and a plan.
type model map[string]*struct{ key, plan string }

func main() {
	flag.Parse()
	srv, err := vaultdev.StartWith(*vaultBin, *pluginDir, false)
	if err != nil {
		fatal(err)
	}
	defer srv.Stop()
	as := oauthtest.New()
	defer as.Close()
	as.SetDelay(*latency)
	redirect := srv.Addr + "/v1/connect/oauth/callback"
	as.RegisterRedirectURI(redirect)
	c := &client{addr: srv.Addr, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	must := func(method, path string, body any) {
		if status, b, err := c.do(method, path, body); err != nil || status >= 300 {
			fatal(fmt.Errorf("%s %s: %d %v %s", method, path, status, err, b))
		}
	}
	must("PUT", "connect/config", map[string]any{"redirect_url": redirect, "refresh_margin": "30s",
		"allowed_return_urls": loadReturnURL})
	must("PUT", "connect/integrations/load-key", map[string]any{"auth_mode": "API_KEY"})
	must("PUT", "connect/integrations/load-oauth", map[string]any{"auth_mode": "OAUTH2", "client_id": as.ClientID,
		"client_secret": as.ClientSecret, "auth_url": as.AuthURL(), "token_url": as.TokenURL(), "auth_style": "header"})
	as.SetFailureRate(*failRate)

	st := &stats{latencies: map[string][]time.Duration{}, unexpected: map[string]int{}}
	models := make([]model, *workers)
	oauthIDs := make([][]string, *workers)
	for w := range *workers {
		models[w] = model{}
		for i := range *perWorker {
			id := fmt.Sprintf("w%02d-o%03d", w, i)
			must("PUT", "connect/connections/load-oauth/"+id, map[string]any{"access_token": "at-load", "refresh_token": as.IssueRefreshToken(), "expires_in": 45})
			oauthIDs[w] = append(oauthIDs[w], id)
		}
	}

	stop := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runWorker(c, st, w, models[w], oauthIDs[w], stop)
		}()
	}
	start := time.Now()
	type sample struct{ rssKB, goroutines int }
	var samples []sample
	report := func() {
		s := sample{}
		for _, pid := range srv.PluginPIDs() {
			s.rssKB += vaultdev.RSSKB(pid)
		}
		if status, b, err := c.do("GET", "connect/status", nil); err == nil && status == 200 {
			var out struct {
				Data struct {
					Goroutines int `json:"goroutines"`
				} `json:"data"`
			}
			json.Unmarshal(b, &out)
			s.goroutines = out.Data.Goroutines
		}
		samples = append(samples, s)
		fmt.Printf("at %v: plugin RSS %.1f MB, goroutines %d\n", time.Since(start).Round(time.Second), float64(s.rssKB)/1024, s.goroutines)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(*interval)
	for running := true; running; {
		select {
		case <-tick.C:
			report()
		case <-done:
			running = false
		}
	}
	tick.Stop()
	report()
	elapsed := time.Since(start)

	// Storage against the models.
	mismatches := 0
	as.SetFailureRate(0)
	for w, m := range models {
		for i := range *perWorker {
			id := fmt.Sprintf("w%02d-k%03d", w, i)
			status, b, _ := c.do("GET", "connect/connections/load-key/"+id, nil)
			want := m[id]
			var got struct {
				Data struct {
					APIKey   string         `json:"api_key"`
					Metadata map[string]any `json:"metadata"`
				} `json:"data"`
			}
			json.Unmarshal(b, &got)
			switch {
			case want == nil && status != 404, want != nil && status != 200,
				want != nil && (got.Data.APIKey != want.key || fmt.Sprint(got.Data.Metadata["plan"]) != want.plan):
				mismatches++
				if mismatches <= 5 {
					fmt.Printf("mismatch %s: status %d, got %s, want %+v\n", id, status, b, want)
				}
			}
		}
		for _, id := range oauthIDs[w] {
			status, b, _ := c.do("GET", "connect/connections/load-oauth/"+id+"/raw", nil)
			var got struct {
				Data struct {
					RefreshToken string `json:"refresh_token"`
				} `json:"data"`
			}
			json.Unmarshal(b, &got)
			if status != 200 || !as.RefreshTokenValid(got.Data.RefreshToken) {
				mismatches++
				if mismatches <= 5 {
					fmt.Printf("OAuth %s: status %d, refresh token valid %v\n", id, status, as.RefreshTokenValid(got.Data.RefreshToken))
				}
			}
		}
	}

	fmt.Printf("\nload: %d workers for %v through Vault at %s; provider latency %v, failure rate %.0f%%\n\n", *workers, elapsed.Round(time.Second), srv.Addr, *latency, *failRate*100)
	fmt.Println("| operation | requests | p50 | p99 | unexpected |")
	fmt.Println("|---|---|---|---|---|")
	ops := make([]string, 0, len(st.latencies))
	for op := range st.latencies {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	unexpected := 0
	for _, op := range ops {
		l := st.latencies[op]
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		fmt.Printf("| %s | %d | %v | %v | %d |\n", op, len(l), l[len(l)/2].Round(100*time.Microsecond), l[len(l)*99/100].Round(100*time.Microsecond), st.unexpected[op])
		unexpected += st.unexpected[op]
	}
	for _, ex := range st.examples {
		fmt.Println("unexpected:", ex)
	}
	first, last := samples[0], samples[len(samples)-1]
	flat := len(samples) < 2 || (float64(last.rssKB) <= 1.5*float64(first.rssKB)+20*1024 && last.goroutines <= first.goroutines+25)
	fmt.Printf("\nfigure|load %v, %d workers: %d unexpected errors, %d model mismatches; plugin RSS %.0f → %.0f MB, goroutines %d → %d (flat: %v); provider refused %d refresh tokens\n",
		elapsed.Round(time.Second), *workers, unexpected, mismatches, float64(first.rssKB)/1024, float64(last.rssKB)/1024, first.goroutines, last.goroutines, flat, as.Refusals())
	if unexpected > 0 || mismatches > 0 || !flat || as.Refusals() > 0 {
		os.Exit(1)
	}
}

// runWorker loops over random operations on the worker's own connections
// until stop.
func runWorker(c *client, st *stats, w int, m model, oauthIDs []string, stop time.Time) {
	r := rand.New(rand.NewPCG(uint64(w), 7))
	for time.Now().Before(stop) {
		keyID := fmt.Sprintf("w%02d-k%03d", w, r.IntN(len(oauthIDs)))
		oauthID := oauthIDs[r.IntN(len(oauthIDs))]
		t0 := time.Now()
		var (
			op     string
			status int
			body   []byte
			ok     bool
		)
		switch n := r.IntN(100); {
		case n < 40: // read an API-key connection
			op = "read api key"
			status, body, _ = c.do("GET", "connect/connections/load-key/"+keyID, nil)
			ok = (m[keyID] == nil && status == 404) || (m[keyID] != nil && status == 200 && bytes.Contains(body, []byte(m[keyID].key)))
		case n < 60: // read an OAuth connection (refreshes when due)
			op = "read oauth"
			status, body, _ = c.do("GET", "connect/connections/load-oauth/"+oauthID, nil)
			ok = status == 200 || status == 424 // 424: expired and the flaky provider failed
		case n < 70:
			op = "write api key"
			key := fmt.Sprintf("sk_load_%d", r.Int64())
			plan := "free"
			if m[keyID] != nil {
				plan = m[keyID].plan
			}
			status, body, _ = c.do("PUT", "connect/connections/load-key/"+keyID, map[string]any{"api_key": key, "metadata": map[string]any{"plan": plan}})
			if ok = status == 200; ok {
				m[keyID] = &struct{ key, plan string }{key, plan}
			}
		case n < 80:
			op = "patch metadata"
			plan := fmt.Sprintf("plan-%d", r.IntN(100))
			status, body, _ = c.do("PATCH", "connect/connections/load-key/"+keyID+"/metadata", map[string]any{"plan": plan})
			if m[keyID] == nil {
				ok = status == 404
			} else if ok = status == 200; ok {
				m[keyID].plan = plan
			}
		case n < 85:
			op = "delete"
			status, body, _ = c.do("DELETE", "connect/connections/load-key/"+keyID, nil)
			if ok = status == 204 || status == 200; ok {
				delete(m, keyID)
			}
		case n < 92:
			op = "authorize"
			// The application completes (the default): it names where the
			// browser returns and the browser's binding.
			status, body, _ = c.do("PUT", "connect/connections/load-oauth/"+fmt.Sprintf("w%02d-new-%d", w, r.IntN(50))+"/authorize",
				map[string]any{"return_url": loadReturnURL, "browser_binding": fmt.Sprintf("load-binding-of-worker-%02d", w)})
			ok = status == 200 && bytes.Contains(body, []byte("authorization_url"))
		default:
			op = "forced refresh"
			status, body, _ = c.do("PUT", "connect/connections/load-oauth/"+oauthID+"/refresh", map[string]any{})
			ok = status == 200 || (status == 424 && bytes.Contains(body, []byte("temporarily_unavailable")))
		}
		st.record(op, time.Since(t0), status, ok, body)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(1)
}
