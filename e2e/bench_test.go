package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"snapshotter/internal/ctest"
	"snapshotter/internal/prereq"
)

// timeRun runs argv to completion with baseEnv and returns how long it took
// from start to exit, failing b unless it exits 0 and prints wantLine (if
// not empty).
func timeRun(b *testing.B, wantLine string, argv ...string) time.Duration {
	b.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = baseEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), err, clip(stdout.String()), clip(stderr.String()))
	}
	if wantLine != "" && !strings.Contains(stdout.String(), wantLine+"\n") {
		b.Fatalf("%s: stdout has no line %q\nstdout:\n%s", strings.Join(argv, " "), wantLine, clip(stdout.String()))
	}
	return d
}

// pair runs a program natively and under snap, with the same arguments.
type pair struct {
	b    *testing.B
	bin  string
	snap string
}

func newPair(b *testing.B, lc ctest.Libc, prog string) pair {
	return pair{b: b, bin: program(b, lc, prog), snap: snap(b)}
}

func (p pair) native(want string, args ...string) time.Duration {
	return timeRun(p.b, want, append([]string{p.bin}, args...)...)
}

func (p pair) sandboxed(want string, args ...string) time.Duration {
	return timeRun(p.b, want, append([]string{p.snap, "run", "--", p.bin}, args...)...)
}

// workTime runs the program with args followed by 0 and by n, natively and
// under snap, alternately in b.Loop, and returns for each T(n) - T(0)
// summed over the loop, which leaves out process start-up. want(k) is the
// line a run with k prints.
func (p pair) workTime(want func(k int) string, n int, args ...string) (sandboxed, native time.Duration) {
	with := func(k int) []string { return append(args[:len(args):len(args)], strconv.Itoa(k)) }
	var nat0, natN, snap0, snapN time.Duration
	for p.b.Loop() {
		nat0 += p.native(want(0), with(0)...)
		natN += p.native(want(n), with(n)...)
		snap0 += p.sandboxed(want(0), with(0)...)
		snapN += p.sandboxed(want(n), with(n)...)
	}
	return snapN - snap0, natN - nat0
}

// BenchmarkSyscall measures the system call round trip: getpid.c makes N raw
// getpid calls; the cost of one call is (T(N) - T(0)) / N, which removes
// process start-up. Reported under snap as us/syscall and natively, in the
// same run, as native-us/syscall. (runsc on ptrace: about 41 us; goal: at
// most 30 us.)
func BenchmarkSyscall(b *testing.B) {
	b.ReportAllocs()
	const n = 20000
	p := newPair(b, libcs[0], "getpid")
	want := func(k int) string { return strconv.Itoa(k) + " of " + strconv.Itoa(k) + " getpid calls agreed" }
	p.sandboxed(want(0), "0") // warm up the page cache
	sb, nat := p.workTime(want, n)
	perCall := func(d time.Duration) float64 {
		return float64(d) / float64(b.N) / n / float64(time.Microsecond)
	}
	b.ReportMetric(perCall(sb), "us/syscall")
	b.ReportMetric(perCall(nat), "native-us/syscall")
}

// BenchmarkClockGettime measures clock_gettime(CLOCK_MONOTONIC) through
// libc, which the vDSO serves: vdso.c with an argument N reads the clock N
// times; one call costs (T(N) - T(0)) / N. Reported under snap as
// ns/clock_gettime, natively as native-ns/clock_gettime, and their ratio
// as x-native (goal: at most 3).
func BenchmarkClockGettime(b *testing.B) {
	b.ReportAllocs()
	const n = 10_000_000
	p := newPair(b, libcs[0], "vdso")
	want := func(k int) string { return "read the clock " + strconv.Itoa(k) + " times" }
	p.sandboxed(want(0), "0")
	var nat0, natN, snap0, snapN time.Duration
	for b.Loop() {
		nat0 += p.native(want(0), "0")
		natN += p.native(want(n), strconv.Itoa(n))
		snap0 += p.sandboxed(want(0), "0")
		snapN += p.sandboxed(want(n), strconv.Itoa(n))
	}
	perCall := func(dn, d0 time.Duration) float64 { return float64(dn-d0) / float64(b.N) / n }
	sandboxed, native := perCall(snapN, snap0), perCall(natN, nat0)
	b.ReportMetric(sandboxed, "ns/clock_gettime")
	b.ReportMetric(native, "native-ns/clock_gettime")
	b.ReportMetric(sandboxed/native, "x-native")
}

// BenchmarkFirstTouch256MiB measures first touch of 256 MiB of anonymous
// memory: touch.c writes one byte per 4 KiB page; the cost is T(256) - T(0).
// Reported as ms/256MiB and us/page, under snap and natively.
func BenchmarkFirstTouch256MiB(b *testing.B) {
	b.ReportAllocs()
	const mib, pages = 256, 256 << 20 / 4096
	p := newPair(b, libcs[0], "touch")
	want := func(k int) string { return "touched " + strconv.Itoa(k) + " pages" }
	p.sandboxed(want(0), "0")
	var nat0, natN, snap0, snapN time.Duration
	for b.Loop() {
		nat0 += p.native(want(0), "0")
		natN += p.native(want(pages), strconv.Itoa(mib))
		snap0 += p.sandboxed(want(0), "0")
		snapN += p.sandboxed(want(pages), strconv.Itoa(mib))
	}
	ms := func(dn, d0 time.Duration) float64 { return float64(dn-d0) / float64(b.N) / float64(time.Millisecond) }
	b.ReportMetric(ms(snapN, snap0), "ms/256MiB")
	b.ReportMetric(ms(natN, nat0), "native-ms/256MiB")
	b.ReportMetric(ms(snapN, snap0)*1000/pages, "us/page")
	b.ReportMetric(ms(natN, nat0)*1000/pages, "native-us/page")
}

// BenchmarkHello measures a whole `snap run` of a static hello world, from
// starting snap to its exit, against starting the same binary natively.
// Reported as ms/run and native-ms/run. (runsc do /bin/true: about 264 ms;
// goal: at most 30 ms.)
func BenchmarkHello(b *testing.B) {
	for _, lc := range libcs {
		b.Run(lc.Name, func(b *testing.B) {
			b.ReportAllocs()
			p := newPair(b, lc, "hello")
			const want = "hello, world"
			p.sandboxed(want)
			timeAgainstNative(b, func() time.Duration { return p.native(want) },
				func() time.Duration { return p.sandboxed(want) })
		})
	}
}

// timeAgainstNative times native and sandboxed runs alternately in b.Loop
// and reports the mean of each as ms/run and native-ms/run, and the fastest
// run of each as min-ms/run and native-min-ms/run: on a shared machine the
// mean moves with the other load, the minimum much less. Their ratios are
// x-native (means) and min-x-native (fastest runs).
func timeAgainstNative(b *testing.B, native, sandboxed func() time.Duration) {
	timePair(b, native, sandboxed, pairMetrics{
		mean: "ms/run", baseMean: "native-ms/run", fastest: "min-ms/run", baseFastest: "native-min-ms/run",
		ratio: "x-native", fastestRatio: "min-x-native",
	})
}

// pairMetrics names the metrics of timePair.
type pairMetrics struct {
	mean, baseMean, fastest, baseFastest, ratio, fastestRatio string
}

// timePair times base and subject alternately, once each per iteration,
// and reports their mean and fastest runs in ms and the ratios of subject
// to base under the names m gives.
func timePair(b *testing.B, base, subject func() time.Duration, m pairMetrics) {
	var tb, ts time.Duration
	minB, minS := time.Duration(1<<62), time.Duration(1<<62)
	for b.Loop() {
		db := base()
		ds := subject()
		tb, ts = tb+db, ts+ds
		minB, minS = min(minB, db), min(minS, ds)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(ts)/float64(b.N), m.mean)
	b.ReportMetric(ms(tb)/float64(b.N), m.baseMean)
	b.ReportMetric(ms(minS), m.fastest)
	b.ReportMetric(ms(minB), m.baseFastest)
	b.ReportMetric(float64(ts)/float64(tb), m.ratio)
	b.ReportMetric(float64(minS)/float64(minB), m.fastestRatio)
}

// BenchmarkStart measures whole `snap run`s from starting snap to its exit
// against running the same command natively, alternating in the same run,
// for what a sandbox typically starts: a static hello world (gcc), Debian's
// dynamic /bin/true, `python3 -c pass`, and a bash loop that forks and
// execs /bin/true 200 times. Reported as ms/run and native-ms/run, mean and
// fastest, and their ratios x-native and min-x-native. (Goals: at most 3
// times native for /bin/true and the bash loop, 1.5 times for python3.)
func BenchmarkStart(b *testing.B) {
	for _, c := range []struct {
		name string
		argv func(b *testing.B) []string
	}{
		{"hello-static", func(b *testing.B) []string { return []string{program(b, libcs[0], "hello")} }},
		{"true-dynamic", func(*testing.B) []string { return []string{"/bin/true"} }},
		{"python3", func(*testing.B) []string { return []string{"/usr/bin/python3", "-c", "pass"} }},
		{"bash-loop", func(*testing.B) []string {
			return []string{"/bin/bash", "-c", "for i in $(seq 200); do /bin/true; done"}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			argv := c.argv(b)
			if _, err := os.Stat(argv[0]); err != nil {
				prereq.Missing(b, "%s: %v", argv[0], err)
			}
			sandboxed := append([]string{snap(b), "run", "--"}, argv...)
			timeRun(b, "", sandboxed...) // warm up the page cache
			timeAgainstNative(b, func() time.Duration { return timeRun(b, "", argv...) },
				func() time.Duration { return timeRun(b, "", sandboxed...) })
		})
	}
}

// BenchmarkUnixSocket measures Unix stream sockets with sockbench.c, under
// snap and natively in the same run, each as T(N) - T(0) so that process
// start-up cancels out:
//   - pingpong: two processes bounce one byte 20000 times over a
//     socketpair; us/roundtrip is one write and one read on each side.
//   - bulk: 1 GiB through a socketpair in 64 KiB writes and reads; MiB/s.
func BenchmarkUnixSocket(b *testing.B) { benchStreams(b, "") }

// BenchmarkTCPSocket is BenchmarkUnixSocket over a TCP connection on
// 127.0.0.1: the sandbox's loopback against the host's.
func BenchmarkTCPSocket(b *testing.B) { benchStreams(b, "tcp") }

// benchStreams runs sockbench's pingpong and bulk modes, prefixed with
// prefix.
func benchStreams(b *testing.B, prefix string) {
	b.Run("pingpong", func(b *testing.B) {
		b.ReportAllocs()
		const n = 20000
		p := newPair(b, libcs[0], "sockbench")
		want := func(k int) string { return strconv.Itoa(k) + " round trips" }
		p.sandboxed(want(0), prefix+"pingpong", "0")
		sb, nat := p.workTime(want, n, prefix+"pingpong")
		us := func(d time.Duration) float64 {
			return float64(d) / float64(b.N) / n / float64(time.Microsecond)
		}
		b.ReportMetric(us(sb), "us/roundtrip")
		b.ReportMetric(us(nat), "native-us/roundtrip")
		b.ReportMetric(float64(sb)/float64(nat), "x-native")
	})
	b.Run("bulk1GiB", func(b *testing.B) {
		b.ReportAllocs()
		const mib = 1024
		p := newPair(b, libcs[0], "sockbench")
		want := func(k int) string { return strconv.Itoa(k) + " MiB received" }
		p.sandboxed(want(0), prefix+"bulk", "0")
		sb, nat := p.workTime(want, mib, prefix+"bulk")
		rate := func(d time.Duration) float64 { return mib / (d.Seconds() / float64(b.N)) }
		b.ReportMetric(rate(sb), "MiB/s")
		b.ReportMetric(rate(nat), "native-MiB/s")
		b.ReportMetric(float64(sb)/float64(nat), "x-native") // time under snap over native time
	})
}

// BenchmarkSnapVersion measures snap's own process start: `snap version`
// (nothing but the runtime's start, package initialisation, cobra and
// exit) from spawn to exit, against a static Go program whose main is
// empty (built here, as snap is: without cgo), alternating in the same
// run. Reported as ms/snap-version and empty-go-ms/run, mean and fastest,
// and their ratios x-empty-go and min-x-empty-go.
func BenchmarkSnapVersion(b *testing.B) {
	b.ReportAllocs()
	empty := emptyGoProgram(b)
	version := []string{snap(b), "version"}
	timeRun(b, "", version...) // warm up the page cache
	timeRun(b, "", empty)
	timePair(b, func() time.Duration { return timeRun(b, "", empty) }, func() time.Duration { return timeRun(b, "", version...) }, pairMetrics{
		mean: "ms/snap-version", baseMean: "empty-go-ms/run", fastest: "min-ms/snap-version", baseFastest: "empty-go-min-ms/run",
		ratio: "x-empty-go", fastestRatio: "min-x-empty-go",
	})
}

// emptyGoProgram builds, once per process, a static Go program whose main
// does nothing, and returns its path.
func emptyGoProgram(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(workDir, "emptygo")
	bin := filepath.Join(dir, "empty")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	files := map[string]string{
		"go.mod":  "module emptygo\n",
		"main.go": "package main\n\nfunc main() {}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build of an empty Go program: %v\n%s", err, out)
	}
	return bin
}
