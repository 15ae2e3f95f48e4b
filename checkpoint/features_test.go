package checkpoint

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"snapshotter/internal/ctest"
	"snapshotter/internal/prereq"
)

// TestStoppedChildAcrossRestore: a child stopped by SIGSTOP is saved and
// restored while its parent has not collected the stop yet; after the
// restore the child is still stopped, the parent's wait(WUNTRACED) still
// reports it, SIGCONT continues it, and the CLD_STOPPED SIGCHLD pending
// (blocked) at the save is still pending.
func TestStoppedChildAcrossRestore(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "stopchild"), "25")
	uri, last := e.saveAfter(id, out, 3)
	if !strings.HasPrefix(last, "waiting") {
		t.Fatalf("last line before the save = %q, want a waiting line", last)
	}
	e.waitGone(id)
	_, rout := e.restoreDetached(uri, "")
	wantLines(t, "restored", waitDone(t, rout),
		"stop still reported: yes",
		"continued: yes",
		"exit 7: yes",
		"pending SIGCHLD CLD_STOPPED: yes")
}

// TestFifoAndSocketPathAcrossRestore: a named pipe that always holds the
// line written the tick before, and a stream socket listening on a path
// that a forked client connects to every tick, saved and restored twice:
// the buffered line comes back and the path still finds the listener.
// Both in a tmpfs (/dev/shm) and in a directory of the overlay root (a new
// one in the host's /tmp, which is then not empty and so the overlay's).
func TestFifoAndSocketPathAcrossRestore(t *testing.T) {
	for _, tc := range []struct {
		name    string
		overlay bool
	}{
		{"tmpfs", false},
		{"overlay", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.overlay {
				dir, err := os.MkdirTemp("/tmp", "snap-fifo-")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(dir) })
				e.extra = append(e.extra, "FIFO_DIR="+dir)
			}
			id, out := e.runDetached("", program(t, "fifo"), "hold", "30")
			e.restoreTicksTwice(t, id, out, nil)
		})
	}
}

// TestSaveInFifoOpen: a process blocked opening a named pipe for reading
// (no writer yet) is saved there; after the restore it still waits, and
// the writer its child opens once a line arrives on the new stdin meets it.
func TestSaveInFifoOpen(t *testing.T) {
	e := newEnv(t)
	in1 := e.fifo("in1")
	id, out := e.runDetached(in1.Name(), program(t, "fifo"), "wait")
	waitLines(t, out, 1)
	uri := lastLine(e.must("save", id))
	in2 := e.fifo("in2")
	_, rout := e.restoreDetached(uri, in2.Name())
	in2.WriteString("go\n")
	if ls := waitLines(t, rout, 1); ls[0] != "read: hello" {
		t.Errorf("restored first line = %q, want \"read: hello\"", ls[0])
	}
}

// TestSharedMappingsAcrossRestore: a parent and its child share a memfd
// mapping (the memfd held only by the mappings), a /dev/shm file mapping
// and process-shared semaphores, and the parent keeps a second memfd open;
// saved and restored twice, each tick still crosses between the processes
// through the same pages (the child answers in its mapping what the parent
// wrote in its own) and the memfd keeps its contents.
func TestSharedMappingsAcrossRestore(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "shmfile"), "hold", "30")
	e.restoreTicksTwice(t, id, out, nil)
}

// TestSparseSharedMappingAcrossRestore: a sparse 4 GiB /dev/shm file
// mapped shared whole, with a page written far from the others each tick,
// is saved and restored twice: the image holds the pages touched, not the
// holes (the whole data directory stays under 64 MiB), and after each
// restore the pages written before read back, holes read zero and new
// touches allocate only what they touch (st_blocks under 8 MiB).
func TestSparseSharedMappingAcrossRestore(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sparsemap"), "hold", "30")
	e.restoreTicksTwice(t, id, out, func(gen int) {
		if n := treeSize(filepath.Join(e.dir, "data")); n >= 64<<20 {
			t.Fatalf("generation %d: stored images take %d bytes, want under 64 MiB (holes stay holes)", gen, n)
		}
	})
}

// treeSize returns the bytes of the regular files under dir.
func treeSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestCPUClockAcrossRestores: cputicks prints its process CPU clock each
// tick, after 2 ms more of it; each of two restores of one image continues
// it from the saved value: the first tick after the restore, n ticks after
// the last one printed before the save, reads at least 2(n-1) ms more than
// that one and at most 3n ms (spinning a little past each 2 ms, and the
// sleeps and prints) plus 20 ms more, so that it neither goes back nor
// jumps by what the restore did.
func TestCPUClockAcrossRestores(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "cputicks"))
	uri, last := e.saveAfter(id, out, 3)
	e.waitGone(id)
	before := cpuTickMS(t, last)
	for i := range 2 {
		rid, rout := e.restoreDetached(uri, "")
		first := waitLines(t, rout, 1)[0]
		e.must("kill", rid, "KILL")
		e.snap("wait", rid)
		n := number(t, first) - number(t, last)
		lo, hi := before+2*(n-1), before+3*n+20
		if got := cpuTickMS(t, first); n < 1 || got < lo || got > hi {
			t.Errorf("restore %d: first line %q after %q: CPU clock %d ms, want %d to %d", i+1, first, last, got, lo, hi)
		}
	}
}

// cpuTickMS returns the CPU time of a cputicks line "tick K cpu MS".
func cpuTickMS(t *testing.T, line string) int {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "tick" || f[2] != "cpu" {
		t.Fatalf("line %q is not a cputicks tick", line)
	}
	ms, err := strconv.Atoi(f[3])
	if err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return ms
}

// TestVirtualTimerAcrossRestore: an ITIMER_VIRTUAL interval timer keeps
// ticking after a restore, counting CPU time on the new platform, and the
// ticks continue from where they were.
func TestVirtualTimerAcrossRestore(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "vtimer"), "1000")
	uri, last := e.saveAfter(id, out, 3)
	e.waitGone(id)
	rid, rout := e.restoreDetached(uri, "")
	ls := waitLines(t, rout, 3)
	checkClean(t, "restored", ls)
	for i, l := range ls[:3] {
		if want := fmt.Sprintf("vtick %d", number(t, last)+1+i); l != want {
			t.Errorf("line %d after restore = %q, want %q", i+1, l, want)
		}
	}
	e.must("kill", rid, "KILL")
}

// TestSchedAndPipeStateAcrossRestore: what exacterr hold sets survives a
// save and restore: a pipe's F_SETPIPE_SZ capacity and its buffered bytes,
// the nice values of two threads, timer slack, personality, scheduling
// policy, CPU affinity, memory policy and a membarrier registration.
func TestSchedAndPipeStateAcrossRestore(t *testing.T) {
	for _, lc := range ctest.Libcs {
		t.Run(lc.Name, func(t *testing.T) {
			e := newEnv(t)
			id, out := e.runDetached("", programWith(t, lc, "exacterr"), "hold", "25")
			uri, last := e.saveAfter(id, out, 3)
			if !strings.HasPrefix(last, "held") {
				t.Fatalf("last line before the save = %q, want a held line", last)
			}
			e.waitGone(id)
			_, rout := e.restoreDetached(uri, "")
			wantLines(t, "restored", waitDone(t, rout),
				"pipe capacity kept: yes", "pipe bytes kept: yes", "nice kept: yes", "thread nice kept: yes",
				"timer slack kept: yes", "personality kept: yes", "policy kept: yes", "affinity kept: yes",
				"memory policy kept: yes", "membarrier registration kept: yes")
		})
	}
}

// TestCredentialsAcrossRestore: a process that changed its IDs, groups and
// kept capabilities (and a thread with IDs of its own) reports the same
// credentials after a restore, and after a second save and restore.
func TestCredentialsAcrossRestore(t *testing.T) {
	for _, lc := range ctest.Libcs {
		t.Run(lc.Name, func(t *testing.T) {
			if os.Geteuid() != 0 {
				prereq.Missing(t, "the credentials workload runs as root")
			}
			e := newEnv(t)
			id, out := e.runDetached("", programWith(t, lc, "credhold"))
			for gen := 0; gen < 2; gen++ {
				uri, last := e.saveAfter(id, out, 2)
				checkClean(t, "before the save", lines(out))
				var rout string
				id, rout = e.restoreDetached(uri, "")
				ls := waitLines(t, rout, 2)
				checkClean(t, "restored", ls)
				if want := fmt.Sprintf("tick %d creds OK", number(t, last)+1); ls[0] != want {
					t.Fatalf("generation %d: first line after restore = %q, want %q", gen, ls[0], want)
				}
				out = rout
			}
		})
	}
}

// TestLocksAcrossRestore: flock, POSIX and OFD locks held at the save are
// still held after the restore, and the two children blocked waiting for
// them at the save get them when the holder releases them.
func TestLocksAcrossRestore(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(e.dir, "locked")
	if err := os.WriteFile(file, []byte("locked\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id, out := e.runDetached("", program(t, "lockhold"), "8", file, "/dev/null")
	uri, last := e.saveAfter(id, out, 3)
	e.waitGone(id)
	_, rout := e.restoreDetached(uri, "")
	ls := waitDone(t, rout)
	checkClean(t, "restored", ls)
	if want := fmt.Sprintf("tick %d locks held OK", number(t, last)+1); ls[0] != want {
		t.Errorf("first line after restore = %q, want %q", ls[0], want)
	}
	tail := ls[len(ls)-4:]
	if tail[0] != "releasing" || tail[3] != "done" || !slices.Contains(tail, "waiter flock: granted") ||
		!slices.Contains(tail, "waiter F_SETLKW: granted") {
		t.Errorf("restored output ends with %q, want releasing, both waiters granted, done", tail)
	}
}

// TestTimersAcrossRestore: a periodic POSIX timer read through a signalfd,
// a periodic timerfd and a SIGEV_NONE timer an hour away keep going after
// a restore, twice: the ticks continue from the next count, the timerfd
// keeps counting, the hour timer's remaining time keeps shrinking and an
// expired timerfd nobody read stays readable (timerhold reports CORRUPT
// otherwise).
func TestTimersAcrossRestore(t *testing.T) {
	for _, lc := range ctest.Libcs {
		t.Run(lc.Name, func(t *testing.T) {
			e := newEnv(t)
			id, out := e.runDetached("", programWith(t, lc, "timerhold"))
			for gen := 0; gen < 2; gen++ {
				uri, last := e.saveAfter(id, out, 3)
				checkClean(t, "before the save", lines(out))
				var rout string
				id, rout = e.restoreDetached(uri, "")
				ls := waitLines(t, rout, 3)
				checkClean(t, "restored", ls)
				if want := fmt.Sprintf("tick %d ", number(t, last)+1); !strings.HasPrefix(ls[0], want) {
					t.Fatalf("generation %d: first line after restore = %q, want %q...", gen, ls[0], want)
				}
				before, after := timerfdCount(t, last), timerfdCount(t, ls[2])
				if after <= before {
					t.Errorf("generation %d: timerfd count %d after the restore, want more than %d before", gen, after, before)
				}
				out = rout
			}
		})
	}
}

// timerfdCount returns T of a "tick K timerfd T" line.
func timerfdCount(t *testing.T, line string) int {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 4 || f[2] != "timerfd" {
		t.Fatalf("line %q is not tick K timerfd T", line)
	}
	n, err := strconv.Atoi(f[3])
	if err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return n
}

// TestIPCAcrossRestore: System V semaphores, a message queue and a shared
// memory segment, a POSIX message queue, a child blocked in semop with a
// SEM_UNDO adjustment and a pidfd of it are saved and restored twice: the
// ticks continue from the next count with every value and message intact
// and the child still waiting, and at the end the child is released, its
// adjustment undone at its exit and its pidfd waited for.
func TestIPCAcrossRestore(t *testing.T) {
	for _, lc := range ctest.Libcs {
		t.Run(lc.Name, func(t *testing.T) {
			e := newEnv(t)
			id, out := e.runDetached("", programWith(t, lc, "ipchold"), "30")
			out = e.ticksAcrossTwoRestores(t, id, out, "ipc OK", nil)
			ls := waitDone(t, out)
			checkClean(t, "the last restored run", ls)
		})
	}
}

// TestSurfaceAcrossRestore: a program chroots (as root) into a directory
// of a tmpfs and watches a directory there with inotify and with dnotify
// (F_NOTIFY); each tick it reads the events and takes the signals the last
// tick made, which are queued at a save. Saved and restored twice, it
// keeps its root, its watches, its queued events and signals.
func TestSurfaceAcrossRestore(t *testing.T) {
	for _, lc := range ctest.Libcs {
		t.Run(lc.Name, func(t *testing.T) {
			e := newEnv(t)
			mnt := filepath.Join(e.dir, "mnt")
			out := filepath.Join(e.dir, "out")
			id := lastLine(e.must("run", "-d", "--tmpfs", mnt, "--stdout", out, "--stderr", out, "--",
				programWith(t, lc, "surfacehold"), filepath.Join(mnt, "root"), "25"))
			out = e.ticksAcrossTwoRestores(t, id, out, "surface OK", nil)
			checkClean(t, "restored twice", waitDone(t, out))
		})
	}
}

// restoreTicksTwice saves sandbox id, a program of the hold kind that
// prints "tick N ok" lines to out and "done" last, and restores it twice
// (ticksAcrossTwoRestores); the second copy must then end with done.
func (e *env) restoreTicksTwice(t *testing.T, id, out string, afterSave func(gen int)) {
	t.Helper()
	ls := waitDone(t, e.ticksAcrossTwoRestores(t, id, out, "ok", afterSave))
	checkClean(t, "restored twice", ls)
	if ls[len(ls)-1] != "done" {
		t.Errorf("last line = %q, want done", ls[len(ls)-1])
	}
}

// ticksAcrossTwoRestores saves sandbox id after 3 more "tick N <tick>"
// lines in out and restores the image, twice: each restored copy must go
// on with the next tick and print nothing unclean. afterSave, if not nil,
// runs after each save (generation 0 and 1). It returns the output file
// of the second restored copy.
func (e *env) ticksAcrossTwoRestores(t *testing.T, id, out, tick string, afterSave func(gen int)) string {
	t.Helper()
	for gen := 0; gen < 2; gen++ {
		uri, last := e.saveAfter(id, out, 3)
		checkClean(t, "before the save", lines(out))
		if afterSave != nil {
			afterSave(gen)
		}
		id, out = e.restoreDetached(uri, "")
		ls := waitLines(t, out, 2)
		checkClean(t, "restored", ls)
		if want := fmt.Sprintf("tick %d %s", number(t, last)+1, tick); ls[0] != want {
			t.Fatalf("generation %d: first line after the restore = %q, want %q", gen, ls[0], want)
		}
	}
	return out
}
