package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// programCPURE finds, in a sentry's log, how long a lazy restore's
// background load took, the CPU time the program used meanwhile, and the
// sentry's (runner.LazyLine).
var programCPURE = regexp.MustCompile(`in the background, in ([0-9.]+) ms; program CPU ([0-9.]+) ms; sentry CPU ([0-9.]+) ms`)

// loadMemoryRE finds, in a sentry's log, how long an eager restore's
// memory load took.
var loadMemoryRE = regexp.MustCompile(`restore step load-memory\s+at\s+[0-9.]+ ms took\s+([0-9.]+) ms`)

// firstSwitchRE finds, in a sentry's log, when the restored program first
// ran: the end of the first-switch step, from the sentry's start.
var firstSwitchRE = regexp.MustCompile(`restore step first-switch\s+at\s+([0-9.]+) ms took\s+([0-9.]+) ms`)

// runningMs returns how long after its sentry started a restored program
// first ran (0 if the log does not say yet).
func runningMs(log []byte) float64 {
	m := firstSwitchRE.FindSubmatch(log)
	if m == nil {
		return 0
	}
	at, _ := strconv.ParseFloat(string(m[1]), 64)
	took, _ := strconv.ParseFloat(string(m[2]), 64)
	return at + took
}

// BenchmarkLazyRestore restores the peers' memtouch workload (odd pages
// zero, even pages compressible; one slice checked every 100 ms) at 64,
// 256 and 1024 MiB from the file store, eagerly and lazily (without a
// working set), and reports for each: running-ms, when the program first
// ran after the sentry started (its log's first-switch); first-output-ms,
// from `snap restore -d` until the program's next line (which includes
// what was left of its 100 ms sleep); and for the lazy one loaded-ms,
// from `snap restore -d` until all its memory was loaded, and that over
// the eager first output (the goal: at most 1), program-cpu-ms, the
// CPU time the program used while the background loader ran (what it
// took from the load), and sentry-cpu-ms, the sentry's meanwhile (the
// load's own cost, which the machine's load does not move much). Beside
// them, the loads alone: eager-load-ms, the eager restore's load-memory
// step, and lazy-stream-ms, the background loader's time (its start to
// its end), which compare the two loads' own speed apart from when each
// starts and what follows the eager one. The eager restore is the same
// run's baseline; a lazy restore whose program keeps its priority while
// the loader runs (SNAP_LAZY_PROGRAM_NICE=0, "unlowered-") is the
// baseline of that cut, and one whose program gets nice 19 rather than
// SCHED_IDLE (SNAP_LAZY_PROGRAM_NICE=19, "nice19-") the baseline of the
// policy.
func BenchmarkLazyRestore(b *testing.B) {
	memtouch := program(b, "memtouch")
	for _, mib := range []int{64, 256, 1024} {
		b.Run(fmt.Sprintf("memtouch-%dMiB", mib), func(b *testing.B) {
			b.ReportAllocs()
			e := &env{dir: b.TempDir()}
			b.Cleanup(e.killAll)
			id, out := e.benchRun(b, memtouch, strconv.Itoa(mib), "/dev/stdout")
			waitLinesB(b, out, 2)
			uri := strings.TrimSpace(e.benchSnap(b, "save", id, "--to", "img"))
			var eager, lazy, unlowered, nice19, keepP restoreSum
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// The eager restore loads the image, as a lazy one does,
				// rather than also making the restore cache's copy.
				eager.add(e.benchRestore(b, uri, fmt.Sprintf("e%d", i), "--no-cache"))
				lazy.add(e.benchRestore(b, uri, fmt.Sprintf("l%d", i), "--lazy", "--no-working-set"))
				e.extra = []string{"SNAP_LAZY_PROGRAM_NICE=0"}
				unlowered.add(e.benchRestore(b, uri, fmt.Sprintf("u%d", i), "--lazy", "--no-working-set"))
				e.extra = []string{"SNAP_LAZY_PROGRAM_NICE=19"}
				nice19.add(e.benchRestore(b, uri, fmt.Sprintf("n%d", i), "--lazy", "--no-working-set"))
				e.extra = []string{"SNAP_LAZY_KEEP_P=1"}
				keepP.add(e.benchRestore(b, uri, fmt.Sprintf("k%d", i), "--lazy", "--no-working-set"))
				e.extra = nil
			}
			n := float64(b.N)
			b.ReportMetric(eager.running/n, "eager-running-ms")
			b.ReportMetric(eager.firstOutput/n, "eager-first-output-ms")
			b.ReportMetric(eager.load/n, "eager-load-ms")
			b.ReportMetric(lazy.running/n, "lazy-running-ms")
			b.ReportMetric(lazy.firstOutput/n, "lazy-first-output-ms")
			b.ReportMetric(lazy.loaded/n, "lazy-loaded-ms")
			b.ReportMetric(lazy.load/n, "lazy-stream-ms")
			b.ReportMetric(lazy.programCPU/n, "lazy-program-cpu-ms")
			b.ReportMetric(lazy.sentryCPU/n, "lazy-sentry-cpu-ms")
			b.ReportMetric(unlowered.loaded/n, "unlowered-lazy-loaded-ms")
			b.ReportMetric(unlowered.programCPU/n, "unlowered-lazy-program-cpu-ms")
			b.ReportMetric(nice19.loaded/n, "nice19-lazy-loaded-ms")
			b.ReportMetric(nice19.programCPU/n, "nice19-lazy-program-cpu-ms")
			b.ReportMetric(keepP.loaded/n, "keepp-lazy-loaded-ms")
			b.ReportMetric(keepP.load/n, "keepp-lazy-stream-ms")
			// The goal "all loaded no slower than eager" as one number:
			// at most 1.
			b.ReportMetric(lazy.loaded/eager.firstOutput, "lazy-loaded/eager-first-output")
		})
	}
}

// restoreSum adds up what benchRestore measured, in milliseconds: when the
// program first ran (from the sentry's start), when it printed its next
// line and, for a lazy restore, when its memory was all loaded (both from
// the start of snap restore); the memory load's own time (an eager
// restore's load-memory step, a lazy one's background load); for a lazy
// restore, the CPU time the program and the sentry used while the
// background loader ran.
type restoreSum struct {
	running, firstOutput, loaded, load, programCPU, sentryCPU float64
}

func (s *restoreSum) add(r restoreSum) {
	s.running += r.running
	s.firstOutput += r.firstOutput
	s.loaded += r.loaded
	s.load += r.load
	s.programCPU += r.programCPU
	s.sentryCPU += r.sentryCPU
}

// benchRestore restores uri detached with extra arguments and returns what
// it measured (restoreSum).
func (e *env) benchRestore(b *testing.B, uri, name string, extra ...string) restoreSum {
	b.Helper()
	var r restoreSum
	rout := filepath.Join(e.dir, name)
	start := time.Now()
	rid := strings.TrimSpace(e.benchSnap(b, append([]string{"restore", uri, "-d", "--stdout", rout}, extra...)...))
	logPath := filepath.Join(e.dir, "state", rid, "sentry.log")
	lazy := slices.Contains(extra, "--lazy")
	// The output and the log are watched together: a lazy load may end
	// before the program's first line, or after it.
	deadline := time.Now().Add(120 * time.Second)
	for r.firstOutput == 0 || r.running == 0 || (lazy && r.loaded == 0) {
		if r.firstOutput == 0 && len(lines(rout)) > 0 {
			r.firstOutput = ms(time.Since(start))
		}
		log, _ := os.ReadFile(logPath)
		if lazy && r.loaded == 0 && lazyLineRE.Match(log) {
			r.loaded = ms(time.Since(start))
			if m := programCPURE.FindSubmatch(log); m != nil {
				r.load, _ = strconv.ParseFloat(string(m[1]), 64)
				r.programCPU, _ = strconv.ParseFloat(string(m[2]), 64)
				r.sentryCPU, _ = strconv.ParseFloat(string(m[3]), 64)
			}
		}
		if m := loadMemoryRE.FindSubmatch(log); !lazy && m != nil {
			r.load, _ = strconv.ParseFloat(string(m[1]), 64)
		}
		r.running = runningMs(log)
		if time.Now().After(deadline) {
			b.Fatalf("restore of %s: no output, or the sentry log says neither when the program ran nor that it loaded:\n%s", uri, log)
		}
		time.Sleep(time.Millisecond)
	}
	if ls := lines(rout); strings.Contains(ls[0], "BAD") {
		b.Fatalf("restore of %s %v: the program printed %q", uri, extra, ls[0])
	}
	e.benchSnap(b, "kill", rid, "KILL")
	killAllIn(filepath.Join(e.dir, "state"))
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
