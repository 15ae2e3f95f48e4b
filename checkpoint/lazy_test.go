package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"snapshotter/kernel"
)

// lazyStats is what a sentry's log says of a lazy restore once its memory
// is all loaded (runner.LazyLine).
type lazyStats struct {
	chunks, eager, onDemand, background int
}

var lazyLineRE = regexp.MustCompile(`lazy restore: (\d+) chunks loaded: (\d+) working set, (\d+) on first touch, (\d+) in the background`)

// waitLog waits until the sentry log of sandbox id has a line matching re
// and returns its submatches.
func (e *env) waitLog(id string, re *regexp.Regexp) []string {
	e.t.Helper()
	path := filepath.Join(e.dir, "state", id, "sentry.log")
	deadline := time.Now().Add(90 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if m := re.FindStringSubmatch(string(b)); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("sentry log of %s has no line matching %q:\n%s", id, re, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLazyLoaded waits until sandbox id, restored lazily, has loaded its
// memory and returns the counts its log gives.
func (e *env) waitLazyLoaded(id string) lazyStats {
	e.t.Helper()
	m := e.waitLog(id, lazyLineRE)
	n := make([]int, 4)
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	st := lazyStats{n[0], n[1], n[2], n[3]}
	if st.eager+st.onDemand+st.background != st.chunks {
		e.t.Errorf("sandbox %s: lazy load %+v: the counts do not add up to the chunks", id, st)
	}
	return st
}

// workingSetOf returns the working set snap inspect reports for uri.
func (e *env) workingSetOf(uri string) (status string, chunks int) {
	e.t.Helper()
	var r struct {
		Chunks     int `json:"chunks"`
		WorkingSet struct {
			Status string `json:"status"`
			Chunks int    `json:"chunks"`
		} `json:"workingSet"`
	}
	out := e.must("inspect", uri, "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		e.t.Fatalf("snap inspect --json %s: %v (%q)", uri, err, out)
	}
	return r.WorkingSet.Status, r.WorkingSet.Chunks
}

// checkCounterGoesOn waits for n lines of a restored counter and checks
// that it continued from the count after last with every checksum intact.
func checkCounterGoesOn(t *testing.T, what, out, last string, n int) {
	t.Helper()
	ls := waitLines(t, out, n)
	checkClean(t, what, ls)
	want := number(t, last) + 1
	for i, l := range ls {
		if l != fmt.Sprintf("count %d sum OK", want+i) {
			t.Errorf("%s: line %d = %q, want count %d sum OK", what, i, l, want+i)
		}
	}
}

// lazyWorkingSet takes an image of the checksummed counter through its
// first lazy restores (two at once, which both record a working set, unless
// one of them started so late that it found the other's: it then loads it
// first and records none), then one that loads the working set first, then
// one that ignores it.
func lazyWorkingSet(t *testing.T, e *env, uri, last string) {
	if st, _ := e.workingSetOf(uri); st != "none" {
		t.Fatalf("working set of a new image: %s, want none", st)
	}
	var wg sync.WaitGroup
	ids := make([]string, 2)
	recorded := make([]int, 2) // 0 if the restore found a working set
	found := make([]int, 2)    // the chunks of the working set it loaded first
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, out := e.restoreDetached(uri, "", "--lazy")
			ids[i] = id
			checkCounterGoesOn(t, fmt.Sprintf("lazy restore %d", i), out, last, 3)
			st := e.waitLazyLoaded(id)
			if found[i] = st.eager; found[i] != 0 {
				return
			}
			m := e.waitLog(id, regexp.MustCompile(`working set of (\d+) chunks recorded`))
			recorded[i], _ = strconv.Atoi(m[1])
			if recorded[i] != st.onDemand {
				t.Errorf("lazy restore %d recorded %d chunks, loaded %d on first touch", i, recorded[i], st.onDemand)
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		e.must("kill", id, "KILL")
	}
	switch {
	case found[0] != 0 && found[1] != 0:
		t.Fatalf("both first lazy restores loaded a working set (%d and %d chunks), want at least one to find none", found[0], found[1])
	case found[0] != 0 && found[0] != recorded[1], found[1] != 0 && found[1] != recorded[0]:
		t.Errorf("a first lazy restore loaded %v chunks of a working set, the other recorded %v", found, recorded)
	}
	status, ws := e.workingSetOf(uri)
	if status != "recorded" || (ws != recorded[0] && ws != recorded[1]) || ws == 0 {
		t.Fatalf("working set after the first lazy restores: %s, %d chunks; want recorded, %d or %d chunks", status, ws, recorded[0], recorded[1])
	}

	for _, tc := range []struct {
		name      string
		args      []string
		wantEager int
	}{
		{"working set", []string{"--lazy"}, ws},
		{"no working set", []string{"--lazy", "--no-working-set"}, 0},
	} {
		id, out := e.restoreDetached(uri, "", tc.args...)
		checkCounterGoesOn(t, tc.name, out, last, 3)
		if st := e.waitLazyLoaded(id); st.eager != tc.wantEager {
			t.Errorf("%s: lazy load %+v, want %d chunks loaded before the start", tc.name, st, tc.wantEager)
		}
		e.must("kill", id, "KILL")
	}
	if status, n := e.workingSetOf(uri); status != "recorded" || n != ws {
		t.Errorf("working set after a restore that used it: %s, %d chunks; want it kept (%d)", status, n, ws)
	}
}

// lazyCounterMiB is the checksummed counter's memory in the lazy tests:
// enough for tens of chunks to load on first touch and in the background.
const lazyCounterMiB = "64"

// TestLazyRestore: the counter with 64 MiB of checksummed pages, saved
// to the file store, restored lazily twice at once, then with the working
// set the first restores recorded, then without it: each continues from
// the next count with every checksum intact.
func TestLazyRestore(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "counter"), "0", lazyCounterMiB)
	uri, last := e.saveAfter(id, out, 2)
	if msg := e.mustFail("restore", uri, "--no-working-set"); !strings.Contains(msg, "--lazy") {
		t.Errorf("restore --no-working-set without --lazy: %q, want it to name --lazy", msg)
	}
	lazyWorkingSet(t, e, uri, last)
}

// TestLazyRestoreS3: the same from S3 on a real MinIO (ranged reads of
// the chunks through the helper; the working set is an object beside the
// image).
func TestLazyRestoreS3(t *testing.T) {
	e := newEnv(t)
	e.useMinIO("snaps")
	id, out := e.runDetached("", program(t, "counter"), "0", lazyCounterMiB)
	uri, last := e.saveAfter(id, out, 2, "--to", "s3://snaps/lazy/counter")
	lazyWorkingSet(t, e, uri, last)
}

// lazyHold holds a lazy restore's background loader back (runner's test
// knob): only first touches load memory, so that the store can go away
// while the program runs.
const lazyHold = "SNAP_LAZY_BACKGROUND_HOLD=1h"

// checkKilledByLoad waits for sandbox id, restored lazily, to end after
// its store went away: killed, with one line in its log saying why, and
// shown as killed by snap ps.
func (e *env) checkKilledByLoad(id string) {
	e.t.Helper()
	if r := e.snap("wait", id); r.code != 137 {
		e.t.Errorf("snap wait of a sandbox whose store went away = %d (%q), want 137", r.code, r.stderr)
	}
	e.waitLog(id, regexp.MustCompile(`snap: lazy restore: memory could not be loaded: .*: killing the sandbox`))
	if ps := e.must("ps"); !strings.Contains(ps, id) || !strings.Contains(ps, "killed(9)") {
		e.t.Errorf("snap ps = %q, want %s killed(9)", ps, id)
	}
}

// lazyTouchSaved runs touchline (64 MiB, touched only where its stdin
// says) with its stdin on a FIFO, saves it to to, restores it lazily with
// the extra environment entries extra (the background loader held back)
// and its stdin on another FIFO, and checks that the restored program
// reads MiB 0 back intact. It returns the restored sandbox and its stdin:
// nothing else of that memory is loaded until a line there asks for it,
// so the store can be taken away at a point that does not depend on the
// machine's speed.
func (e *env) lazyTouchSaved(to string, extra []string) (string, *os.File) {
	e.t.Helper()
	in1 := e.fifo("touch-in1")
	id, out := e.runDetached(in1.Name(), program(e.t, "touchline"), "64")
	if l := waitLines(e.t, out, 1)[0]; l != "ready" {
		e.t.Fatalf("touchline printed %q, want ready", l)
	}
	uri := lastLine(e.must("save", id, "--to", to))
	in2 := e.fifo("touch-in2")
	saved := e.extra
	e.extra = append(append([]string(nil), saved...), extra...)
	rid, rout := e.restoreDetached(uri, in2.Name(), "--lazy")
	e.extra = saved
	in2.WriteString("0\n")
	if l := waitLines(e.t, rout, 1)[0]; l != "mib 0 ok" {
		e.t.Fatalf("restored touchline printed %q, want mib 0 ok", l)
	}
	return rid, in2
}

// TestLazyRestoreStoreGone: touchline restored lazily with the background
// loader held back, so that its memory loads on first touch only; the
// file store directory is removed once it has read MiB 0, its pack (64
// MiB makes one) cut short first: the restore opened it at the first
// touch, and an open file outlives its name. When the program then reads
// MiB 40, that chunk cannot be loaded: the sandbox is killed with a clear
// line, nothing hangs. An image whose chunks are gone before the
// restore is refused.
func TestLazyRestoreStoreGone(t *testing.T) {
	e := newEnv(t)
	store := filepath.Join(e.dir, "gone")
	rid, in := e.lazyTouchSaved("file://"+store+"/mt", []string{lazyHold})
	packs, _ := filepath.Glob(filepath.Join(store, ".packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("packs of the store = %v, want one", packs)
	}
	if err := os.Truncate(packs[0], 16); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(store); err != nil {
		t.Fatal(err)
	}
	in.WriteString("40\n")
	e.checkKilledByLoad(rid)

	id, out := e.runDetached("", program(t, "memtouch"), "8", "/dev/stdout")
	uri, _ := e.saveAfter(id, out, 2, "--to", "file://"+store+"/mt2")
	if err := os.RemoveAll(filepath.Join(store, ".chunks")); err != nil {
		t.Fatal(err)
	}
	if msg := e.mustFail("restore", uri, "--lazy", "-d"); !strings.Contains(msg, "memory could not be loaded") {
		t.Errorf("lazy restore of an image without its chunks: %q, want it to say the memory could not be loaded", msg)
	}
}

// TestLazyRestoreS3Gone: as TestLazyRestoreStoreGone, from S3, with the
// MinIO server killed once the program has read MiB 0.
func TestLazyRestoreS3Gone(t *testing.T) {
	e := newEnv(t)
	srv := e.useMinIO("snaps")
	rid, in := e.lazyTouchSaved("s3://snaps/gone/mt", []string{lazyHold})
	srv.Kill()
	in.WriteString("40\n")
	e.checkKilledByLoad(rid)
}

// checkMemtouch fails for a memtouch line that is not "N SLICE ok TIME".
func checkMemtouch(t *testing.T, ls []string) {
	t.Helper()
	for _, l := range ls {
		if f := strings.Fields(l); len(f) != 4 || f[2] != "ok" {
			t.Errorf("memtouch printed %q, want N SLICE ok TIME", l)
		}
	}
}

// TestLazyRestoreTimings: a foreground restore --lazy --timings reports
// the steps of an eager one, with load-working-set in place of
// load-memory; a detached lazy restore's log says how its chunks were
// loaded once they all are.
func TestLazyRestoreTimings(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sleeper"), "12")
	uri, last := e.saveAfter(id, out, 2)
	r := e.snap("restore", uri, "--lazy", "--timings")
	if r.code != 0 {
		t.Fatalf("snap restore --lazy --timings = exit %d, stderr %q", r.code, r.stderr)
	}
	if got, want := strings.Fields(r.stdout)[1], strconv.Itoa(number(t, last)+1); got != want {
		t.Errorf("restore --lazy --timings: first line %q, want slept %s", strings.SplitN(r.stdout, "\n", 2)[0], want)
	}
	var steps []string
	for _, s := range restoreSteps {
		if s == kernel.StepMemory {
			s = kernel.StepWorkingSet
		}
		steps = append(steps, s)
	}
	checkStepsOnce(t, "restore --lazy --timings", r.stderr, steps)

	id, out = e.runDetached("", program(t, "sleeper"))
	uri, _ = e.saveAfter(id, out, 2)
	rid, rout := e.restoreDetached(uri, "", "--lazy")
	checkClean(t, "lazy restore", waitLines(t, rout, 1))
	if st := e.waitLazyLoaded(rid); st.chunks == 0 {
		t.Errorf("lazy restore: %+v, want chunks", st)
	}
}

// TestLazyRestoreSaveAndCOW: with the background loader held back, a save
// of a lazily restored memtouch loads the rest of its memory itself, and
// the image restores with every slice intact; the copy-on-write workload
// (a parent and a child sharing most pages) restored lazily copies pages
// that are not loaded yet, and neither side sees the other's writes.
func TestLazyRestoreSaveAndCOW(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "memtouch"), "64", "/dev/stdout")
	uri, _ := e.saveAfter(id, out, 2)
	e.extra = []string{lazyHold}
	rid, rout := e.restoreDetached(uri, "", "--lazy")
	e.extra = nil
	checkMemtouch(t, waitLines(t, rout, 1))
	uri2, last := e.saveAfter(rid, rout, 1)
	_, rout2 := e.restoreDetached(uri2, "")
	ls := waitLines(t, rout2, 17) // every slice checked once
	checkMemtouch(t, ls)
	if got, want := number(t, "n "+ls[0]), number(t, "n "+last)+1; got != want {
		t.Errorf("restored from the save of a lazy restore: first line %q, want counter %d", ls[0], want)
	}

	id, out = e.runDetached("", program(t, "cowfork"), "loop")
	uri, _ = e.saveAfter(id, out, 4)
	e.waitGone(id)
	lastT := lastTicks(t, lines(out))
	e.extra = []string{lazyHold}
	_, rout = e.restoreDetached(uri, "", "--lazy")
	e.extra = nil
	var after []string
	var got map[string]int
	for n := 2; len(got) < 2 || len(after) < 12; n++ {
		after = waitLines(t, rout, n)
		got = firstTicks(t, after)
	}
	checkClean(t, "cowfork restored lazily", after)
	for _, who := range []string{"parent", "child"} {
		if got[who] != lastT[who]+1 {
			t.Errorf("first %s tick = %d, want %d (after %v)", who, got[who], lastT[who]+1, after)
		}
	}
}

// TestLazyWorkingSetOfShortProgram: a program that ends before its lazy
// restore has loaded everything (the background loader held back) still
// leaves what it touched as the image's working set.
func TestLazyWorkingSetOfShortProgram(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sleeper"), "10")
	uri, last := e.saveAfter(id, out, 2)
	e.extra = []string{lazyHold}
	r := e.snap("restore", uri, "--lazy")
	e.extra = nil
	if r.code != 0 || !strings.HasPrefix(r.stdout, fmt.Sprintf("slept %d\n", number(t, last)+1)) {
		t.Fatalf("snap restore --lazy = exit %d, stdout %q, stderr %q; want slept %d first", r.code, r.stdout, r.stderr, number(t, last)+1)
	}
	if status, n := e.workingSetOf(uri); status != "recorded" || n == 0 {
		t.Errorf("working set after a lazy restore whose program ended first: %s, %d chunks; want recorded, not empty", status, n)
	}
}
