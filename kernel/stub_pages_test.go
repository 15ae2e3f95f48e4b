package kernel_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/internal/ctest"
	"snapshotter/kernel"
)

// TestStubPagesProtected runs testdata/c/stubpages, which looks for a
// writable page in the stub's region of its address space and, if it
// finds one, keeps writing tables of host mkdirat calls there while its
// other thread forks (each fork runs a batch of host calls in the stub).
// No page there may be writable, and the marker directory must not appear
// on the host.
func TestStubPagesProtected(t *testing.T) {
	for _, lc := range ctest.Libcs {
		t.Run(lc.Name, func(t *testing.T) {
			bin := ctest.Program(t, lc, "stubpages")
			marker := filepath.Join(t.TempDir(), "escaped")
			out, st := run(t, []string{bin, marker}, nil)
			if st != (kernel.ExitStatus{}) {
				t.Fatalf("stubpages: status %v; output:\n%s", st, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 4 || lines[3] != "done" {
				t.Fatalf("stubpages output:\n%s\nwant three page lines and done", out)
			}
			for _, l := range lines[:3] {
				if !strings.HasSuffix(l, " protected") {
					t.Errorf("stub page writable by the program: %q", l)
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the program made %s on the host", marker)
			} else if !os.IsNotExist(err) {
				t.Fatal(err)
			}
		})
	}
}
