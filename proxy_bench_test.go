// SPDX-License-Identifier: MPL-2.0

// Benchmarks kept apart on purpose so that focused test runs do not build or run them by accident.

package connect

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
)

// proxyBenchEnv is a backend with an OAUTH2 integration whose api_base_url
// is a loopback API (not oauthtest.API, which records every request)
// answering GET /user with a small JSON body, as
// scripts/bench's proxy row, and one connection of it.
type proxyBenchEnv struct {
	b   *backend
	s   logical.Storage
	api *httptest.Server
	// conns counts the connections the API accepted: a client that does
	// not keep them alive opens one per call.
	conns atomic.Int64
	// closed counts the connections that ended, whichever side closed them.
	closed atomic.Int64
}

func newProxyBenchEnv(tb testing.TB) *proxyBenchEnv {
	tb.Helper()
	body := []byte(`{"id":1,"name":"octocat","plan":{"name":"pro"}}`)
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/user" || r.Header.Get("Authorization") != "Bearer gho_bench" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	e := &proxyBenchEnv{api: api}
	api.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			e.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			e.closed.Add(1)
		}
	}
	api.Start()
	tb.Cleanup(api.Close)
	conf := logical.TestBackendConfig()
	s := &logical.InmemStorage{}
	conf.StorageView = s
	conf.Logger = hclog.NewNullLogger()
	raw, err := Factory(context.Background(), conf)
	if err != nil {
		tb.Fatal(err)
	}
	e.b, e.s = raw.(*backend), s
	e.must(tb, logical.CreateOperation, "integrations/bench-proxy", map[string]any{"auth_mode": "OAUTH2", "client_id": "c",
		"client_secret": "s", "auth_url": "https://p.example/a", "token_url": "https://p.example/t",
		"api_base_url": api.URL, "proxy_paths": "/user"})
	e.must(tb, logical.CreateOperation, "connections/bench-proxy/acme", map[string]any{"access_token": "gho_bench",
		"refresh_token": "ghr_" + strings.Repeat("r", 36), "expires_in": 7 * 24 * 3600})
	return e
}

// handle runs one request through the backend as Vault's router would.
func (e *proxyBenchEnv) handle(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: path, Data: data, Storage: e.s})
}

func (e *proxyBenchEnv) must(tb testing.TB, op logical.Operation, path string, data map[string]any) *logical.Response {
	tb.Helper()
	resp, err := e.handle(op, path, data)
	if err != nil || (resp != nil && resp.IsError()) {
		tb.Fatalf("%s %s: %v %v", op, path, err, resp)
	}
	return resp
}

// proxyBenchTargets are the three calls the proxy row compares: the GET
// straight to the API, a plain connection read, the GET through the proxy.
func (e *proxyBenchEnv) proxyBenchTargets(tb testing.TB) []struct {
	name string
	call func() error
} {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	tb.Cleanup(client.CloseIdleConnections)
	return []struct {
		name string
		call func() error
	}{
		{"direct", func() error {
			req, _ := http.NewRequest(http.MethodGet, e.api.URL+"/user", nil)
			req.Header.Set("Authorization", "Bearer gho_bench")
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}},
		{"read", func() error {
			resp, err := e.handle(logical.ReadOperation, "connections/bench-proxy/acme", nil)
			if err == nil && (resp == nil || resp.Data["access_token"] != "gho_bench") {
				err = fmt.Errorf("read answered %v", resp)
			}
			return err
		}},
		{"proxy", func() error {
			resp, err := e.handle(logical.ReadOperation, "connections/bench-proxy/acme/proxy/user", map[string]any{})
			if err == nil && (resp == nil || resp.Data["status"] != http.StatusOK) {
				err = fmt.Errorf("proxy answered %v", resp)
			}
			return err
		}},
	}
}

// BenchmarkProxyGet compares, in one run, a GET straight to a loopback API,
// a plain connection read (the floor of any Vault request of the plugin)
// and the same GET through the proxy's handler, each from one goroutine
// and from 32 (RunParallel with 16 per core on this 2-core machine), and
// prints the proxy's cost over each. Only the handler is measured: Vault's
// HTTP layer, ACL and audit come on top in scripts/bench.
func BenchmarkProxyGet(b *testing.B) {
	e := newProxyBenchEnv(b)
	targets := e.proxyBenchTargets(b)
	for _, par := range []int{1, 32} {
		nsPerOp, cpuPerOp := map[string]float64{}, map[string]float64{}
		for _, t := range targets {
			b.Run(fmt.Sprintf("%s/clients=%d", t.name, par), func(b *testing.B) {
				b.ReportAllocs()
				opened, cpu0 := e.conns.Load(), processCPU()
				if par == 1 {
					for range b.N {
						if err := t.call(); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0)))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := t.call(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				nsPerOp[t.name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				cpuPerOp[t.name] = float64(processCPU()-cpu0) / float64(b.N)
				b.ReportMetric(cpuPerOp[t.name]/1e3, "cpu-µs/op")
				if t.name == "proxy" {
					b.ReportMetric(float64(e.conns.Load()-opened)/float64(b.N), "conns/op")
				}
			})
		}
		if nsPerOp["proxy"] > 0 && nsPerOp["read"] > 0 && nsPerOp["direct"] > 0 {
			fmt.Printf("clients=%d: direct %s, read %s, proxy %s per call; proxy over direct +%s, over read +%s; proxy throughput %.2fx the read's, %.2fx the direct GET's\n",
				par, nsDur(nsPerOp["direct"]), nsDur(nsPerOp["read"]), nsDur(nsPerOp["proxy"]),
				nsDur(nsPerOp["proxy"]-nsPerOp["direct"]), nsDur(nsPerOp["proxy"]-nsPerOp["read"]),
				nsPerOp["read"]/nsPerOp["proxy"], nsPerOp["direct"]/nsPerOp["proxy"])
			fmt.Printf("clients=%d: CPU (client and server in this process) direct %s, read %s, proxy %s per call; the proxy's own (proxy - direct - read) %s\n",
				par, nsDur(cpuPerOp["direct"]), nsDur(cpuPerOp["read"]), nsDur(cpuPerOp["proxy"]),
				nsDur(cpuPerOp["proxy"]-cpuPerOp["direct"]-cpuPerOp["read"]))
		}
	}
}

// processCPU is the CPU time (user and system) this process has used: on a
// machine shared with other work, a steadier measure of a call's cost than
// its wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func nsDur(ns float64) time.Duration { return time.Duration(ns).Round(time.Microsecond / 10) }
