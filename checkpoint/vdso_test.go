package checkpoint

import (
	"fmt"
	"testing"
)

// TestVDSOClockAcrossRestores: vdsoclock reads CLOCK_MONOTONIC through the
// vDSO in a tight loop and is saved and restored twice. Each restored
// generation goes on with the next tick (the vDSO and its parameter page
// are where libc found them, and the clock advances), and no reading is
// ever below the one before it, across the restores included.
func TestVDSOClockAcrossRestores(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "vdsoclock"))
	uri, last := e.saveAfter(id, out, 3)
	checkClean(t, "original", lines(out))
	for gen := 1; gen <= 2; gen++ {
		var rout string
		id, rout = e.restoreDetached(uri, "")
		ls := waitLines(t, rout, 3)
		checkClean(t, fmt.Sprintf("generation %d", gen), ls)
		next := number(t, last) + 1
		for i, l := range ls[:3] {
			if want := fmt.Sprintf("tick %d reads-ok", next+i); l != want {
				t.Fatalf("generation %d: line %d = %q, want %q", gen, i+1, l, want)
			}
		}
		uri, last = e.saveAfter(id, rout, len(ls)+1)
		checkClean(t, fmt.Sprintf("generation %d", gen), lines(rout))
	}
}
