package kernel_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"snapshotter/internal/ctest"
	"snapshotter/kernel"
)

// mapfailMaxMapCount bounds the host's vm.max_map_count under which
// TestHostUnmapFailureKeepsMemory runs: it makes that many mappings (a
// few seconds at 65530, Linux's default; hosts that raise it to a million
// would take minutes). kernel.TestPlatformFailureKeepsMappedMemory checks
// the same with a platform that fails on demand.
const mapfailMaxMapCount = 1 << 18

// TestHostUnmapFailureKeepsMemory runs testdata/c/mapfail, which makes the
// host refuse the munmap of a page in the middle of a mapping (its stub
// holds vm.max_map_count mappings) and then reads that page, after a
// child process it forks has mapped memory. The munmap fails with ENOMEM
// as on Linux, and the page must still be the program's own. Before
// 2026-12-07 the sentry gave it back while the stub still mapped it: the
// program read the child's memory there.
func TestHostUnmapFailureKeepsMemory(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/vm/max_map_count")
	if err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("vm.max_map_count %q: %v", b, err)
	}
	if limit > mapfailMaxMapCount {
		t.Skipf("vm.max_map_count is %d: filling it would take too long (TestPlatformFailureKeepsMappedMemory covers this)", limit)
	}
	bin := ctest.Program(t, ctest.Glibc, "mapfail")
	out, st := run(t, []string{bin, strconv.Itoa(2 * limit)}, nil)
	if st != (kernel.ExitStatus{}) {
		t.Fatalf("mapfail: status %v; output:\n%s", st, out)
	}
	want := "fill: failed\nmunmap: ENOMEM\nmiddle: own\ndone"
	if got := strings.TrimSpace(out); got != want {
		t.Errorf("mapfail output:\n%s\nwant:\n%s", got, want)
	}
}
