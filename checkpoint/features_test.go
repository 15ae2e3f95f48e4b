package checkpoint

import (
	"strings"
	"testing"
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
	var ls []string
	for n := 1; ; n++ {
		ls = waitLines(t, rout, n)
		if ls[len(ls)-1] == "done" {
			break
		}
	}
	checkClean(t, "restored", ls)
	for _, want := range []string{
		"stop still reported: yes",
		"continued: yes",
		"exit 7: yes",
		"pending SIGCHLD CLD_STOPPED: yes",
	} {
		found := false
		for _, l := range ls {
			found = found || l == want
		}
		if !found {
			t.Errorf("restored output %q has no line %q", ls, want)
		}
	}
}
