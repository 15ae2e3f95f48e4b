package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The reference workload of the live migration and incremental save
// benchmarks: dirtycount over 1 GiB rewriting 16 MiB a second.
var refDirtyArgs = []string{"1024", "16384"}

var migratedRE = regexp.MustCompile(`migrated to .* in ([0-9]+) rounds: .* paused ([0-9.]+[a-zµ]+)`)

// The CPU time each side spent on the migration, from their logs: the
// source's per round, the target's for the whole stream. Unlike the
// times, they hardly depend on the machine's load.
var (
	roundCPURE   = regexp.MustCompile(`migration round [0-9]+: .*, ([0-9.]+[a-zµ]+) of the sentry's CPU`)
	receiveCPURE = regexp.MustCompile(`received sandbox .* of state in [^ ]+ \(([0-9.]+[a-zµ]+) of CPU\)`)
)

// BenchmarkLiveMigration migrates a workload between two state
// directories on loopback and reports the downtime (the source's last
// pause until the target runs it, from the source's log), the total time
// of snap migrate and the rounds; next to the pause of a plain
// --leave-running save of the same sandbox before it moves, and the CPU
// time each side spent (source-cpu-ms: its rounds; target-cpu-ms: its
// reading of the stream). The workloads: dirtycount over 1 GiB rewriting
// 16 MiB a second (refDirtyArgs), and the peers' memtouch at 1 GiB, which
// writes its memory once and then only reads it.
func BenchmarkLiveMigration(b *testing.B) {
	workloads := []struct {
		name string
		argv []string
		ok   string // how the target's first line ends
	}{
		{"dirtycount-1GiB", append([]string{program(b, "dirtycount")}, refDirtyArgs...), "sum OK"},
		{"memtouch-1GiB", []string{program(b, "memtouch"), "1024", "/dev/stdout"}, ""},
	}
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) { benchMigration(b, w.argv, w.ok) })
	}
}

// benchMigration is one workload of BenchmarkLiveMigration: argv runs
// it, and the target's first line ends with ok (memtouch: is "N SLICE ok
// TIME" when ok is empty).
func benchMigration(b *testing.B, argv []string, ok string) {
	b.ReportAllocs()
	var total, down, savePause, srcCPU, tgtCPU time.Duration
	var rounds int
	for i := 0; i < b.N; i++ {
		e := &env{dir: b.TempDir()}
		b.Cleanup(e.killAll)
		id, out := e.benchRun(b, argv...)
		waitLinesB(b, out, 3)
		e.benchSnap(b, "save", id, "--leave-running", "--to", "before")
		savePause += logPause(b, e, id, pausedRE)
		tok := filepath.Join(e.dir, "tok")
		os.WriteFile(tok, []byte("bench"), 0o600)
		te := &env{dir: b.TempDir()}
		b.Cleanup(te.killAll)
		r := startReceiverIn(b, te, tok)
		start := time.Now()
		e.benchSnap(b, "migrate", id, "tcp://"+r.addr, "--token-file", tok)
		total += time.Since(start)
		logb, _ := os.ReadFile(filepath.Join(e.dir, "state", id, "sentry.log"))
		m := migratedRE.FindSubmatch(logb)
		if m == nil {
			b.Fatalf("no migration in the source's log:\n%s", logb)
		}
		for _, l := range strings.Split(string(logb), "\n") {
			if strings.Contains(l, "migration round") || strings.Contains(l, "migration pause") || strings.Contains(l, "migrated to") {
				b.Log(l) // the rounds' sizes and times, with -v
			}
			if m := roundCPURE.FindStringSubmatch(l); m != nil {
				d, _ := time.ParseDuration(m[1])
				srcCPU += d
			}
		}
		d, _ := time.ParseDuration(string(m[2]))
		down += d
		var n int
		fmt.Sscan(string(m[1]), &n)
		rounds += n
		if err := r.wait(); err != nil {
			b.Fatal(err)
		}
		waitLinesB(b, r.out, 1)
		// The target's restore, with -v: its steps follow this line.
		tlogs, _ := filepath.Glob(filepath.Join(te.dir, "state", "*", "sentry.log"))
		for _, p := range tlogs {
			tl, _ := os.ReadFile(p)
			if _, after, ok := strings.Cut(string(tl), "received sandbox"); ok {
				b.Log("target: received sandbox" + after)
			}
			if m := receiveCPURE.FindSubmatch(tl); m != nil {
				d, _ := time.ParseDuration(string(m[1]))
				tgtCPU += d
			}
		}
		l := lines(r.out)[0]
		if f := strings.Fields(l); ok != "" && !strings.HasSuffix(l, ok) || ok == "" && (len(f) != 4 || f[2] != "ok") {
			b.Fatalf("target printed %q", l)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(down.Microseconds())/n/1000, "downtime-ms")
	b.ReportMetric(float64(total.Milliseconds())/n, "total-ms")
	b.ReportMetric(float64(rounds)/n, "rounds")
	b.ReportMetric(float64(savePause.Microseconds())/n/1000, "save-paused-ms")
	b.ReportMetric(float64(srcCPU.Milliseconds())/n, "source-cpu-ms")
	b.ReportMetric(float64(tgtCPU.Milliseconds())/n, "target-cpu-ms")
}

// BenchmarkIncrementalSave saves the reference workload with
// --leave-running, lets it write 32 MiB (two seconds at 16 MiB/s; "seq":
// one page after the other, and "scattered": a page in a stride over the
// whole GiB), and saves it against the first image: the second save's
// pause and the bytes it stored.
func BenchmarkIncrementalSave(b *testing.B) {
	for _, mode := range []string{"seq", "scattered"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			var pause time.Duration
			var stored int64
			for i := 0; i < b.N; i++ {
				e := &env{dir: b.TempDir()}
				b.Cleanup(e.killAll)
				args := append([]string{program(b, "dirtycount")}, refDirtyArgs...)
				if mode == "seq" {
					args = append(args, "0", "seq")
				}
				id, out := e.benchRun(b, args...)
				waitLinesB(b, out, 3)
				e.benchSnap(b, "save", id, "--leave-running", "--track", "--to", "base")
				os.WriteFile(filepath.Join(e.dir, "state", id, "sentry.log"), nil, 0o600)
				waitLinesB(b, out, len(lines(out))+20) // 2 s: 32 MiB written
				before := chunkDirBytes(e)
				e.benchSnap(b, "save", id, "--leave-running", "--to", "inc", "--parent", "base")
				pause += logPause(b, e, id, pausedRE)
				stored += chunkDirBytes(e) - before
			}
			n := float64(b.N)
			b.ReportMetric(float64(pause.Microseconds())/n/1000, "paused-ms")
			b.ReportMetric(float64(stored)/n/(1<<20), "stored-MiB")
		})
	}
}

// logPause returns the first pause re finds in the sandbox's sentry log.
func logPause(b *testing.B, e *env, id string, re *regexp.Regexp) time.Duration {
	b.Helper()
	logb, _ := os.ReadFile(filepath.Join(e.dir, "state", id, "sentry.log"))
	m := re.FindSubmatch(logb)
	if m == nil {
		b.Fatalf("no pause in the sentry log:\n%s", logb)
	}
	d, _ := time.ParseDuration(string(m[1]))
	return d
}

// chunkDirBytes is the size of the default store's chunks and packs.
func chunkDirBytes(e *env) int64 {
	var n int64
	for _, dir := range []string{".chunks", ".packs"} {
		filepath.Walk(filepath.Join(e.dir, "data", "snap", "images", dir), func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n += fi.Size()
			}
			return nil
		})
	}
	return n
}
