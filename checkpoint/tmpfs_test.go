package checkpoint

import (
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
	out = e.ticksAcrossTwoRestores(t, id, out, "ok", nil)
	checkClean(t, "restored twice", waitDone(t, out))
	if _, err := os.Lstat(mnt); !os.IsNotExist(err) {
		t.Errorf("host %s after the run: %v, want it absent (the tmpfs is the sandbox's)", mnt, err)
	}
}
