// SPDX-License-Identifier: MPL-2.0

// Benchmarks kept apart on purpose so that focused test runs do not build or run them by accident.

package connect

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// BenchmarkEventOnConnectionWrite: what an event costs a connection
// write. Two mounts in one run, their writes interleaved so that both see
// the same machine: one without a webhook receiver, one with a receiver on
// loopback (answering 204, delivered in the background meanwhile). Each
// write creates a new API-key connection, so that each records
// connection.created. Reports both times per write and their ratio.
func BenchmarkEventOnConnectionWrite(b *testing.B) {
	var received atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	mount := func(withReceiver bool) (*backend, logical.Storage) {
		s := &logical.InmemStorage{}
		be := startBackend(b, s)
		b.Cleanup(func() { be.Cleanup(context.Background()) })
		do := func(path string, data map[string]any) {
			resp, err := be.HandleRequest(context.Background(), &logical.Request{Operation: logical.CreateOperation, Path: path, Data: data, Storage: s})
			if err != nil || resp.IsError() {
				b.Fatalf("%s: %v %v", path, err, resp)
			}
		}
		do("integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
		if withReceiver {
			do("webhooks/app", map[string]any{"url": rcv.URL})
		}
		return be, s
	}
	plain, plainStorage := mount(false)
	hooked, hookedStorage := mount(true)
	write := func(be *backend, s logical.Storage, id string) time.Duration {
		start := time.Now()
		resp, err := be.HandleRequest(context.Background(), &logical.Request{Operation: logical.CreateOperation,
			Path: "connections/stripe/" + id, Data: map[string]any{"api_key": "sk_bench"}, Storage: s})
		d := time.Since(start)
		if err != nil || resp.IsError() {
			b.Fatalf("write %s: %v %v", id, err, resp)
		}
		return d
	}
	var without, with time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("c%07d", i)
		without += write(plain, plainStorage, id)
		with += write(hooked, hookedStorage, id)
	}
	b.StopTimer()
	recorded := int64(hooked.outbox.stats().Pending) + received.Load()
	if recorded < int64(b.N) {
		b.Fatalf("%d writes recorded %d events: connection writes emit no connection.created", b.N, recorded)
	}
	perWithout := float64(without.Microseconds()) / float64(b.N)
	perWith := float64(with.Microseconds()) / float64(b.N)
	b.ReportMetric(perWithout, "write-us")
	b.ReportMetric(perWith, "write-with-receiver-us")
	b.ReportMetric(perWith/perWithout, "with/without")
	if b.N == 1 {
		return // the framework's first, sizing run
	}
	b.Logf("\n| connection write (API key, in-process storage), %d writes | µs/write |\n|---|---|\n| without a webhook receiver | %.1f |\n| with one receiver (event recorded, delivered in the background) | %.1f |\n| ratio | %.2fx |",
		b.N, perWithout, perWith, perWith/perWithout)
}

// BenchmarkEventDeliveryRate: events per second delivered to one receiver
// that answers after 100 ms (at the default concurrency and at 64), and to
// one that answers at once. Each run records 400 events (connection
// creations) with delivery stopped, then starts delivery and times it
// until every event is delivered. Targets: >= 150/s for the 100 ms
// receiver at the default, >= 1,000/s for the fast one.
func BenchmarkEventDeliveryRate(b *testing.B) {
	for _, c := range []struct {
		delay       time.Duration
		concurrency int
	}{{100 * time.Millisecond, defaultDeliveryConcurrency}, {100 * time.Millisecond, maxDeliveryConcurrency}, {0, defaultDeliveryConcurrency}} {
		delay := c.delay
		b.Run(fmt.Sprintf("receiver-delay=%v/concurrency=%d", delay, c.concurrency), func(b *testing.B) {
			const events = 400
			var received atomic.Int64
			var conns atomic.Int64
			rcv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(delay)
				received.Add(1)
				w.WriteHeader(http.StatusNoContent)
			}))
			rcv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			}
			rcv.Start()
			defer rcv.Close()
			var rate float64
			for range b.N {
				b.StopTimer()
				s := &logical.InmemStorage{}
				be := startBackend(b, s)
				be.outbox.stopDelivery()
				do := func(path string, data map[string]any) {
					resp, err := be.HandleRequest(context.Background(), &logical.Request{Operation: logical.CreateOperation, Path: path, Data: data, Storage: s})
					if err != nil || resp.IsError() {
						b.Fatalf("%s: %v %v", path, err, resp)
					}
				}
				do("integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
				do("webhooks/app", map[string]any{"url": rcv.URL, "concurrency": c.concurrency})
				for i := range events {
					do(fmt.Sprintf("connections/stripe/c%04d", i), map[string]any{"api_key": "sk_bench"})
				}
				received.Store(0)
				b.StartTimer()
				start := time.Now()
				be.outbox.startDelivery(s)
				for received.Load() < events {
					if time.Since(start) > 2*time.Minute {
						b.Fatalf("%d of %d delivered in 2 minutes", received.Load(), events)
					}
					time.Sleep(time.Millisecond)
				}
				rate = events / time.Since(start).Seconds()
				b.StopTimer()
				be.Cleanup(context.Background())
			}
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(float64(conns.Load())/float64(b.N), "connections/run")
		})
	}
}

// latencyStorage is in-memory storage whose writes take writeDelay and
// reads readDelay, as a replicated store's round trips do, and which counts
// its operations by kind and first key segment.
type latencyStorage struct {
	logical.Storage
	writeDelay, readDelay time.Duration
	mu                    sync.Mutex
	ops                   map[string]int
}

func (s *latencyStorage) count(op, key string) {
	seg, _, _ := strings.Cut(key, "/")
	if seg == "events" {
		rest := strings.TrimPrefix(key, "events/")
		sub, _, _ := strings.Cut(rest, "/")
		seg += "/" + sub
	}
	s.mu.Lock()
	s.ops[op+" "+seg]++
	s.mu.Unlock()
}

func (s *latencyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.count("get", key)
	time.Sleep(s.readDelay)
	return s.Storage.Get(ctx, key)
}

func (s *latencyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.count("put", e.Key)
	time.Sleep(s.writeDelay)
	return s.Storage.Put(ctx, e)
}

func (s *latencyStorage) Delete(ctx context.Context, key string) error {
	s.count("delete", key)
	time.Sleep(s.writeDelay)
	return s.Storage.Delete(ctx, key)
}

func (s *latencyStorage) List(ctx context.Context, prefix string) ([]string, error) {
	s.count("list", prefix)
	time.Sleep(s.readDelay)
	return s.Storage.List(ctx, prefix)
}

// BenchmarkEventStorageOps: the storage operations 32 concurrent
// connection writes make with one webhook receiver answering at once, on
// storage whose writes take 2 ms: per write, by kind, once every event is
// delivered. Where an event's cost goes on the write path and in delivery.
func BenchmarkEventStorageOps(b *testing.B) {
	var received atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	s := &latencyStorage{Storage: &logical.InmemStorage{}, ops: map[string]int{}}
	be := startBackend(b, s)
	defer be.Cleanup(context.Background())
	do := func(path string, data map[string]any) {
		resp, err := be.HandleRequest(context.Background(), &logical.Request{Operation: logical.CreateOperation, Path: path, Data: data, Storage: s})
		if err != nil || resp.IsError() {
			b.Fatalf("%s: %v %v", path, err, resp)
		}
	}
	do("integrations/stripe", map[string]any{"auth_mode": "API_KEY"})
	do("webhooks/app", map[string]any{"url": rcv.URL})
	s.writeDelay, s.readDelay = 2*time.Millisecond, 100*time.Microsecond
	s.mu.Lock()
	clear(s.ops)
	s.mu.Unlock()
	const clients, writes = 32, 2000
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= writes; i = next.Add(1) {
				do(fmt.Sprintf("connections/stripe/c%06d", i), map[string]any{"api_key": "sk_bench"})
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for received.Load() < writes {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	var kinds []string
	for k := range s.ops {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		b.Logf("%-28s %6.3f per write", k, float64(s.ops[k])/writes)
	}
	b.ReportMetric(writes/elapsed.Seconds(), "writes/s")
}
