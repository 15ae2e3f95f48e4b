//go:build linux && amd64

package ptrace

import (
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"snapshotter/internal/ctest"
)

// interceptModes are the mechanisms testdata/c/intercept.c measures, the
// first two being what this platform uses (sysemu) and its seccomp
// equivalent.
var interceptModes = []string{"sysemu", "trace", "notif", "notif-sync", "sigsys"}

// interceptCount is the number of round trips of one measurement, fewer
// across CPUs, where each costs several times more.
func interceptCount(cpu int) int {
	if cpu == 0 {
		return 20000
	}
	return 4000
}

// BenchmarkHostInterception measures, with no sentry, what one intercepted
// system call costs under each mechanism the host offers a user-space
// kernel (testdata/c/intercept.c): ptrace with PTRACE_SYSEMU (this
// platform), ptrace with a seccomp SECCOMP_RET_TRACE filter, a seccomp user
// notification (with and without SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP), and a
// SIGSYS handler whose own call is a user notification. Each is reported in
// nanoseconds a round trip and as a ratio to PTRACE_SYSEMU and to the native
// call measured in the same run, with the two processes on one CPU and on
// two.
func BenchmarkHostInterception(b *testing.B) {
	bin := ctest.Program(b, ctest.Glibc, "intercept")
	for _, where := range []struct {
		name string
		cpu  int
	}{{"same-cpu", 0}, {"other-cpu", 1}} {
		b.Run(where.name, func(b *testing.B) {
			if where.cpu >= runtime.NumCPU() {
				b.Skipf("needs %d CPUs", where.cpu+1)
			}
			sums := map[string]float64{}
			for i := 0; i < b.N; i++ {
				for _, mode := range append([]string{"native"}, interceptModes...) {
					sums[mode] += interceptNanos(b, bin, mode, where.cpu)
				}
			}
			n := float64(b.N)
			b.ReportMetric(sums["native"]/n, "native-ns")
			for _, mode := range interceptModes {
				b.ReportMetric(sums[mode]/n, mode+"-ns")
				if mode != "sysemu" {
					b.ReportMetric(sums[mode]/sums["sysemu"], mode+"/sysemu")
				}
				b.ReportMetric(sums[mode]/sums["native"], mode+"/native")
			}
		})
	}
}

// interceptNanos runs the program once in mode and returns its mean
// nanoseconds a round trip.
func interceptNanos(b *testing.B, bin, mode string, cpu int) float64 {
	b.Helper()
	out, err := exec.Command(bin, mode, strconv.Itoa(interceptCount(cpu)), strconv.Itoa(cpu)).CombinedOutput()
	if err != nil {
		b.Fatalf("intercept %s: %v: %s", mode, err, out)
	}
	ns, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil || ns <= 0 {
		b.Fatalf("intercept %s printed %q: %v", mode, out, fmt.Errorf("not a positive number: %w", err))
	}
	return ns
}
