package checkpoint

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"snapshotter/internal/prereq"
)

// pythonTicker builds a dictionary of 200,000 hashed entries (tens of MiB
// of Python heap), then prints "tick N SIZE" every 20 ms with time.sleep,
// which CPython implements as clock_nanosleep(CLOCK_MONOTONIC,
// TIMER_ABSTIME): the deadline of the sleep interrupted by the save has
// usually passed by the time the restored program runs again.
const pythonTicker = `
import hashlib, sys, time
d = {i: hashlib.sha256(str(i).encode()).hexdigest() for i in range(200000)}
i = 0
while True:
    i += 1
    sys.stdout.write("tick %d %d\n" % (i, len(d)))
    time.sleep(0.02)
`

// TestPythonRestore: the cold-start use case. An unmodified dynamically
// linked CPython is saved after its start-up work and restored; the first
// line after the restore is the next tick, with the dictionary intact.
func TestPythonRestore(t *testing.T) {
	// Debian's interpreter itself: a python3 found in PATH may be a
	// shell-script shim (pyenv), and snap does not run #! scripts yet.
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		prereq.Missing(t, "Debian's python3: %v", err)
	}
	e := newEnv(t)
	id, out := e.runDetached("", py, "-u", "-c", pythonTicker)
	uri, last := e.saveAfter(id, out, 3)
	e.waitGone(id)
	rid, rout := e.restoreDetached(uri, "")
	after := waitLines(t, rout, 2)
	if want := fmt.Sprintf("tick %d 200000", number(t, last)+1); after[0] != want {
		t.Errorf("first line after restore = %q, want %q", after[0], want)
	}
	if !strings.HasPrefix(after[1], "tick ") || number(t, after[1]) != number(t, after[0])+1 {
		t.Errorf("second line after restore = %q, want the tick after %q", after[1], after[0])
	}
	e.must("kill", rid, "KILL")
}
