package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"snapshotter/internal/prereq"
)

// TestFailedSaveResumes: a save that fails after the sandbox was paused
// (the store's filesystem fills up while memory is written) reports the
// error in one line, leaves no image, and the program resumes where it was
// with its memory intact.
func TestFailedSaveResumes(t *testing.T) {
	e := newEnv(t)
	full := filepath.Join(e.dir, "full")
	if err := os.Mkdir(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", full, "tmpfs", 0, "size=256k"); err != nil {
		prereq.Missing(t, "mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(full, syscall.MNT_DETACH) })

	id, out := e.runDetached("", program(t, "counter"))
	before := waitLines(t, out, 2)
	msg := e.mustFail("save", id, "--to", filepath.Join(full, "img"))
	if !strings.Contains(msg, "no space") {
		t.Errorf("save to a full filesystem: %q, want it to say no space", msg)
	}
	if ents, _ := os.ReadDir(full); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("full store after the failed save holds %v, want nothing", names)
	}
	if st := e.meta(id)["status"]; st != "running" {
		t.Fatalf("status after a failed save = %v, want running", st)
	}
	n := len(lines(out))
	ls := waitLines(t, out, n+1)
	checkClean(t, "sandbox after a failed save", ls)
	for i := len(before); i < len(ls); i++ {
		if want := fmt.Sprintf("count %d sum OK", i+1); ls[i] != want {
			t.Errorf("line %d = %q, want %q", i+1, ls[i], want)
		}
	}
}
