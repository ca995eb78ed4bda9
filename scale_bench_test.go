// SPDX-License-Identifier: MPL-2.0

// Cross-cutting on purpose: benchmarks the whole backend at scale, not one file.

package connect

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/catalog"
	"github.com/connect-vault/vault-plugin-secrets-connect/internal/oauthtest"
)

// The scale benchmarks back the engine's in-process scale targets. `make
// bench-scale` runs them at 10,000, 100,000 and 1,000,000 connections
// (CONNECT_SCALE_SIZES) and draws docs/performance.md from the metrics they
// report; each one also measures its own baseline in the same run.

// scaleSizes are the connection counts to measure, from CONNECT_SCALE_SIZES.
func scaleSizes(b *testing.B) []int {
	spec := os.Getenv("CONNECT_SCALE_SIZES")
	if spec == "" {
		spec = "10000"
	}
	var out []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("CONNECT_SCALE_SIZES: %q is not a count", f)
		}
		out = append(out, n)
	}
	return out
}

// seedMixed stores n connections in the scale targets' mix: 70% OAuth
// with expiries spread over 24 hours (integration "oauth"), 30% API keys
// (integration "keys").
func seedMixed(b *testing.B, s logical.Storage, n int) {
	b.Helper()
	ctx := context.Background()
	for _, in := range []*integrationEntry{
		{Name: "oauth", AuthMode: catalog.OAuth2, ClientID: "c", ClientSecret: "s",
			EndpointSettings: catalog.EndpointSettings{AuthURL: "https://p.example/a", TokenURL: "https://p.example/t"}},
		{Name: "keys", AuthMode: catalog.APIKey},
	} {
		if err := putIntegration(ctx, s, in); err != nil {
			b.Fatal(err)
		}
	}
	cfg, engine, now := defaultConfig(), newRefreshEngine(), time.Now()
	oauth := n * 7 / 10
	for i := range n {
		c := &connectionEntry{ConnectionID: fmt.Sprintf("c%07d", i), Metadata: map[string]any{}, ConnectionConfig: map[string]any{},
			CreatedAt: now, UpdatedAt: now}
		if i < oauth {
			c.Integration, c.AuthMode = "oauth", catalog.OAuth2
			c.Credentials = credentials{AccessToken: "gho_" + strings.Repeat("a", 36), RefreshToken: "ghr_" + strings.Repeat("r", 36),
				ExpiresAt: now.Add(time.Duration(i%86400) * time.Second).Add(time.Hour)}
			engine.schedule(c, cfg, now)
		} else {
			c.Integration, c.AuthMode = "keys", catalog.APIKey
			c.Credentials = credentials{APIKey: "sk_live_" + strings.Repeat("k", 40)}
		}
		if err := putConnection(ctx, s, c); err != nil {
			b.Fatal(err)
		}
		if _, err := putScheduleMark(ctx, s, c, nil, false); err != nil {
			b.Fatal(err)
		}
	}
	// As a mount whose every connection was saved by this release.
	if err := s.Put(ctx, &logical.StorageEntry{Key: scheduleMarksCompleteKey, Value: scheduleMarkValue}); err != nil {
		b.Fatal(err)
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkScaleStart: a plugin starting on n stored connections. Reports
// the time to the first served read, to a complete refresh queue (from the
// schedule marks) and to the check of every connection after it, the
// plugin's own heap (the storage's excluded), and, as the baseline, the
// time a bare scan of the same entries (list and get, no decoding) takes,
// measured just before each start; the ratio is of their sums.
// Targets at 1,000,000: first read < 1 s, queue < 30 s, memory < 400 MB.
func BenchmarkScaleStart(b *testing.B) {
	for _, n := range scaleSizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s := &logical.InmemStorage{}
			seedMixed(b, s, n)
			var scans, queues, checks time.Duration
			for range b.N {
				b.StopTimer()
				// The baseline beside each start, so that both see the
				// same machine.
				scan := bareScan(b, s)
				scans += scan
				heapBefore := heapInUse()
				b.StartTimer()
				firstRead, queue, checked, be := startAndWait(b, s, "oauth", "c0000000")
				b.StopTimer()
				queues += queue
				checks += checked
				if got := be.engine.QueueLen(); got != n*7/10 {
					b.Fatalf("queue holds %d, want %d", got, n*7/10)
				}
				heap := heapInUse() - heapBefore
				b.ReportMetric(float64(firstRead.Microseconds())/1000, "first-read-ms")
				b.ReportMetric(float64(queue.Milliseconds()), "queue-ms")
				b.ReportMetric(float64(scan.Milliseconds()), "bare-scan-ms")
				b.ReportMetric(float64(queues)/float64(scans), "queue/bare-scan")
				b.ReportMetric(float64(checked.Milliseconds()), "checked-ms")
				b.ReportMetric(float64(checks)/float64(scans), "checked/bare-scan")
				b.ReportMetric(float64(heap)/(1<<20), "plugin-heap-MB")
				be.Clean(context.Background())
				runtime.KeepAlive(be)
			}
		})
	}
}

// bareScan lists and gets every connection entry without decoding it: what
// any start that reads every entry pays at least.
func bareScan(b *testing.B, s logical.Storage) time.Duration {
	ctx := context.Background()
	start := time.Now()
	for _, in := range []string{"oauth", "keys"} {
		keys, err := s.List(ctx, connectionsPrefix(in))
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range keys {
			if _, err := s.Get(ctx, connectionsPrefix(in)+k); err != nil {
				b.Fatal(err)
			}
		}
	}
	return time.Since(start)
}

// startAndWait starts a backend on s and returns the time to its first
// served read of integration/id, to its complete refresh queue (from the
// schedule marks) and to the check of every stored connection.
func startAndWait(b *testing.B, s logical.Storage, integration, id string) (firstRead, queue, checked time.Duration, be *backend) {
	ctx := context.Background()
	t0 := time.Now()
	be = startBackend(b, s)
	resp, err := be.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "connections/" + integration + "/" + id, Storage: s})
	if err != nil || resp == nil || resp.IsError() {
		b.Fatalf("first read: %v %v", resp, err)
	}
	firstRead = time.Since(t0)
	for !be.engine.Ready() {
		time.Sleep(time.Millisecond)
	}
	queue = time.Since(t0)
	for !be.engine.Checked() {
		time.Sleep(time.Millisecond)
	}
	return firstRead, queue, time.Since(t0), be
}

// BenchmarkScaleIdleTick: storage operations of one periodic tick with n
// stored connections and none due. Target: at most 5 at 1,000,000.
func BenchmarkScaleIdleTick(b *testing.B) {
	for _, n := range scaleSizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			counting := &countingStorage{Storage: &logical.InmemStorage{}}
			seedMixed(b, counting, n)
			_, _, _, be := startAndWait(b, counting, "keys", fmt.Sprintf("c%07d", n-1))
			req := &logical.Request{Storage: counting}
			counting.ops.Store(0)
			b.ResetTimer()
			for range b.N {
				if err := be.periodic(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(counting.ops.Load())/float64(b.N), "storage-ops/tick")
			be.Clean(context.Background())
		})
	}
}

// BenchmarkScaleList: LIST of one page of 1,000 ids from the middle of one
// integration holding n connections, with key_info (reading the 1,000
// entries) and without. The baseline is the storage's own list of the same
// prefix. Target: < 200 ms at 1,000,000.
func BenchmarkScaleList(b *testing.B) {
	for _, n := range scaleSizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			s := &logical.InmemStorage{}
			ctx := context.Background()
			if err := putIntegration(ctx, s, &integrationEntry{Name: "keys", AuthMode: catalog.APIKey}); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			for i := range n {
				c := &connectionEntry{Integration: "keys", ConnectionID: fmt.Sprintf("c%07d", i), AuthMode: catalog.APIKey,
					Credentials: credentials{APIKey: "k"}, CreatedAt: now, UpdatedAt: now}
				if err := putConnection(ctx, s, c); err != nil {
					b.Fatal(err)
				}
			}
			_, _, _, be := startAndWait(b, s, "keys", "c0000000")
			start := time.Now()
			if _, err := s.List(ctx, connectionsPrefix("keys")); err != nil {
				b.Fatal(err)
			}
			baseline := time.Since(start)
			after := fmt.Sprintf("c%07d", n/2)
			b.ResetTimer()
			for range b.N {
				resp, err := be.HandleRequest(ctx, &logical.Request{Operation: logical.ListOperation, Path: "connections/keys/",
					Data: map[string]any{"after": after, "limit": 1000}, Storage: s})
				if err != nil || resp == nil || resp.IsError() || len(resp.Data["keys"].([]string)) != min(1000, n-n/2-1) {
					b.Fatalf("list: %v %v", resp, err)
				}
			}
			b.StopTimer()
			per := b.Elapsed() / time.Duration(b.N)
			start = time.Now()
			resp, err := be.HandleRequest(ctx, &logical.Request{Operation: logical.ListOperation, Path: "connections/keys/",
				Data: map[string]any{"after": after, "limit": 1000, "key_info": false}, Storage: s})
			if err != nil || resp == nil || resp.IsError() || resp.Data["key_info"] != nil {
				b.Fatalf("list without key_info: %v %v", resp, err)
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000, "ids-only-list-ms")
			b.ReportMetric(float64(per.Microseconds())/1000, "list-ms")
			b.ReportMetric(float64(baseline.Microseconds())/1000, "storage-list-ms")
			be.Clean(context.Background())
		})
	}
}

// BenchmarkScaleDrain: 10,000 connections that fell due within the last
// minute (one periodic tick's worth), a provider answering in 100 ms,
// refresh_concurrency 32, while readers (half the cores) read other
// connections. Reports
// the tick's drain time against the bound 10,000 x 100 ms / 32 and the
// readers' throughput against their idle throughput measured just before.
// Targets: <= 1.2x, >= 80%.
func BenchmarkScaleDrain(b *testing.B) {
	const n, delay, workers = 10000, 100 * time.Millisecond, 32
	// The readers may take half the cores; a drain that had none left would
	// measure the machine, not the engine.
	readers := max(1, runtime.NumCPU()/2)
	bound := time.Duration(n) * delay / workers
	for range b.N {
		b.StopTimer()
		srv := oauthtest.New()
		srv.SetDelay(delay)
		s := &logical.InmemStorage{}
		ctx := context.Background()
		be := seedConnections(b, s, srv.TokenURL(), 0, time.Time{})
		in, _ := getIntegration(ctx, s, "github")
		in.ClientID, in.ClientSecret = srv.ClientID, srv.ClientSecret
		putIntegration(ctx, s, in)
		be.mountConfig.save(ctx, s, &configEntry{RefreshMargin: defaultRefreshMargin, StateTTL: defaultStateTTL,
			RefreshConcurrency: workers, IdleRefreshInterval: defaultIdleRefreshInterval, MaxRefreshFailures: defaultMaxRefreshFailures})
		putIntegration(ctx, s, &integrationEntry{Name: "keys", AuthMode: catalog.APIKey})
		for i := range 1000 {
			c := &connectionEntry{Integration: "keys", ConnectionID: fmt.Sprintf("r%04d", i), AuthMode: catalog.APIKey,
				Credentials: credentials{APIKey: "k"}}
			if _, err := be.store.Update(ctx, s, "keys", c.ConnectionID, replaceWith(c)); err != nil {
				b.Fatal(err)
			}
		}
		for i := range n {
			c := &connectionEntry{Integration: "github", ConnectionID: fmt.Sprintf("d%05d", i), AuthMode: catalog.OAuth2,
				Credentials: credentials{AccessToken: "old", RefreshToken: srv.IssueRefreshToken(),
					ExpiresAt: time.Now().Add(defaultRefreshMargin).Add(-time.Duration(i) * time.Minute / n)}}
			if _, err := be.store.Update(ctx, s, "github", c.ConnectionID, replaceWith(c)); err != nil {
				b.Fatal(err)
			}
		}
		idle := readThroughput(be, s, readers, 2*time.Second, nil)
		done := make(chan struct{})
		var during float64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); during = readThroughput(be, s, readers, 0, done) }()
		b.StartTimer()
		start := time.Now()
		if err := be.periodic(ctx, &logical.Request{Storage: s}); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		close(done)
		wg.Wait()
		if srv.Requests() != n {
			b.Fatalf("%d token requests, want %d", srv.Requests(), n)
		}
		b.ReportMetric(float64(elapsed)/float64(bound), "x-bound")
		b.ReportMetric(float64(elapsed.Milliseconds()), "drain-ms")
		b.ReportMetric(during/idle, "reads-during/idle")
		srv.Close()
		be.Clean(ctx)
	}
}

// readThroughput reads API-key connections from readers goroutines for d
// (or until stop closes) and returns reads per second.
func readThroughput(be *backend, s logical.Storage, readers int, d time.Duration, stop chan struct{}) float64 {
	var ops atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; ; i++ {
				if d > 0 && time.Since(start) > d {
					return
				}
				if stop != nil {
					select {
					case <-stop:
						return
					default:
					}
				}
				resp, err := be.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation,
					Path: fmt.Sprintf("connections/keys/r%04d", i%1000), Storage: s})
				if err == nil && resp != nil && !resp.IsError() {
					ops.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(ops.Load()) / time.Since(start).Seconds()
}

// BenchmarkConnectionRead: the plugin's own share of a connection read,
// in process: routing, the cached entry, the response. An API-key
// connection as make bench reads it through Vault; reports the storage
// operations per read (none once cached). The ratio to a do-nothing
// plugin through Vault is make bench's (scripts/bench, the same-fields
// ceiling); this shows where the plugin's part of it goes.
func BenchmarkConnectionRead(b *testing.B) {
	s := &countingStorage{Storage: &logical.InmemStorage{}}
	be := startBackend(b, s)
	b.Cleanup(func() { be.Cleanup(context.Background()) })
	do := func(op logical.Operation, path string, data map[string]any) {
		resp, err := be.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Data: data, Storage: s})
		if err != nil || resp == nil || resp.IsError() {
			b.Fatalf("%s: %v %v", path, err, resp)
		}
	}
	do(logical.UpdateOperation, "integrations/bench-key", map[string]any{"auth_mode": "API_KEY"})
	do(logical.UpdateOperation, "connections/bench-key/acme", map[string]any{"api_key": "sk_live_" + strings.Repeat("k", 40),
		"metadata": map[string]any{"customer": "Acme Corp", "plan": "pro"}})
	do(logical.ReadOperation, "connections/bench-key/acme", nil)
	s.ops.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		do(logical.ReadOperation, "connections/bench-key/acme", nil)
	}
	b.StopTimer()
	b.ReportMetric(float64(s.ops.Load())/float64(b.N), "storage-ops/read")
}
