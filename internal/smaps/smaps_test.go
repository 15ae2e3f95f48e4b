package smaps

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMapped: a file this process maps shared and touches shows as
// resident, and one it does not map shows nothing.
func TestMapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapped")
	const size = 16 << 12
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	for _, tc := range []struct {
		path    string
		wantRss bool
	}{{path, true}, {path + ".absent", false}} {
		rss, _, err := Mapped(os.Getpid(), tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := rss >= size>>10; got != tc.wantRss || (!tc.wantRss && rss != 0) {
			t.Errorf("Mapped(self, %s): rss %d KiB, want resident %v (%d KiB)", tc.path, rss, tc.wantRss, size>>10)
		}
	}
}
