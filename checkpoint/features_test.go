package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

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

// TestSaveRefusedWithMemfd: a save while the program holds a memfd_create
// file (whose contents images cannot hold yet) fails with one line that
// says why, and the program keeps running.
func TestSaveRefusedWithMemfd(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "memfd"), "hold", "600")
	waitLines(t, out, 2)
	// Not e.mustFail: until SaveState calls Kernel.CheckSavable first, the
	// refusal comes from the memfd's beforeSave hook, which stateify
	// reports as a hook that panicked.
	r := e.snap("save", id)
	msg := strings.TrimSuffix(r.stderr, "\n")
	if r.code == 0 || !strings.Contains(msg, "memfd") || !strings.Contains(msg, "not supported") ||
		strings.Contains(msg, "\n") || strings.Contains(msg, "goroutine ") || strings.Contains(msg, "panic") {
		t.Errorf("save with a memfd open: exit %d, stderr %q, want one line saying a memfd cannot be saved", r.code, r.stderr)
	}
	if st := e.meta(id)["status"]; st != "running" {
		t.Fatalf("status after the refused save = %v, want running", st)
	}
	n := len(lines(out))
	ls := waitLines(t, out, n+2)
	if want := fmt.Sprintf("held %d", n+2); ls[n+1] != want {
		t.Errorf("line %d after the refused save = %q, want %q", n+2, ls[n+1], want)
	}
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
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "exacterr"), "hold", "25")
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
}

// TestCredentialsAcrossRestore: a process that changed its IDs, groups and
// kept capabilities (and a thread with IDs of its own) reports the same
// credentials after a restore, and after a second save and restore.
func TestCredentialsAcrossRestore(t *testing.T) {
	if os.Geteuid() != 0 {
		prereq.Missing(t, "the credentials workload runs as root")
	}
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "credhold"))
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
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "timerhold"))
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
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "ipchold"), "30")
	for gen := 0; gen < 2; gen++ {
		uri, last := e.saveAfter(id, out, 3)
		checkClean(t, "before the save", lines(out))
		var rout string
		id, rout = e.restoreDetached(uri, "")
		ls := waitLines(t, rout, 2)
		checkClean(t, "restored", ls)
		if want := fmt.Sprintf("tick %d ipc OK", number(t, last)+1); ls[0] != want {
			t.Fatalf("generation %d: first line after restore = %q, want %q", gen, ls[0], want)
		}
		out = rout
	}
	ls := waitDone(t, out)
	checkClean(t, "the last restored run", ls)
}

// TestSurfaceAcrossRestore: a program chroots (as root) into a directory
// of a tmpfs and watches a directory there with inotify; each tick it
// reads the events the last tick made, which are queued at a save. Saved
// and restored twice, it keeps its root, its watch and its queued events.
func TestSurfaceAcrossRestore(t *testing.T) {
	e := newEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	out := filepath.Join(e.dir, "out")
	id := lastLine(e.must("run", "-d", "--tmpfs", mnt, "--stdout", out, "--stderr", out, "--",
		program(t, "surfacehold"), filepath.Join(mnt, "root"), "25"))
	for gen := 0; gen < 2; gen++ {
		uri, last := e.saveAfter(id, out, 3)
		checkClean(t, "before the save", lines(out))
		id, out = e.restoreDetached(uri, "")
		ls := waitLines(t, out, 2)
		checkClean(t, "restored", ls)
		if want := fmt.Sprintf("tick %d surface OK", number(t, last)+1); ls[0] != want {
			t.Fatalf("generation %d: first line after the restore = %q, want %q", gen, ls[0], want)
		}
	}
	checkClean(t, "restored twice", waitDone(t, out))
}
