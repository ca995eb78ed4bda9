// SPDX-License-Identifier: MPL-2.0

package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/connect-vault/vault-plugin-secrets-connect/internal/vaultdev"
)

// eventsOnly runs only the events row of the scale benchmark (-events): a
// single-node Vault on integrated storage, connection writes on a mount
// without a webhook receiver and on one with a receiver on loopback that
// answers at once, interleaved, with the CPU each process spent per write.
var (
	eventsOnly  = flag.Bool("events", false, "run only the write-with-a-receiver benchmark on integrated storage")
	eventsPprof = flag.String("events-pprof", "", "with -events: write Vault's CPU profile of each mount's last round to this prefix (<prefix>-<mount>.pprof)")
)

// runEvents starts a Raft Vault and measures the events row.
func runEvents() {
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
	b.eventWrites()
}

// eventWrites measures connection creates per second from the clients on a
// mount without a receiver and on one with a receiver (a second mount of
// the same plugin process), interleaved, and the CPU seconds the Vault
// process, the plugin process and this process (clients and receiver)
// spent per 1,000 writes of each.
func (b *bench) eventWrites() float64 {
	fmt.Printf("\n== connection writes with and without a webhook receiver on integrated storage, %d clients\n", *clients)
	var received, drained atomic.Int64
	var held atomic.Bool
	release := make(chan struct{})
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if held.Load() {
			<-release
		}
		received.Add(1)
		if bytes.Contains(body, []byte(`"integration":"drain-key"`)) {
			drained.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	b.mustDo("PUT", "connect/integrations/bench-key", map[string]any{"auth_mode": "API_KEY"})
	b.cli("secrets", "enable", "-path=connecth", "connect")
	b.mustDo("PUT", "connecth/integrations/bench-key", map[string]any{"auth_mode": "API_KEY"})
	b.mustDo("PUT", "connecth/webhooks/app", map[string]any{"url": rcv.URL})
	apiKey := "sk_live_" + strings.Repeat("k", 40)
	meta := map[string]any{"customer": "Acme Corp", "plan": "pro"}
	write := func(mount string) func(w, i int) (string, string, any, int) {
		return func(w, i int) (string, string, any, int) {
			return "PUT", fmt.Sprintf("%s/connections/bench-key/w%d-%d", mount, w, i), map[string]any{"api_key": apiKey, "metadata": meta}, 1
		}
	}
	plugins := b.s.PluginPIDs()
	if len(plugins) != 1 {
		fatal(fmt.Errorf("want one (multiplexed) plugin process, found %v", plugins))
	}
	vaultPID := parentPID(plugins[0])
	procs := []struct {
		name string
		pid  int
	}{{"vault", vaultPID}, {"plugin", plugins[0]}, {"bench", os.Getpid()}}
	mounts := []string{"connect", "connecth"}
	counts := make([]int64, len(mounts))
	cpu := make([][]float64, len(mounts))
	for i := range cpu {
		cpu[i] = make([]float64, len(procs))
	}
	for _, m := range mounts { // warm up
		b.writeLoad(time.Second, write(m))
	}
	for r := range *rounds {
		for i, m := range mounts {
			before := make([]float64, len(procs))
			for j, p := range procs {
				before[j] = cpuSeconds(p.pid)
			}
			received.Store(0)
			var profiled chan struct{}
			if *eventsPprof != "" && r == *rounds-1 {
				profiled = make(chan struct{})
				go func() {
					defer close(profiled)
					secs := int(roundTime.Seconds())
					status, out := b.do("GET", fmt.Sprintf("sys/pprof/profile?seconds=%d", secs), nil)
					if status != http.StatusOK {
						fmt.Printf("  pprof: %d %.200s\n", status, out)
						return
					}
					os.WriteFile(fmt.Sprintf("%s-%s.pprof", *eventsPprof, m), out, 0o644)
				}()
			}
			n := b.writeLoad(*roundTime, write(m))
			if profiled != nil {
				<-profiled
			}
			counts[i] += n
			for j, p := range procs {
				cpu[i][j] += cpuSeconds(p.pid) - before[j]
			}
			fmt.Printf("  round %d %-9s %6.0f writes/s", r+1, m, float64(n)/roundTime.Seconds())
			if m == "connecth" {
				fmt.Printf(", %d delivered during the round", received.Load())
			}
			fmt.Println()
		}
	}
	elapsed := (time.Duration(*rounds) * *roundTime).Seconds()
	for i, m := range mounts {
		fmt.Printf("- %-9s %6.0f writes/s; CPU ms per write:", m, float64(counts[i])/elapsed)
		for j, p := range procs {
			fmt.Printf(" %s %.3f", p.name, 1000*cpu[i][j]/float64(counts[i]))
		}
		fmt.Println()
	}
	ratio := float64(counts[1]) / float64(counts[0])
	fmt.Printf("- with a receiver / without: %.2fx (target >= 0.9x)\n", ratio)
	b.drainRate(&held, release, &drained)
	return ratio
}

// drainEvents is how many events the drain figure delivers.
const drainEvents = 4000

// drainRate records drainEvents events (imports of 100 connections, each a
// connection.created) while the receiver holds every delivery unanswered,
// then lets it answer at once and times the delivery of all of them: the
// rate a fast receiver gets from a backlog, at its default concurrency.
func (b *bench) drainRate(held *atomic.Bool, release chan struct{}, drained *atomic.Int64) {
	b.mustDo("PUT", "connecth/integrations/drain-key", map[string]any{"auth_mode": "API_KEY"})
	held.Store(true)
	for first := 0; first < drainEvents; first += 100 {
		items := make([]any, 100)
		for j := range items {
			items[j] = map[string]any{"connection_id": fmt.Sprintf("d%05d", first+j), "api_key": "sk_drain"}
		}
		b.mustDo("POST", "connecth/import/drain-key", map[string]any{"connections": items})
	}
	start := time.Now()
	held.Store(false)
	close(release)
	for drained.Load() < drainEvents {
		if time.Since(start) > 2*time.Minute {
			fatal(fmt.Errorf("%d of %d events delivered in 2 minutes", drained.Load(), drainEvents))
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := time.Since(start)
	fmt.Printf("- a backlog of %d events to a receiver answering at once: delivered in %v, %.0f events/s (target >= 1,000/s)\n",
		drainEvents, d.Round(time.Millisecond), drainEvents/d.Seconds())
}

// parentPID is pid's parent, 0 when unknown.
func parentPID(pid int) int {
	f := procStat(pid)
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// cpuSeconds is the user and system CPU pid has used, in seconds.
func cpuSeconds(pid int) float64 {
	f := procStat(pid)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}
