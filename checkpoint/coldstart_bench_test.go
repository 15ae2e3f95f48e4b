package checkpoint

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/internal/prereq"
)

// coldStartScript is the cold-start workload: a CPython that imports json,
// decimal, asyncio, email and http.client, prints "ready", waits for a
// line on stdin, answers it and exits.
const coldStartScript = `import json, decimal, asyncio, email, http.client, sys
sys.stdout.write("ready\n"); sys.stdout.flush()
line = sys.stdin.readline()
sys.stdout.write("answer %s\n" % json.dumps(line.strip())); sys.stdout.flush()
`

// coldStartRuns is how many runs of each kind one iteration of
// BenchmarkColdStart makes, so that even a single iteration has a median.
const coldStartRuns = 5

// BenchmarkColdStart measures the cold-start workload from the start of a
// command until the answer is read, as the median of 5·b.N runs of each:
// python3 natively, under `snap run`, and `snap restore` (foreground) of
// an image saved after "ready"; with the ratios to native. Its line is on
// stdin from the start.
func BenchmarkColdStart(b *testing.B) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		prereq.Missing(b, "Debian's python3: %v", err)
	}
	if buildErr != nil {
		b.Fatal(buildErr)
	}
	b.ReportAllocs()
	e := &env{dir: b.TempDir()}
	b.Cleanup(e.killAll)
	uri := e.coldStartImage(b, py)
	modes := []struct {
		name string
		argv []string
	}{
		{"native", []string{py, "-c", coldStartScript}},
		{"run", []string{snapBin, "run", "--", py, "-c", coldStartScript}},
		{"restore", []string{snapBin, "restore", uri}},
	}
	times := make([][]time.Duration, len(modes))
	b.ResetTimer()
	for i := 0; i < b.N*coldStartRuns; i++ {
		for m, mode := range modes {
			times[m] = append(times[m], e.untilAnswer(b, mode.argv))
		}
	}
	b.StopTimer()
	med := make([]float64, len(modes))
	for m, mode := range modes {
		med[m] = median(times[m])
		b.ReportMetric(med[m], mode.name+"-ms")
	}
	b.ReportMetric(med[1]/med[0], "run/native")
	b.ReportMetric(med[2]/med[0], "restore/native")
}

// coldStartImage runs the cold-start workload detached, with its stdin a
// FIFO that nobody writes, saves it once it printed "ready" and returns
// the image's URI.
func (e *env) coldStartImage(b *testing.B, py string) string {
	fifo := filepath.Join(e.dir, "stdin")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		b.Fatal(err)
	}
	// Held open for writing, so that the program's read blocks.
	hold, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer hold.Close()
	out := filepath.Join(e.dir, "ready.out")
	id := strings.TrimSpace(e.benchSnap(b, "run", "-d", "--stdin", fifo, "--stdout", out, "--", py, "-c", coldStartScript))
	waitLinesB(b, out, 1)
	if l := lines(out)[0]; l != "ready" {
		b.Fatalf("cold-start workload printed %q, want ready", l)
	}
	return strings.TrimSpace(e.benchSnap(b, "save", id, "--to", "coldstart"))
}

// untilAnswer runs argv with "hello" on its stdin and returns the time from
// its start until it printed its answer; it then waits for it to exit 0.
func (e *env) untilAnswer(b *testing.B, argv []string) time.Duration {
	b.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = e.environ()
	cmd.Stdin = strings.NewReader("hello\n")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var took time.Duration
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if sc.Text() == `answer "hello"` {
			took = time.Since(start)
		}
	}
	if err := cmd.Wait(); err != nil || took == 0 {
		b.Fatalf("%v: %v, answered after %v, stderr %q", argv, err, took, stderr.String())
	}
	return took
}

// median returns the median of ds in milliseconds.
func median(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}
