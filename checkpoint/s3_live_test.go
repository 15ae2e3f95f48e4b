package checkpoint

import (
	"strings"
	"testing"
)

// TestS3LiveSave: save --leave-running to a real MinIO pauses only to
// start a memory snapshot, as to a local store, and uploads the memory
// while dirtycount rewrites its pages; pages written before the upload
// read them were copied aside first, so the image restores to a program
// whose every page agrees with its record of generations at the pause
// (a page from after the pause with a record from before is CORRUPT),
// continuing from the save's point, and the original runs on.
func TestS3LiveSave(t *testing.T) {
	e := newEnv(t)
	e.useMinIO("snaps")
	id, out := e.runDetached("", append([]string{program(t, "dirtycount")}, dirtyArgs...)...)
	before := waitLines(t, out, 2)
	uri := lastLine(e.must("save", id, "--leave-running", "--to", "s3://snaps/lr/dirty"))
	after := lines(out)
	if uri != "s3://snaps/lr/dirty" {
		t.Errorf("snap save --to s3://snaps/lr/dirty printed %q", uri)
	}
	log := string(e.sentryLog(id))
	if !strings.Contains(log, "live save: paused") || strings.Contains(log, "copied out") {
		t.Errorf("sentry log does not show a live save to S3:\n%s", log)
	}
	lo, hi := number(t, before[len(before)-1]), number(t, after[len(after)-1])
	rid, rout := e.restoreDetached(uri, "")
	rl := waitLines(t, rout, 2)
	checkClean(t, "restored", rl)
	if n := number(t, rl[0]); n < lo+1 || n > hi+1 {
		t.Errorf("restored first line = %q, want count N with %d <= N <= %d", rl[0], lo+1, hi+1)
	}
	e.must("kill", rid, "KILL")
	checkClean(t, "original", waitLines(t, out, len(after)+2))
	if got := e.meta(id)["status"]; got != "running" {
		t.Errorf("original status = %v, want running", got)
	}
}
