package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dirtyArgs run dirtycount over 32 MiB rewriting 8 MiB a second: the
// memory keeps changing while a save or a migration reads it.
var dirtyArgs = []string{"32", "8192"}

// TestLiveSave: save --leave-running pauses only to start a memory
// snapshot and encode the kernel state; the memory is read while
// dirtycount rewrites pages, each page as it was at the pause (copied
// aside before a write). Each of three images of one sandbox restores to
// a program whose every page agrees with its record of generations (a
// page from after the pause with a record from before, or the reverse, is
// CORRUPT), and the original runs on.
func TestLiveSave(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", append([]string{program(t, "dirtycount")}, dirtyArgs...)...)
	var uris []string
	var bounds [][2]int
	for i := 0; i < 3; i++ {
		before := waitLines(t, out, len(lines(out))+2)
		uris = append(uris, lastLine(e.must("save", id, "--leave-running", "--to", fmt.Sprintf("live%d", i))))
		after := lines(out)
		bounds = append(bounds, [2]int{number(t, before[len(before)-1]), number(t, after[len(after)-1])})
	}
	checkClean(t, "original", waitLines(t, out, len(lines(out))+1))
	log, _ := os.ReadFile(filepath.Join(e.dir, "state", id, "sentry.log"))
	if n := strings.Count(string(log), "live save: paused"); n != 3 {
		t.Errorf("sentry.log has %d live saves, want 3:\n%s", n, log)
	}
	for i, uri := range uris {
		_, rout := e.restoreDetached(uri, "")
		rl := waitLines(t, rout, 2)
		checkClean(t, fmt.Sprintf("restored live%d", i), rl)
		lo, hi := bounds[i][0], bounds[i][1]
		if n := number(t, rl[0]); n < lo+1 || n > hi+1 {
			t.Errorf("live%d restored: first line %q, want count N with %d <= N <= %d", i, rl[0], lo+1, hi+1)
		}
	}
}
