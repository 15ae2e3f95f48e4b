package checkpoint

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"snapshotter/internal/ctest"
)

// TestCounter: the main zdtm case. A program keeps a counter and 256 MiB
// of checksummed pages; after save and restore the first line is the next
// count and every checksum still holds.
func TestCounter(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "counter"))
	uri, last := e.saveAfter(id, out, 2)
	if !strings.HasPrefix(uri, "file:///") {
		t.Errorf("snap save printed %q last, want a file:// URI", uri)
	}
	e.waitGone(id)
	if st := e.meta(id)["status"]; st != "saved" {
		t.Errorf("status after save = %v, want saved", st)
	}
	if ps := e.must("ps"); !strings.Contains(ps, id) || !strings.Contains(ps, "saved") {
		t.Errorf("snap ps = %q, want %s saved", ps, id)
	}
	before := lines(out)
	checkClean(t, "original", before)
	if got := before[len(before)-1]; got != last {
		t.Errorf("output grew after the save: last line %q, want %q", got, last)
	}

	rid, rout := e.restoreDetached(uri, "")
	after := waitLines(t, rout, 2)
	checkClean(t, "restored", after)
	if got, want := number(t, after[0]), number(t, last)+1; got != want || after[0] != fmt.Sprintf("count %d sum OK", want) {
		t.Errorf("first line after restore = %q, want count %d sum OK", after[0], want)
	}
	m := e.meta(rid)
	if m["restored_from"] != uri || m["status"] != "running" {
		t.Errorf("restored sandbox metadata = %v, want running, restored_from %s", m, uri)
	}
	if ps := e.must("ps"); !strings.Contains(ps, uri) {
		t.Errorf("snap ps = %q, want the restored-from URI", ps)
	}
	e.must("kill", rid, "KILL")
	if r := e.snap("wait", rid); r.code != 137 {
		t.Errorf("snap wait after kill KILL = %d (%q), want 137", r.code, r.stderr)
	}
}

// TestRestoreThreeAtOnce restores one image three times concurrently; each
// copy continues from the same count.
func TestRestoreThreeAtOnce(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sleeper"))
	uri, last := e.saveAfter(id, out, 3)
	want := fmt.Sprintf("slept %d", number(t, last)+1)
	var wg sync.WaitGroup
	outs := make([]string, 3)
	ids := make([]string, 3)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], outs[i] = e.restoreDetached(uri, "")
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, o := range outs {
		ls := waitLines(t, o, 3)
		checkClean(t, "restored copy", ls)
		if ls[0] != want {
			t.Errorf("copy %d: first line %q, want %q", i, ls[0], want)
		}
		if seen[ids[i]] {
			t.Errorf("copy %d: ID %s used twice", i, ids[i])
		}
		seen[ids[i]] = true
	}
}

// TestSaveLeaveRunning: the original keeps going after the save, and the
// image continues from the same point.
func TestSaveLeaveRunning(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sleeper"))
	before := waitLines(t, out, 2)
	uri := lastLine(e.must("save", id, "--leave-running", "--to", "kept"))
	after := lines(out)
	if want := e.dir + "/data/snap/images/kept"; uri != "file://"+want {
		t.Errorf("save --to kept = %q, want file://%s", uri, want)
	}
	// The program ran before and after the save: the image holds a count
	// between the last line seen before and the last line seen after.
	lo, hi := number(t, before[len(before)-1]), number(t, after[len(after)-1])
	ls := waitLines(t, out, hi+2)
	checkClean(t, "original", ls)
	if got := e.meta(id)["status"]; got != "running" {
		t.Errorf("status after save --leave-running = %v, want running", got)
	}
	_, rout := e.restoreDetached("kept", "")
	rl := waitLines(t, rout, 1)
	if n := number(t, rl[0]); n < lo+1 || n > hi+1 || !strings.HasPrefix(rl[0], "slept ") {
		t.Errorf("restored first line = %q, want slept N with %d <= N <= %d", rl[0], lo+1, hi+1)
	}
}

// TestSaveInNanosleep saves many times while the program sleeps: each
// interrupted nanosleep resumes with its remaining time (never SHORT
// SLEEP), and the count continues.
func TestSaveInNanosleep(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sleeper"))
	uri, last := e.saveAfter(id, out, 1)
	for i := 0; i < 2; i++ {
		var rout string
		id, rout = e.restoreDetached(uri, "")
		ls := waitLines(t, rout, 2)
		checkClean(t, "restored", ls)
		if want := fmt.Sprintf("slept %d", number(t, last)+1); ls[0] != want {
			t.Fatalf("generation %d: first line %q, want %q", i, ls[0], want)
		}
		uri, last = e.saveAfter(id, rout, 2)
	}
}

// TestSaveInRead saves while the program blocks reading stdin (a pipe);
// restored with a new stdin, the read restarts and the line count goes on.
func TestSaveInRead(t *testing.T) {
	e := newEnv(t)
	in1 := e.fifo("in1")
	id, out := e.runDetached(in1.Name(), program(t, "stdinreader"))
	waitLines(t, out, 1)
	in1.WriteString("one\n")
	waitLines(t, out, 2)
	uri := lastLine(e.must("save", id))
	ls := lines(out)
	if len(ls) != 2 || ls[0] != "ready" || ls[1] != "got: one" {
		t.Fatalf("output before save = %q, want ready, got: one", ls)
	}
	in2 := e.fifo("in2")
	_, rout := e.restoreDetached(uri, in2.Name())
	in2.WriteString("two\n")
	rl := waitLines(t, rout, 1)
	if rl[0] != "got: two" {
		t.Errorf("restored first line = %q, want got: two", rl[0])
	}
	in2.Close()
	rl = waitLines(t, rout, 2)
	if rl[1] != "eof after 2 lines" {
		t.Errorf("restored last line = %q, want eof after 2 lines", rl[1])
	}
}

// TestSignalPendingAtSave: SIGUSR1 (raised by the program) and SIGUSR2
// (sent with snap kill) are pending and blocked at the save and delivered
// once each after the restore.
func TestSignalPendingAtSave(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sigpending"), "12")
	waitLines(t, out, 1)
	e.must("kill", id, "USR2")
	uri, last := e.saveAfter(id, out, 3)
	_, rout := e.restoreDetached(uri, "")
	ls := waitLines(t, rout, 1)
	if want := fmt.Sprintf("waiting %d:", number(t, last)+1); !strings.HasPrefix(ls[0], want) ||
		!strings.Contains(ls[0], "SIGUSR1 pending yes") || !strings.Contains(ls[0], "SIGUSR2 pending yes") {
		t.Errorf("first line after restore = %q, want %s with both pending", ls[0], want)
	}
	for {
		ls = waitLines(t, rout, len(ls)+1)
		if l := ls[len(ls)-1]; strings.HasPrefix(l, "delivered") {
			if l != "delivered SIGUSR1 1 SIGUSR2 1" {
				t.Errorf("final line = %q, want delivered SIGUSR1 1 SIGUSR2 1", l)
			}
			return
		}
	}
}

// TestItimerAfterRestore: an ITIMER_REAL interval timer keeps firing after
// a restore, and the ticks continue.
func TestItimerAfterRestore(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "itimer"))
	uri, last := e.saveAfter(id, out, 3)
	_, rout := e.restoreDetached(uri, "")
	ls := waitLines(t, rout, 3)
	checkClean(t, "restored", ls)
	if want := fmt.Sprintf("tick %d", number(t, last)+1); ls[0] != want {
		t.Errorf("first tick after restore = %q, want %q", ls[0], want)
	}
}

// TestCounterLeaveRunning: save --leave-running of the 256 MiB counter to
// the local store streams the memory while paused and resumes the sandbox
// before the commit; the original keeps counting and the restored copy's checksums all hold.
func TestCounterLeaveRunning(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "counter"))
	before := waitLines(t, out, 2)
	uri := lastLine(e.must("save", id, "--leave-running"))
	after := lines(out)
	lo, hi := number(t, before[len(before)-1]), number(t, after[len(after)-1])
	_, rout := e.restoreDetached(uri, "")
	rl := waitLines(t, rout, 2)
	checkClean(t, "restored", rl)
	if n := number(t, rl[0]); n < lo+1 || n > hi+1 || rl[0] != fmt.Sprintf("count %d sum OK", n) {
		t.Errorf("restored first line = %q, want count N sum OK with %d <= N <= %d", rl[0], lo+1, hi+1)
	}
	ol := waitLines(t, out, len(after)+1)
	checkClean(t, "original", ol)
	if got := e.meta(id)["status"]; got != "running" {
		t.Errorf("original status = %v, want running", got)
	}
}

// TestSaveInCondWait saves condbarrier while its three threads wait on a
// condition variable (the start gate) and the main thread reads stdin;
// restored with a new stdin, the main thread opens the gate and the
// threads meet thousands of times at a condition-variable barrier and at
// a pthread barrier with the right sums. With musl the broadcast moves the
// waiters to the mutex (FUTEX_REQUEUE), which used to hang.
func TestSaveInCondWait(t *testing.T) {
	for _, lc := range ctest.Libcs {
		t.Run(lc.Name, func(t *testing.T) {
			e := newEnv(t)
			in1 := e.fifo("in1")
			id, out := e.runDetached(in1.Name(), programWith(t, lc, "condbarrier"), "wait")
			if ls := waitLines(t, out, 1); ls[0] != "waiting" {
				t.Fatalf("first line = %q, want waiting", ls[0])
			}
			uri := lastLine(e.must("save", id))
			e.waitGone(id)
			in2 := e.fifo("in2")
			_, rout := e.restoreDetached(uri, in2.Name())
			in2.WriteString("go\n")
			want := []string{
				"3 threads met 4000 times at a condition-variable barrier: sums right: yes",
				"pthread_barrier_wait 2000 times: ok",
			}
			if got := waitLines(t, rout, 2); !slices.Equal(got, want) {
				t.Errorf("restored output = %q, want %q", got, want)
			}
		})
	}
}
