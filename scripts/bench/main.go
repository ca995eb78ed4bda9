// SPDX-License-Identifier: MPL-2.0

// Command bench measures the engine through a real Vault server (reads
// against KV-v2, start after a reload) and prints the figures with their
// ratios, all measured in one run on one server:
//
//  1. read throughput with 32 concurrent HTTP clients of an API-key
//     connection and of a fresh OAuth connection, against a KV-v2 read of the
//     same data, with KV-v2 both builtin and as an external plugin built from
//     github.com/hashicorp/vault-plugin-secrets-kv;
//  2. the proxy: (a) a GET straight to a loopback API, (b) a plain
//     connection read, (c) the same GET through connections/<i>/<id>/proxy/...,
//     at 1 and 32 clients, with what (c) adds over (a) split into Vault's
//     floor (b)-(a) and the proxy's own (c)-(b) (proxy.go);
//  3. plugin start with many stored connections: time to the first served
//     read, time to a fully built refresh queue, and the plugin's RSS.
//
// scripts/bench.sh builds what it needs and runs it after the in-process
// benchmarks.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

var (
	vaultBin   = flag.String("vault", "bin/vault", "Vault binary")
	pluginDir  = flag.String("plugins", "bin/plugins", "plugin directory with the connect and kv plugins")
	clients    = flag.Int("clients", 32, "concurrent HTTP clients")
	roundTime  = flag.Duration("round", 3*time.Second, "length of one measuring round per target")
	rounds     = flag.Int("rounds", 3, "rounds per target, interleaved")
	startConns = flag.Int("connections", 100000, "connections stored for the start benchmark")
	audit      = flag.Bool("audit", false, "enable a file audit device (it HMACs every response and slows every target)")
)

func main() {
	flag.Parse()
	if *scaleMode {
		runScale()
		return
	}
	if *eventsOnly {
		runEvents()
		return
	}
	s, err := vaultdev.StartWith(*vaultBin, *pluginDir, *audit)
	if err != nil {
		fatal(err)
	}
	defer s.Stop()
	b := &bench{s: s, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * *clients}}}
	if *proxyOnly {
		b.proxyThroughput()
		return
	}
	b.readThroughput()
	b.proxyThroughput()
	b.pluginStart()
}

type bench struct {
	s    *vaultdev.Server
	http *http.Client
}

func (b *bench) cli(args ...string) string {
	out, err := b.s.CLI(nil, args...)
	if err != nil {
		fatal(fmt.Errorf("vault %s: %v\n%s", strings.Join(args, " "), err, out))
	}
	return out
}

// do sends one request and returns its status and body.
func (b *bench) do(method, path string, body any) (int, []byte) {
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.s.Addr+"/v1/"+path, r)
	req.Header.Set("X-Vault-Token", b.s.Token)
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (b *bench) mustDo(method, path string, body any) []byte {
	status, out := b.do(method, path, body)
	if status >= 300 {
		fatal(fmt.Errorf("%s %s: %d %s", method, path, status, out))
	}
	return out
}

func (b *bench) readThroughput() {
	// The external KV-v2 (scripts/vault/kvv2) fixes its own version: Vault
	// gives the version option only to the builtin "kv".
	b.cli("secrets", "enable", "-path=kvb", "-version=2", "kv")
	if err := b.s.RegisterPlugin("vault-plugin-secrets-kv", "kv-external"); err != nil {
		fatal(err)
	}
	b.cli("secrets", "enable", "-path=kvx", "kv-external")
	var mounts struct {
		Data map[string]struct {
			RunningVersion string `json:"running_plugin_version"`
			RunningSHA     string `json:"running_sha256"`
		} `json:"data"`
	}
	json.Unmarshal(b.mustDo("GET", "sys/mounts", nil), &mounts)
	if mounts.Data["kvx/"].RunningSHA == "" || mounts.Data["kvb/"].RunningSHA != "" {
		fatal(fmt.Errorf("kvb/ should run the builtin and kvx/ the external plugin: %+v", mounts.Data))
	}

	b.mustDo("PUT", "connect/integrations/bench-key", map[string]any{"auth_mode": "API_KEY"})
	b.mustDo("PUT", "connect/connections/bench-key/acme", map[string]any{
		"api_key": "sk_live_" + strings.Repeat("k", 40), "metadata": map[string]any{"customer": "Acme Corp", "plan": "pro"}})
	b.mustDo("PUT", "connect/integrations/bench-oauth", map[string]any{"auth_mode": "OAUTH2", "client_id": "c",
		"client_secret": "s", "auth_url": "https://p.example/a", "token_url": "https://p.example/t"})
	b.mustDo("PUT", "connect/connections/bench-oauth/acme", map[string]any{"access_token": "gho_" + strings.Repeat("a", 36),
		"refresh_token": "ghr_" + strings.Repeat("r", 36), "expires_in": 7 * 24 * 3600})

	// KV holds the same data a connection read returns: same size.
	var conn struct {
		Data map[string]any `json:"data"`
	}
	json.Unmarshal(b.mustDo("GET", "connect/connections/bench-key/acme", nil), &conn)
	for _, mount := range []string{"kvb", "kvx"} {
		b.mustDo("PUT", mount+"/data/acme", map[string]any{"data": conn.Data})
	}
	// The ceiling answers the same fields, doing nothing else.
	if err := b.s.RegisterPlugin("connect-ceiling", "connect-ceiling"); err != nil {
		fatal(err)
	}
	b.cli("secrets", "enable", "-path=ceiling", "connect-ceiling")
	b.mustDo("PUT", "ceiling/answer", map[string]any{"data": conn.Data})
	var ceilingData struct {
		Data map[string]any `json:"data"`
	}
	json.Unmarshal(b.mustDo("GET", "ceiling/connections/bench-key/acme", nil), &ceilingData)
	if !reflect.DeepEqual(ceilingData.Data, conn.Data) {
		fatal(fmt.Errorf("the ceiling answers %v, the connection read %v", ceilingData.Data, conn.Data))
	}

	targets := []struct{ name, path string }{
		{"KV-v2 builtin", "kvb/data/acme"},
		{"KV-v2 external plugin", "kvx/data/acme"},
		{"connect API_KEY connection", "connect/connections/bench-key/acme"},
		{"connect OAuth connection (fresh)", "connect/connections/bench-oauth/acme"},
		{"same-fields ceiling (do-nothing plugin)", "ceiling/connections/bench-key/acme"},
	}
	ops := make([]int64, len(targets))
	for _, t := range targets { // warm up
		b.load(t.path, time.Second)
	}
	for range *rounds {
		for i, t := range targets {
			ops[i] += b.load(t.path, *roundTime)
		}
	}
	elapsed := (time.Duration(*rounds) * *roundTime).Seconds()
	rate := func(i int) float64 { return float64(ops[i]) / elapsed }
	fmt.Printf("\nRead throughput, %d concurrent HTTP clients, %d x %v per target, interleaved, audit device %v:\n\n", *clients, *rounds, *roundTime, *audit)
	ceiling := len(targets) - 1
	fmt.Printf("| %-40s | %10s | %-16s | %-16s | %-16s |\n", "target", "reads/s", "vs KV external", "vs KV builtin", "vs ceiling")
	fmt.Printf("|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 42), strings.Repeat("-", 12), strings.Repeat("-", 18), strings.Repeat("-", 18), strings.Repeat("-", 18))
	for i, t := range targets {
		fmt.Printf("| %-40s | %10.0f | %15.2fx | %15.2fx | %15.2fx |\n", t.name, rate(i), rate(i)/rate(1), rate(i)/rate(0), rate(i)/rate(ceiling))
	}
	fmt.Printf("\nTarget: an API-key connection read >= 0.95x the same-fields ceiling: %.2fx\n", rate(2)/rate(ceiling))
}

// load reads path from all clients for d and returns the successful reads.
func (b *bench) load(path string, d time.Duration) int64 {
	var n, bad atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if status, _ := b.do("GET", path, nil); status == http.StatusOK {
					n.Add(1)
				} else {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		fatal(fmt.Errorf("%d failed reads of %s", bad.Load(), path))
	}
	return n.Load()
}

func (b *bench) pluginStart() {
	n := *startConns
	fmt.Printf("\nPlugin start with %d stored OAuth connections:\n\n", n)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				b.mustDo("PUT", fmt.Sprintf("connect/connections/bench-oauth/c%06d", i), map[string]any{
					"access_token": "at", "refresh_token": "rt", "expires_in": 2*3600 + int(i%3600)})
			}
		}()
	}
	wg.Wait()
	fmt.Printf("- stored them through Vault in %v\n", time.Since(start).Round(time.Millisecond))

	before := map[int]bool{}
	for _, pid := range vaultdev.AllPluginPIDs() {
		before[pid] = true
	}
	t0 := time.Now()
	b.cli("plugin", "reload", "-plugin=connect")
	var firstRead time.Duration
	for {
		if status, _ := b.do("GET", "connect/connections/bench-oauth/c000000", nil); status == http.StatusOK {
			firstRead = time.Since(t0)
			break
		}
		if time.Since(t0) > time.Minute {
			fatal(fmt.Errorf("no read served within a minute of the reload"))
		}
		time.Sleep(2 * time.Millisecond)
	}
	var queueBuilt time.Duration
	for {
		var st struct {
			Data struct {
				Ready bool `json:"queue_ready"`
				Size  int  `json:"queue_size"`
			} `json:"data"`
		}
		json.Unmarshal(b.mustDo("GET", "connect/status", nil), &st)
		if st.Data.Ready {
			queueBuilt = time.Since(t0)
			if st.Data.Size < n {
				fatal(fmt.Errorf("queue built with %d of %d connections", st.Data.Size, n))
			}
			break
		}
		if time.Since(t0) > 5*time.Minute {
			fatal(fmt.Errorf("queue not built within 5 minutes"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var rss string
	for _, pid := range vaultdev.AllPluginPIDs() {
		if kb := vaultdev.RSSKB(pid); !before[pid] && kb > 0 {
			rss = fmt.Sprintf("%.0f MB", float64(kb)/1024)
		}
	}
	if rss == "" {
		rss = "unknown (no new plugin process found)"
	}
	fmt.Printf("- time from reload to the first served read: %v (target < 1s)\n", firstRead.Round(time.Millisecond))
	fmt.Printf("- time from reload to a fully built refresh queue: %v (target < 10s)\n", queueBuilt.Round(time.Millisecond))
	fmt.Printf("- plugin process RSS with the queue built: %s (target < 150 MB)\n", rss)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
