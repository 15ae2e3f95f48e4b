package kernel_test

import (
	"os/exec"
	"strconv"
	"testing"
	"time"

	"snapshotter/kernel"
)

// runQuiet runs argv in a new kernel with stdio on /dev/null (the
// sentry's own stdio when nil: keep the benchmark output clean by passing
// nothing the program prints).
func runQuiet(b *testing.B, argv []string) kernel.ExitStatus {
	b.Helper()
	k, err := kernel.New(kernel.Config{})
	if err != nil {
		b.Fatalf("kernel.New: %v", err)
	}
	defer k.Release()
	if err := k.Start(kernel.StartOptions{Argv: argv}); err != nil {
		b.Fatalf("Start: %v", err)
	}
	return k.Wait()
}

// BenchmarkSyscallRoundTrip measures one getpid through the kernel (a
// static program making n raw getpid calls, minus a run with none), with
// the same program run natively as the baseline.
func BenchmarkSyscallRoundTrip(b *testing.B) {
	bin := probe(b, "gcc")
	const n = 20000
	b.ReportAllocs()
	measure := func(run func(count int)) time.Duration {
		start := time.Now()
		run(n)
		full := time.Since(start)
		start = time.Now()
		run(0)
		return full - time.Since(start)
	}
	var sandboxed, native time.Duration
	for b.Loop() {
		sandboxed += measure(func(c int) { runQuiet(b, []string{bin, "getpid", strconv.Itoa(c)}) })
		native += measure(func(c int) {
			if err := exec.Command(bin, "getpid", strconv.Itoa(c)).Run(); err != nil {
				b.Fatal(err)
			}
		})
	}
	b.ReportMetric(float64(sandboxed.Nanoseconds())/float64(b.N*n)/1000, "us/syscall")
	b.ReportMetric(float64(native.Nanoseconds())/float64(b.N*n)/1000, "native-us/syscall")
}

// BenchmarkStartStatic measures New, Start and Wait of a static program
// that exits at once, against running it natively.
func BenchmarkStartStatic(b *testing.B) {
	bin := probe(b, "gcc")
	b.ReportAllocs()
	var native time.Duration
	for b.Loop() {
		if st := runQuiet(b, []string{bin, "exit", "0"}); st != (kernel.ExitStatus{}) {
			b.Fatalf("status %v", st)
		}
		start := time.Now()
		if err := exec.Command(bin, "exit", "0").Run(); err != nil {
			b.Fatal(err)
		}
		native += time.Since(start)
	}
	b.ReportMetric(float64(native.Nanoseconds())/float64(b.N)/1e6, "native-ms/run")
}
