// SPDX-License-Identifier: MPL-2.0

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// writeReport writes docs/performance.md and its plots from res.
func writeReport(out string, res *scaleResults) error {
	plotDir := strings.TrimSuffix(out, ".md")
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		return err
	}
	base := filepath.Base(plotDir)
	var md strings.Builder
	// The hand-written part, after keptMarker, is kept as it is.
	var kept string
	if old, err := os.ReadFile(out); err == nil {
		if i := strings.Index(string(old), keptMarker); i >= 0 {
			kept = string(old[i:])
		}
	}
	md.WriteString("# Performance at scale\n\n")
	md.WriteString("<!-- Written by `make bench-scale` from its own measurements; do not edit. -->\n\n")
	fmt.Fprintf(&md, "Measured in one run of `make bench-scale` on %s. In-process figures run the backend on `logical.InmemStorage` "+
		"(the storage's own memory is excluded); integrated-storage figures run a single-node Vault %s started from a config file "+
		"with Raft on a local disk, the plugin registered and reached over HTTP by %d clients.\n\n", res.machine, "built by scripts/vault", *clients)

	md.WriteString("## Targets\n\n| Target | Measured | Met |\n|---|---|---|\n")
	for _, t := range targetRows(res) {
		fmt.Fprintf(&md, "| %s | %s | %s |\n", t[0], t[1], t[2])
	}

	md.WriteString("\n## In process, by number of stored connections\n\n")
	md.WriteString("70% OAuth connections with expiries spread over 24 hours, 30% API keys. *Bare scan* is the baseline measured in the same run: " +
		"listing and getting every entry without decoding it, the least any start that reads every entry pays.\n\n")
	md.WriteString("| Connections | First read (ms) | Queue complete (ms) | Bare scan (ms) | Queue / bare scan | Plugin heap (MB) | Storage ops per idle tick | LIST 1,000 (ms) | LIST ids only (ms) | Storage list alone (ms) |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, n := range sizesOf(res.inproc["BenchmarkScaleStart"]) {
		st, tick, list := res.inproc["BenchmarkScaleStart"][n], res.inproc["BenchmarkScaleIdleTick"][n], res.inproc["BenchmarkScaleList"][n]
		fmt.Fprintf(&md, "| %d | %.1f | %.0f | %.0f | %.1fx | %.1f | %.0f | %.1f | %.1f | %.1f |\n", n, st["first-read-ms"], st["queue-ms"],
			st["bare-scan-ms"], st["queue/bare-scan"], st["plugin-heap-MB"], tick["storage-ops/tick"], list["list-ms"], list["ids-only-list-ms"], list["storage-list-ms"])
	}
	if d := res.inproc["BenchmarkScaleDrain"][0]; d != nil {
		fmt.Fprintf(&md, "\nSustained refresh: 10,000 connections that fell due within the minute before one periodic tick, a provider answering in 100 ms, "+
			"`refresh_concurrency` 32: the tick drained them in %.0f ms, %.2fx the bound of 10,000 × 100 ms / 32. "+
			"Readers of other connections (one per two cores) kept %.0f%% of their idle throughput, measured just before.\n", d["drain-ms"], d["x-bound"], 100*d["reads-during/idle"])
	}

	md.WriteString("\n## Integrated storage (Raft), through Vault's HTTP API\n\n")
	md.WriteString("| Writes, each creating a connection or secret | Per second | vs KV-v2 external |\n|---|---|---|\n")
	for _, w := range res.writes {
		fmt.Fprintf(&md, "| %s | %.0f | %.2fx |\n", w.name, w.perSec, w.perSec/res.writes[0].perSec)
	}
	md.WriteString("\n| Stored OAuth connections | Import rate (connections/s) | First read after `vault plugin reload` | Queue complete | Every connection read (queue checked) | Plugin RSS |\n|---|---|---|---|---|---|\n")
	for _, r := range res.raftStart {
		fmt.Fprintf(&md, "| %d | %.0f | %v | %v | %v | %.0f MB |\n", r.n, r.connectionsPerSec, r.firstRead.Round(time.Millisecond), r.queue.Round(time.Millisecond), r.checked.Round(time.Millisecond), r.rssMB)
	}

	plots := []struct{ file, title string }{
		{"start.png", "Start: time to a complete refresh queue"},
		{"memory.png", "Plugin memory"},
		{"tick.png", "Idle tick storage operations and LIST latency"},
	}
	if err := plotStart(filepath.Join(plotDir, plots[0].file), res); err != nil {
		return err
	}
	if err := plotMemory(filepath.Join(plotDir, plots[1].file), res); err != nil {
		return err
	}
	if err := plotTick(filepath.Join(plotDir, plots[2].file), res); err != nil {
		return err
	}
	md.WriteString("\n## Cost curves\n\nBoth axes are logarithmic: a line of slope one is linear growth, a flat line constant cost.\n\n")
	for _, p := range plots {
		fmt.Fprintf(&md, "![%s](%s/%s)\n\n", p.title, base, p.file)
	}
	md.WriteString("## Raw in-process output\n\n```\n" + strings.TrimSpace(res.inprocRaw) + "\n```\n")
	if kept != "" {
		md.WriteString("\n" + kept)
	}
	return os.WriteFile(out, []byte(md.String()), 0o644)
}

// keptMarker starts the part of the report written by hand (the profiles
// behind each performance change), which a new run keeps.
const keptMarker = "<!-- Written by hand below: kept by make bench-scale. -->"

// targetRows compares the measurements with the scale targets.
func targetRows(res *scaleResults) [][3]string {
	met := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	var rows [][3]string
	if len(res.writes) == 4 {
		hooked := res.writes[2].perSec / res.writes[1].perSec
		rows = append(rows, [3]string{"Writes with one webhook receiver ≥ 0.9x writes without (Raft, 32 clients)", fmt.Sprintf("%.2fx", hooked), met(hooked >= 0.9)})
		single, batch := res.writes[1].perSec/res.writes[0].perSec, res.writes[3].perSec/res.writes[0].perSec
		rows = append(rows, [3]string{"Import ≥ 1.0x KV-v2 external writes (Raft, 32 clients)",
			fmt.Sprintf("%.2fx with import, %.2fx one per request", batch, single), met(batch >= 1.0)})
	}
	big := maxSize(res.inproc["BenchmarkScaleStart"])
	if st := res.inproc["BenchmarkScaleStart"][big]; st != nil {
		rows = append(rows,
			[3]string{fmt.Sprintf("First read < 1 s at %d (in process)", big), fmt.Sprintf("%.1f ms", st["first-read-ms"]), met(st["first-read-ms"] < 1000)},
			[3]string{fmt.Sprintf("Queue complete < 30 s at %d (in process)", big), fmt.Sprintf("%.1f s", st["queue-ms"]/1000), met(st["queue-ms"] < 30000)},
			[3]string{fmt.Sprintf("Queue complete ≤ 4x a bare scan at %d (in process)", big), fmt.Sprintf("%.2fx", st["queue/bare-scan"]), met(st["queue/bare-scan"] <= 4)},
			[3]string{fmt.Sprintf("Memory < 400 MB at %d (in process)", big), fmt.Sprintf("%.0f MB", st["plugin-heap-MB"]), met(st["plugin-heap-MB"] < 400)})
	}
	for _, r := range res.raftStart {
		if r.n == 100000 {
			rows = append(rows,
				[3]string{"First read < 1 s after reload at 100,000 (Raft)", r.firstRead.Round(time.Millisecond).String(), met(r.firstRead < time.Second)},
				[3]string{"Queue complete ≤ 5 s at 100,000 (Raft)", r.queue.Round(time.Millisecond).String(), met(r.queue <= 5*time.Second)})
		}
	}
	if t := res.inproc["BenchmarkScaleIdleTick"][maxSize(res.inproc["BenchmarkScaleIdleTick"])]; t != nil {
		rows = append(rows, [3]string{fmt.Sprintf("Idle tick ≤ 5 storage operations at %d", maxSize(res.inproc["BenchmarkScaleIdleTick"])),
			fmt.Sprintf("%.0f", t["storage-ops/tick"]), met(t["storage-ops/tick"] <= 5)})
	}
	if d := res.inproc["BenchmarkScaleDrain"][0]; d != nil {
		rows = append(rows, [3]string{"Drain 10,000 due within a minute ≤ 1.2x the bound", fmt.Sprintf("%.2fx", d["x-bound"]), met(d["x-bound"] <= 1.2)},
			[3]string{"Reads during the drain ≥ 80% of idle", fmt.Sprintf("%.0f%%", 100*d["reads-during/idle"]), met(d["reads-during/idle"] >= 0.8)})
	}
	if l := res.inproc["BenchmarkScaleList"][maxSize(res.inproc["BenchmarkScaleList"])]; l != nil {
		rows = append(rows, [3]string{fmt.Sprintf("LIST 1,000 of %d < 200 ms without reading entries (in process)", maxSize(res.inproc["BenchmarkScaleList"])),
			fmt.Sprintf("%.0f ms ids only (`key_info=false`), %.0f ms with key_info", l["ids-only-list-ms"], l["list-ms"]), met(l["ids-only-list-ms"] < 200)})
	}
	return rows
}

func sizesOf(m map[int]map[string]float64) []int {
	out := make([]int, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

func maxSize(m map[int]map[string]float64) int {
	s := sizesOf(m)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

// series is one line of a plot: y against the number of connections.
func series(m map[int]map[string]float64, unit string, scale float64) plotter.XYs {
	var xy plotter.XYs
	for _, n := range sizesOf(m) {
		xy = append(xy, plotter.XY{X: float64(n), Y: m[n][unit] * scale})
	}
	return xy
}

// logLogPlot draws named series on logarithmic axes into file, the legend
// in the top left corner or, with legendBottomRight, the bottom right: the
// corner the curves leave free.
func logLogPlot(file, title, ylabel string, legendBottomRight bool, lines ...any) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "stored connections"
	p.Y.Label.Text = ylabel
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = !legendBottomRight, !legendBottomRight
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	return p.Save(6*vg.Inch, 4*vg.Inch, file)
}

func raftSeries(rows []startRow, f func(startRow) float64) plotter.XYs {
	var xy plotter.XYs
	for _, r := range rows {
		xy = append(xy, plotter.XY{X: float64(r.n), Y: f(r)})
	}
	return xy
}

func plotStart(file string, res *scaleResults) error {
	st := res.inproc["BenchmarkScaleStart"]
	return logLogPlot(file, "Plugin start", "seconds", true,
		"queue complete, in process", series(st, "queue-ms", 1e-3),
		"bare scan (baseline), in process", series(st, "bare-scan-ms", 1e-3),
		"queue complete, Raft", raftSeries(res.raftStart, func(r startRow) float64 { return r.queue.Seconds() }),
		"first read, Raft", raftSeries(res.raftStart, func(r startRow) float64 { return r.firstRead.Seconds() }))
}

func plotMemory(file string, res *scaleResults) error {
	return logLogPlot(file, "Plugin memory", "MB", true,
		"heap, in process", series(res.inproc["BenchmarkScaleStart"], "plugin-heap-MB", 1),
		"process RSS, Raft", raftSeries(res.raftStart, func(r startRow) float64 { return r.rssMB }))
}

func plotTick(file string, res *scaleResults) error {
	return logLogPlot(file, "Idle tick and LIST", "operations / milliseconds", false,
		"storage ops per idle tick", series(res.inproc["BenchmarkScaleIdleTick"], "storage-ops/tick", 1),
		"LIST 1,000 with key_info (ms)", series(res.inproc["BenchmarkScaleList"], "list-ms", 1),
		"LIST 1,000 ids only (ms)", series(res.inproc["BenchmarkScaleList"], "ids-only-list-ms", 1),
		"storage list alone (ms)", series(res.inproc["BenchmarkScaleList"], "storage-list-ms", 1))
}
