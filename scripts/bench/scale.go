// SPDX-License-Identifier: MPL-2.0

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// The scale mode (make bench-scale): the in-process scale
// benchmarks at each size, then a single-node Vault on integrated storage
// for write throughput against KV-v2 and plugin start at each Raft size,
// and docs/performance.md with plots drawn from these measurements.
var (
	scaleMode  = flag.Bool("scale", false, "run the scale benchmarks and write the report instead of the quick bench")
	scaleOut   = flag.String("out", "docs/performance.md", "report to write in scale mode (plots go next to it)")
	inprocSize = flag.String("sizes", "10000,100000,1000000", "connection counts of the in-process benchmarks")
	raftSizes  = flag.String("raft-sizes", "10000,100000", "connection counts stored on integrated storage for the start benchmark")
	importSize = flag.Int("import-batch", 100, "connections per import request in the write benchmark")
	raftOnly   = flag.Bool("raft-start-only", false, "with -scale: run only the start benchmark on integrated storage, and write no report")
)

// scaleResults is everything the report shows.
type scaleResults struct {
	machine   string
	inproc    map[string]map[int]map[string]float64 // benchmark -> size -> unit -> value
	inprocRaw string
	writes    []writeRow
	raftStart []startRow
}

type writeRow struct {
	name   string
	perSec float64
}

type startRow struct {
	n                 int
	stored            time.Duration
	firstRead, queue  time.Duration
	checked           time.Duration // to queue_checked: every entry read
	rssMB             float64
	connectionsPerSec float64
}

func runScale() {
	res := &scaleResults{machine: machineDescription()}
	if !*raftOnly {
		res.inproc, res.inprocRaw = runInProcess(*inprocSize)
	}

	dir, err := os.MkdirTemp("", "bench-raft-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := vaultdev.StartRaft(*vaultBin, *pluginDir, dir)
	if err != nil {
		fatal(err)
	}
	defer s.Kill()
	b := &bench{s: &s.Server, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * *clients}}}
	if !*raftOnly {
		res.writes = b.writeThroughput()
	}
	for _, n := range parseSizes(*raftSizes) {
		res.raftStart = append(res.raftStart, b.raftStart(n))
	}
	if *raftOnly {
		return
	}
	if err := writeReport(*scaleOut, res); err != nil {
		fatal(err)
	}
	fmt.Printf("\nwrote %s\n", *scaleOut)
}

func parseSizes(spec string) []int {
	var out []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fatal(fmt.Errorf("size %q: %v", f, err))
		}
		out = append(out, n)
	}
	return out
}

// machineDescription names the CPU, its cores and memory, and Go.
func machineDescription() string {
	cpu, mem := "unknown CPU", "unknown memory"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^MemTotal:\s*(\d+) kB`).FindSubmatch(b); m != nil {
			kb, _ := strconv.Atoi(string(m[1]))
			mem = fmt.Sprintf("%.0f GB", float64(kb)/(1<<20))
		}
	}
	goVersion, _ := exec.Command("go", "env", "GOVERSION").Output()
	cores, _ := exec.Command("nproc").Output()
	return fmt.Sprintf("%s, %s cores, %s RAM, %s, %s", cpu, strings.TrimSpace(string(cores)), mem,
		strings.TrimSpace(string(goVersion)), time.Now().UTC().Format("2006-01-02"))
}

// benchLineRe matches one result line of go test -bench.
var benchLineRe = regexp.MustCompile(`^(Benchmark\w+)(?:/n=(\d+))?-\d+\s+\d+\s+\d+ ns/op\s+(.*)$`)

// runInProcess runs the in-process scale benchmarks and parses their
// metrics.
func runInProcess(sizes string) (map[string]map[int]map[string]float64, string) {
	fmt.Printf("== in-process scale benchmarks at %s connections\n", sizes)
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "BenchmarkScale", "-benchtime", "1x", "-timeout", "60m", ".")
	cmd.Env = append(os.Environ(), "CONNECT_SCALE_SIZES="+sizes)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		fatal(fmt.Errorf("go test -bench: %v\n%s", err, out.String()))
	}
	fmt.Print(out.String())
	res := map[string]map[int]map[string]float64{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		m := benchLineRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		if res[m[1]] == nil {
			res[m[1]] = map[int]map[string]float64{}
		}
		metrics := map[string]float64{}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				metrics[f[i+1]] = v
			}
		}
		res[m[1]][n] = metrics
	}
	return res, out.String()
}

// writeThroughput measures creates per second from 32 clients: KV-v2 (the
// external plugin), single connection writes, and imports of importSize
// connections per request; the same payload each time.
func (b *bench) writeThroughput() []writeRow {
	fmt.Printf("\n== write throughput on integrated storage, %d clients\n", *clients)
	if err := b.s.RegisterPlugin("vault-plugin-secrets-kv", "kv-external"); err != nil {
		fatal(err)
	}
	b.cli("secrets", "enable", "-path=kvx", "kv-external")
	b.mustDo("PUT", "connect/integrations/bench-key", map[string]any{"auth_mode": "API_KEY"})
	// A second mount of the plugin with one webhook receiver on loopback
	// that answers at once: what recording (and delivering) an event costs
	// a write.
	var received atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	b.cli("secrets", "enable", "-path=connecth", "connect")
	b.mustDo("PUT", "connecth/integrations/bench-key", map[string]any{"auth_mode": "API_KEY"})
	b.mustDo("PUT", "connecth/webhooks/app", map[string]any{"url": rcv.URL})
	apiKey := "sk_live_" + strings.Repeat("k", 40)
	meta := map[string]any{"customer": "Acme Corp", "plan": "pro"}
	targets := []struct {
		name string
		req  func(worker, seq int) (method, path string, body any, items int)
	}{
		{"KV-v2 external plugin, one secret per request", func(w, i int) (string, string, any, int) {
			return "PUT", fmt.Sprintf("kvx/data/w%d-%d", w, i), map[string]any{"data": map[string]any{"api_key": apiKey, "metadata": meta}}, 1
		}},
		{"connect, one connection per request", func(w, i int) (string, string, any, int) {
			return "PUT", fmt.Sprintf("connect/connections/bench-key/w%d-%d", w, i), map[string]any{"api_key": apiKey, "metadata": meta}, 1
		}},
		{"connect, one connection per request, one webhook receiver", func(w, i int) (string, string, any, int) {
			return "PUT", fmt.Sprintf("connecth/connections/bench-key/w%d-%d", w, i), map[string]any{"api_key": apiKey, "metadata": meta}, 1
		}},
		{fmt.Sprintf("connect import, %d connections per request", *importSize), func(w, i int) (string, string, any, int) {
			items := make([]any, *importSize)
			for j := range items {
				items[j] = map[string]any{"connection_id": fmt.Sprintf("i%d-%d-%d", w, i, j), "api_key": apiKey, "metadata": meta}
			}
			return "POST", "connect/import/bench-key", map[string]any{"overwrite": true, "connections": items}, *importSize
		}},
	}
	counts := make([]int64, len(targets))
	for _, t := range targets { // warm up
		b.writeLoad(time.Second, t.req)
	}
	for range *rounds {
		for i, t := range targets {
			counts[i] += b.writeLoad(*roundTime, t.req)
		}
	}
	elapsed := (time.Duration(*rounds) * *roundTime).Seconds()
	rows := make([]writeRow, len(targets))
	for i, t := range targets {
		rows[i] = writeRow{t.name, float64(counts[i]) / elapsed}
		fmt.Printf("- %s: %.0f writes/s (%.2fx KV-v2)\n", t.name, rows[i].perSec, rows[i].perSec/rows[0].perSec)
	}
	fmt.Printf("- with a receiver / without: %.2fx (target >= 0.9x); %d events delivered meanwhile\n", rows[2].perSec/rows[1].perSec, received.Load())
	return rows
}

// writeSeq numbers writes across rounds, so that every write creates.
var writeSeq atomic.Int64

// writeLoad runs req from every client for d and returns the items written.
func (b *bench) writeLoad(d time.Duration, req func(worker, seq int) (string, string, any, int)) int64 {
	var n atomic.Int64
	var failed atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				method, path, body, items := req(w, int(writeSeq.Add(1)))
				status, out := b.do(method, path, body)
				if status >= 300 || (items > 1 && !bytes.Contains(out, []byte(`"failed":0`))) {
					failed.Store(fmt.Sprintf("%s %s: %d %.300s", method, path, status, out))
					return
				}
				n.Add(int64(items))
			}
		}()
	}
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		fatal(fmt.Errorf("write failed: %s", msg))
	}
	return n.Load()
}

// raftStart stores n OAuth connections (expiries over 24 hours) through
// imports, reloads the plugin and measures its start.
func (b *bench) raftStart(n int) startRow {
	fmt.Printf("\n== plugin start with %d connections on integrated storage\n", n)
	integration := fmt.Sprintf("start-%d", n)
	b.mustDo("PUT", "connect/integrations/"+integration, map[string]any{"auth_mode": "OAUTH2", "client_id": "c",
		"client_secret": "s", "auth_url": "https://p.example/a", "token_url": "https://p.example/t"})
	const batch = 1000
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := next.Add(batch) - batch; first < int64(n); first = next.Add(batch) - batch {
				items := make([]any, 0, batch)
				for i := first; i < min(first+batch, int64(n)); i++ {
					items = append(items, map[string]any{"connection_id": fmt.Sprintf("c%07d", i), "access_token": "gho_" + strings.Repeat("a", 36),
						"refresh_token": "ghr_" + strings.Repeat("r", 36), "expires_in": 3600 + int(i%86400)})
				}
				b.mustDo("POST", "connect/import/"+integration, map[string]any{"connections": items})
			}
		}()
	}
	wg.Wait()
	row := startRow{n: n, stored: time.Since(start)}
	row.connectionsPerSec = float64(n) / row.stored.Seconds()
	fmt.Printf("- stored through imports in %v (%.0f connections/s)\n", row.stored.Round(time.Millisecond), row.connectionsPerSec)
	row.firstRead, row.queue, row.checked, row.rssMB = b.reloadAndWait(integration + "/c0000000")
	fmt.Printf("- first read %v, queue complete %v, every connection read and checked %v, plugin RSS %.0f MB\n",
		row.firstRead.Round(time.Millisecond), row.queue.Round(time.Millisecond), row.checked.Round(time.Millisecond), row.rssMB)
	return row
}

// reloadAndWait reloads the plugin and returns the time to the first
// served read of conn (integration/id), to a complete refresh queue (from
// the schedule marks), to the check of every stored connection, and the new
// plugin process's RSS.
func (b *bench) reloadAndWait(conn string) (firstRead, queue, checked time.Duration, rssMB float64) {
	before := map[int]bool{}
	for _, pid := range vaultdev.AllPluginPIDs() {
		before[pid] = true
	}
	t0 := time.Now()
	b.cli("plugin", "reload", "-plugin=connect")
	for {
		if status, _ := b.do("GET", "connect/connections/"+conn, nil); status == http.StatusOK {
			firstRead = time.Since(t0)
			break
		}
		if time.Since(t0) > time.Minute {
			fatal(fmt.Errorf("no read served within a minute of the reload"))
		}
		time.Sleep(2 * time.Millisecond)
	}
	for {
		var st struct {
			Data struct {
				Ready   bool  `json:"queue_ready"`
				Checked *bool `json:"queue_checked"` // nil: a release before schedule marks, ready once checked
			} `json:"data"`
		}
		json.Unmarshal(b.mustDo("GET", "connect/status", nil), &st)
		if st.Data.Ready && queue == 0 {
			queue = time.Since(t0)
		}
		if st.Data.Checked == nil && st.Data.Ready || st.Data.Checked != nil && *st.Data.Checked {
			checked = time.Since(t0)
			break
		}
		if time.Since(t0) > 10*time.Minute {
			fatal(fmt.Errorf("queue not built within 10 minutes"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, pid := range vaultdev.AllPluginPIDs() {
		if kb := vaultdev.RSSKB(pid); !before[pid] && kb > 0 {
			rssMB = float64(kb) / 1024
		}
	}
	return firstRead, queue, checked, rssMB
}
