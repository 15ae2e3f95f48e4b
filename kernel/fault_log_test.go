package kernel_test

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
)

// TestFaultLog checks the log line of a fault that raises SIGSEGV: with
// --debug it names the address, the access, the vma there (none for a
// null dereference) and why the fault is genuine; without, a genuine fault
// is the program's and is not logged.
func TestFaultLog(t *testing.T) {
	bin := probe(t, "gcc")
	for _, tc := range []struct {
		name  string
		debug bool
		want  []string // in order; nil: no fault line at all
	}{
		{"debug", true, []string{"(pid 1, ", "): fault at 0x8 (r-- access, si_code 1)", "in no vma: fault at 0x8: no mapping: bad address: signal 11"}},
		{"quiet", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			out, st := runConfig(t, kernel.Config{Debug: tc.debug, Log: &log}, []string{bin, "segv"}, nil, nil)
			if st != (kernel.ExitStatus{Signal: int(unix.SIGSEGV)}) {
				t.Fatalf("run segv: status = %v, want SIGSEGV; output:\n%s", st, out)
			}
			got := log.String()
			if tc.want == nil {
				if strings.Contains(got, "fault at") {
					t.Errorf("log = %q, want no fault line", got)
				}
				return
			}
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("log lacks %q (in order); log:\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
