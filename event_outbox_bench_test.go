// SPDX-License-Identifier: MPL-2.0

package connect

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
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
