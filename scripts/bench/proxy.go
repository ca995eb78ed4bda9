// SPDX-License-Identifier: MPL-2.0

package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	proxyOnly    = flag.Bool("proxy-only", false, "run only the proxy benchmark")
	proxyClients = flag.String("proxy-clients", "1,32", "the proxy benchmark's numbers of concurrent clients, comma-separated")
)

// The proxy row's three targets, in the order they are reported.
const (
	targetDirect = iota // (a) the GET straight to the loopback API
	targetRead          // (b) a plain connection read through Vault
	targetProxy         // (c) the same GET as (a) through the proxy
	numTargets
)

// proxyTargetNames name the targets in the table.
var proxyTargetNames = [numTargets]string{"(a) GET straight to the API", "(b) plain connection read", "(c) the GET through the proxy"}

// proxyFigures are one target's measurements at one number of clients:
// every round's requests and latencies, and the CPU time each process
// spent while it ran.
type proxyFigures struct {
	rounds [][]time.Duration
	cpu    cpuTimes
}

func (f *proxyFigures) all() []time.Duration {
	var out []time.Duration
	for _, r := range f.rounds {
		out = append(out, r...)
	}
	slices.Sort(out)
	return out
}

// rate is the target's requests per second over all its rounds.
func (f *proxyFigures) rate(roundTime time.Duration) float64 {
	return float64(len(f.all())) / (time.Duration(len(f.rounds)) * roundTime).Seconds()
}

// roundRate is one round's requests per second.
func (f *proxyFigures) roundRate(i int, roundTime time.Duration) float64 {
	return float64(len(f.rounds[i])) / roundTime.Seconds()
}

// pct is the p-quantile of sorted latencies.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}

// proxyThroughput measures, in one run on one server, at each number of
// clients of -proxy-clients: (a) a GET to a loopback API straight, (b) a
// plain connection read through Vault, (c) the same GET as (a) through the
// proxy (connections/<i>/<id>/proxy/user). Rounds are interleaved so that
// the three share the machine's state. It reports each target's
// throughput, p50 and p99 and the CPU each process spent per request, then
// what (c) adds over (a), split into Vault's floor (b)−(a) (a proxied call
// is a Vault request: it cannot cost less than a plain read) and the
// proxy's own (c)−(b), with the throughput ratios.
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

	targets := [numTargets]struct {
		url    string
		header http.Header
	}{
		targetDirect: {api.URL + "/user", http.Header{"Authorization": {"Bearer gho_bench"}}},
		targetRead:   {b.s.Addr + "/v1/connect/connections/bench-proxy/acme", http.Header{"X-Vault-Token": {b.s.Token}}},
		targetProxy:  {b.s.Addr + "/v1/connect/connections/bench-proxy/acme/proxy/user", http.Header{"X-Vault-Token": {b.s.Token}}},
	}
	counts := parseClientCounts(*proxyClients)
	procs := b.benchProcesses()
	figures := make(map[int]*[numTargets]proxyFigures)
	for _, n := range counts {
		figures[n] = &[numTargets]proxyFigures{}
		for _, t := range targets { // warm up: connections, caches
			b.timedLoad(n, t.url, t.header, time.Second)
		}
	}
	for range *rounds {
		for _, n := range counts {
			for i, t := range targets {
				before := procs.read()
				_, l := b.timedLoad(n, t.url, t.header, *roundTime)
				f := &figures[n][i]
				f.cpu = f.cpu.add(procs.read().sub(before))
				f.rounds = append(f.rounds, l)
			}
		}
	}
	b.printProxyFigures(counts, figures)
}

// printProxyFigures prints the proxy row: the table, then per number of
// clients the latency (c) adds over (a) and its split, with the targets.
func (b *bench) printProxyFigures(counts []int, figures map[int]*[numTargets]proxyFigures) {
	rt := *roundTime
	fmt.Printf("\nProxy: (a) a GET straight to a loopback API, (b) a plain connection read through Vault, (c) the same GET\n"+
		"through the proxy; %d x %v per target and number of clients, interleaved, audit device %v. CPU per request:\n"+
		"the Vault server, the plugin, and the bench process (its clients and the loopback API).\n\n", *rounds, rt, *audit)
	fmt.Printf("| clients | target                        |   req/s |      p50 |      p99 | Vault CPU | plugin CPU | bench+API CPU |\n")
	fmt.Printf("|--------:|-------------------------------|--------:|---------:|---------:|----------:|-----------:|--------------:|\n")
	for _, n := range counts {
		for i := range numTargets {
			f := &figures[n][i]
			all := f.all()
			per := func(d time.Duration) string {
				return fmt.Sprintf("%dµs", (d / time.Duration(max(len(all), 1))).Microseconds())
			}
			fmt.Printf("| %7d | %-29s | %7.0f | %8s | %8s | %9s | %10s | %13s |\n", n, proxyTargetNames[i], f.rate(rt),
				round(pct(all, 0.5)), round(pct(all, 0.99)), per(f.cpu.vault), per(f.cpu.plugin), per(f.cpu.bench))
		}
	}
	fmt.Println()
	for _, n := range counts {
		f := figures[n]
		p := func(i int, q float64) time.Duration { return pct(f[i].all(), q) }
		added50, added99 := p(targetProxy, 0.5)-p(targetDirect, 0.5), p(targetProxy, 0.99)-p(targetDirect, 0.99)
		floor50, floor99 := p(targetRead, 0.5)-p(targetDirect, 0.5), p(targetRead, 0.99)-p(targetDirect, 0.99)
		own50, own99 := p(targetProxy, 0.5)-p(targetRead, 0.5), p(targetProxy, 0.99)-p(targetRead, 0.99)
		ratio := f[targetProxy].rate(rt) / f[targetRead].rate(rt)
		fmt.Printf("%d client(s): (c) adds over (a) p50 %s, p99 %s; of that Vault's floor (b)-(a) p50 %s, p99 %s, and the proxy's own (c)-(b) p50 %s, p99 %s.\n",
			n, round(added50), round(added99), round(floor50), round(floor99), round(own50), round(own99))
		fmt.Printf("  throughput (c) %.2fx (b)'s, %.2fx (a)'s; per round: (c)/(b) %s, added p50 %s.\n",
			ratio, f[targetProxy].rate(rt)/f[targetDirect].rate(rt), perRound(f, func(r int) string {
				return fmt.Sprintf("%.2f", f[targetProxy].roundRate(r, rt)/f[targetRead].roundRate(r, rt))
			}), perRound(f, func(r int) string {
				return round(roundPct(f[targetProxy].rounds[r], 0.5) - roundPct(f[targetDirect].rounds[r], 0.5)).String()
			}))
		fmt.Printf("  target added p50 < 1ms: %s; target (c) >= 0.6x (b): %s\n", metOrNot(added50 < time.Millisecond), metOrNot(ratio >= 0.6))
	}
}

// perRound joins one figure of each round.
func perRound(f *[numTargets]proxyFigures, fig func(r int) string) string {
	var out []string
	for r := range f[targetProxy].rounds {
		out = append(out, fig(r))
	}
	return strings.Join(out, " / ")
}

// roundPct is the p-quantile of one round's latencies.
func roundPct(l []time.Duration, p float64) time.Duration {
	s := slices.Clone(l)
	slices.Sort(s)
	return pct(s, p)
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }

func metOrNot(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// parseClientCounts reads -proxy-clients.
func parseClientCounts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("-proxy-clients: %q is not a number of clients", f))
		}
		out = append(out, n)
	}
	return out
}

// benchProcs are the processes whose CPU time the proxy row reads: the
// Vault server, its connect plugin processes, and this one.
type benchProcs struct {
	vault   int
	plugins []int
}

// benchProcesses finds the plugin's processes and Vault's (their parent).
func (b *bench) benchProcesses() benchProcs {
	p := benchProcs{plugins: b.s.PluginPIDs()}
	if len(p.plugins) > 0 {
		if st := procStat(p.plugins[0]); len(st) > 1 {
			p.vault, _ = strconv.Atoi(st[1])
		}
	}
	return p
}

// cpuTimes are CPU times (user and system) of the bench's processes.
type cpuTimes struct{ vault, plugin, bench time.Duration }

func (c cpuTimes) add(o cpuTimes) cpuTimes {
	return cpuTimes{c.vault + o.vault, c.plugin + o.plugin, c.bench + o.bench}
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{c.vault - o.vault, c.plugin - o.plugin, c.bench - o.bench}
}

// read reads the processes' CPU times now (0 for one that is gone).
func (p benchProcs) read() cpuTimes {
	var c cpuTimes
	c.vault = cpuTime(p.vault)
	for _, pid := range p.plugins {
		c.plugin += cpuTime(pid)
	}
	c.bench = cpuTime(os.Getpid())
	return c
}

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat's times.
const clockTick = 10 * time.Millisecond

// cpuTime is a process's user and system CPU time from /proc.
func cpuTime(pid int) time.Duration {
	st := procStat(pid)
	if len(st) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(st[11], 10, 64)
	stime, _ := strconv.ParseInt(st[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// procStat is /proc/<pid>/stat's fields after the command name (state,
// ppid, …), nil when unreadable.
func procStat(pid int) []string {
	if pid <= 0 {
		return nil
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(raw)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

// timedLoad GETs url from n clients for d and returns the successful
// requests and each one's latency.
func (b *bench) timedLoad(n int, url string, header http.Header, d time.Duration) (int64, []time.Duration) {
	var mu sync.Mutex
	var all []time.Duration
	var bad int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range n {
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
