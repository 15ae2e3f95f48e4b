package checkpoint

import (
	"strings"
	"testing"
	"time"
)

// TestCopyOnWriteForkAcrossRestore: cowfork's parent and child share most
// of 4 MiB copy-on-write when the save is taken; each restore of the image
// (two, one after the other) continues both with every page intact: shared
// pages still shared, pages written by one side still its own.
func TestCopyOnWriteForkAcrossRestore(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "cowfork"), "loop")
	uri, _ := e.saveAfter(id, out, 4)
	e.waitGone(id)
	before := lines(out)
	checkClean(t, "original", before)
	last := lastTicks(t, before)
	for round := 1; round <= 2; round++ {
		rid, rout := e.restoreDetached(uri, "")
		// Both sides tick every 20 ms, but each at its own pace (the
		// child's first writes fault): read until each has printed.
		var after []string
		var got map[string]int
		deadline := time.Now().Add(60 * time.Second)
		for n := 2; len(got) < 2; n++ {
			if time.Now().After(deadline) {
				t.Fatalf("restore %d: after a minute, first ticks %v in %d lines (the last %q), want both sides ticking", round, got, len(after), after[max(0, len(after)-4):])
			}
			after = waitLines(t, rout, n)
			if l := after[len(after)-1]; strings.Contains(l, "ended") {
				t.Fatalf("restore %d: %q", round, l)
			}
			got = firstTicks(t, after)
		}
		checkClean(t, "restored", after)
		for _, who := range []string{"parent", "child"} {
			if got[who] != last[who]+1 {
				t.Errorf("restore %d: first %s tick = %d, want %d (after %v)", round, who, got[who], last[who]+1, after)
			}
		}
		e.must("kill", rid, "KILL")
	}
}

// lastTicks returns the last tick number printed by "parent" and "child".
func lastTicks(t *testing.T, ls []string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, l := range ls {
		f := strings.Fields(l)
		if len(f) >= 3 && f[1] == "tick" {
			m[f[0]] = number(t, strings.Join(f[1:], " "))
		}
	}
	return m
}

// firstTicks returns the first tick number printed by "parent" and "child".
func firstTicks(t *testing.T, ls []string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, l := range ls {
		f := strings.Fields(l)
		if len(f) < 3 || f[1] != "tick" {
			continue
		}
		if _, seen := m[f[0]]; !seen {
			m[f[0]] = number(t, strings.Join(f[1:], " "))
		}
	}
	return m
}

// TestCopyOnWriteFaultsAcrossRestore: cowfork storm is nearly always in a
// copy-on-write fault, so a save mostly stops it between a fault the
// kernel fixed and the faulting instruction's next run. Restored over the
// restore cache's copy, which maps that page from the copy, read-only,
// the instruction faults there again: a new mapping, not the same fault
// repeating (which killed the process with SIGSEGV). Restored three times:
// loading the image (making the copy), over the copy (recording the
// chunks it writes first) and over the copy with those copied first;
// each goes on from the round after the save's with its pages intact.
func TestCopyOnWriteFaultsAcrossRestore(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "cowfork"), "storm")
	uri, _ := e.saveAfter(id, out, 3)
	e.waitGone(id)
	before := lines(out)
	checkClean(t, "original", before)
	next := number(t, before[len(before)-1]) + 1
	for _, restore := range []string{"loaded", "over the copy", "over the copy, recorded chunks first"} {
		rid, rout := e.restoreDetached(uri, "")
		after := e.waitLinesRunning(restore, rid, rout, 2)
		checkClean(t, restore, after)
		if got := number(t, after[0]); got != next {
			t.Errorf("%s: first round %d, want %d (%q)", restore, got, next, after)
		}
		e.must("kill", rid, "KILL")
		e.waitGone(rid)
	}
}

// waitLinesRunning is waitLines for the output of sandbox id, failing at
// once, with what in the message, if the sandbox ends first.
func (e *env) waitLinesRunning(what, id, path string, n int) []string {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		l := lines(path)
		if len(l) >= n {
			return l
		}
		if m := e.meta(id); m["status"] != "running" {
			e.t.Fatalf("%s: sandbox %s %v (exit %v) after printing %q, want %d lines", what, id, m["status"], m["exit"], l, n)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %s has %d lines %q, want at least %d", what, path, len(l), l, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
