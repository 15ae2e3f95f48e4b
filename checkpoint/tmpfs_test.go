package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestTmpfsAcrossRestore: a program fills a tmpfs (--tmpfs) with files,
// large and small, sparse, hard-linked, symlinked, unlinked but open, and
// an O_TMPFILE file, and checks every byte of them each tick; it is saved
// and restored twice and keeps finding them all, while the file it
// appends to each tick keeps its lines. The host directory under the
// mount point stays as it was (absent).
func TestTmpfsAcrossRestore(t *testing.T) {
	e := newEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	out := filepath.Join(e.dir, "out")
	id := lastLine(e.must("run", "-d", "--tmpfs", mnt, "--stdout", out, "--stderr", out, "--",
		program(t, "tmpfshold"), filepath.Join(mnt, "files"), "30"))
	for gen := 0; gen < 2; gen++ {
		uri, last := e.saveAfter(id, out, 3)
		checkClean(t, "before the save", lines(out))
		id, out = e.restoreDetached(uri, "")
		ls := waitLines(t, out, 2)
		checkClean(t, "restored", ls)
		if want := fmt.Sprintf("tick %d ok", number(t, last)+1); ls[0] != want {
			t.Fatalf("generation %d: first line after the restore = %q, want %q", gen, ls[0], want)
		}
	}
	checkClean(t, "restored twice", waitDone(t, out))
	if _, err := os.Lstat(mnt); !os.IsNotExist(err) {
		t.Errorf("host %s after the run: %v, want it absent (the tmpfs is the sandbox's)", mnt, err)
	}
}
