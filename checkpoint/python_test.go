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

// pythonForker imports another extension module (a shared library mapped
// from the host, its pages in the file cache) and forks a child that uses
// the json module and exits with 7, every tick.
const pythonForker = `
import importlib, os, sys, time
mods = ["_json", "_queue", "_contextvars", "_lsprof", "_bz2", "_decimal", "_asyncio",
        "_multibytecodec", "_codecs_cn", "_codecs_jp", "_codecs_kr", "_lzma"]
i = 0
while True:
    i += 1
    m = importlib.import_module(mods[i % len(mods)])
    pid = os.fork()
    if pid == 0:
        import json
        os._exit(7 if json.loads("[1, 2]") == [1, 2] else 1)
    _, st = os.waitpid(pid, 0)
    sys.stdout.write("tick %d %s %d\n" % (i, m.__name__, os.waitstatus_to_exitcode(st)))
    time.sleep(0.02)
`

// TestPythonRestoredTwice: CPython shares the pages of its executable and
// libraries through the file cache, with forked children too; it is saved,
// restored, saved again from the restored sandbox and restored again, and
// keeps loading libraries and forking each time.
func TestPythonRestoredTwice(t *testing.T) {
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		prereq.Missing(t, "Debian's python3: %v", err)
	}
	e := newEnv(t)
	id, out := e.runDetached("", py, "-u", "-c", pythonForker)
	for round := 1; round <= 2; round++ {
		uri, last := e.saveAfter(id, out, 3)
		e.waitGone(id)
		id, out = e.restoreDetached(uri, "")
		after := waitLines(t, out, 3)
		for k, l := range after {
			f := strings.Fields(l)
			if len(f) != 4 || number(t, l) != number(t, last)+1+k || f[3] != "7" {
				t.Errorf("restore %d: line %d = %q, want tick %d with a child that exited 7", round, k, l, number(t, last)+1+k)
			}
		}
	}
	e.must("kill", id, "KILL")
}
