package checkpoint

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitFP waits until fploop's output file path has at least n lines, or
// until a line reports corruption (fploop then exits, so waiting for more
// would only time out), and returns the lines.
func waitFP(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		l := lines(path)
		if len(l) >= n || strings.Contains(strings.Join(l, "\n"), "CORRUPT") {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines %q, want at least %d", path, len(l), l, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkFPLines requires the first n lines of ls to be "fp K ok" for
// K = from, from+1, ...
func checkFPLines(t *testing.T, what string, ls []string, from, n int) {
	t.Helper()
	checkClean(t, what, ls)
	if len(ls) < n {
		t.Fatalf("%s printed %q, want %d lines", what, ls, n)
	}
	for i, l := range ls[:n] {
		if want := fmt.Sprintf("fp %d ok", from+i); l != want {
			t.Errorf("%s: line %d = %q, want %q", what, i+1, l, want)
		}
	}
}

// TestFPStateAcrossRestore: fploop holds FE_UPWARD and a pattern in every
// vector register while it sleeps; it is saved mid-run and the image is
// restored twice, one after the other. Each restored program continues with
// the next iteration and finds its registers, MXCSR, x87 control word and
// rounding intact.
func TestFPStateAcrossRestore(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "fploop"), "1000")
	uri, last := e.saveAfter(id, out, 3)
	e.waitGone(id)
	before := lines(out)
	checkFPLines(t, "before the save", before, 1, len(before))
	k := number(t, last)
	for _, round := range []string{"first restore", "second restore of the same image"} {
		rid, rout := e.restoreDetached(uri, "")
		checkFPLines(t, round, waitFP(t, rout, 3), k+1, 3)
		e.must("kill", rid, "KILL")
		e.waitGone(rid)
	}
}

// TestFPStateAcrossSecondSave: a restored fploop is saved again and that
// image restored: the FP state the restored program holds (loaded from the
// first image, then changed by its own iterations) is what the second image
// keeps.
func TestFPStateAcrossSecondSave(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "fploop"), "1000")
	uri, last := e.saveAfter(id, out, 3)
	e.waitGone(id)
	k := number(t, last)

	rid, rout := e.restoreDetached(uri, "")
	checkFPLines(t, "first restore", waitFP(t, rout, 3), k+1, 3)
	uri2, last2 := e.saveAfter(rid, rout, 3)
	e.waitGone(rid)
	ls := lines(rout)
	checkFPLines(t, "first restore", ls, k+1, len(ls))
	k2 := number(t, last2)

	rid2, rout2 := e.restoreDetached(uri2, "")
	checkFPLines(t, "restore of the second image", waitFP(t, rout2, 3), k2+1, 3)
	e.must("kill", rid2, "KILL")
}
