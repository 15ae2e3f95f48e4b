package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestS3LeaveRunningCopyOut: save --leave-running to a real MinIO copies a
// small sandbox out while paused and uploads it while it runs (a local
// store is streamed instead); the original keeps going and the image
// continues from the point of the save.
func TestS3LeaveRunningCopyOut(t *testing.T) {
	e := newEnv(t)
	e.useMinIO("snaps")
	id, out := e.runDetached("", program(t, "sleeper"))
	before := waitLines(t, out, 2)
	uri := lastLine(e.must("save", id, "--leave-running", "--to", "s3://snaps/lr/sleeper"))
	after := lines(out)
	if uri != "s3://snaps/lr/sleeper" {
		t.Errorf("snap save --to s3://snaps/lr/sleeper printed %q", uri)
	}
	logb, err := os.ReadFile(filepath.Join(e.dir, "state", id, "sentry.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logb), "(copied out)") {
		t.Errorf("sentry log does not show a copy-out save to S3:\n%s", logb)
	}
	lo, hi := number(t, before[len(before)-1]), number(t, after[len(after)-1])
	rid, rout := e.restoreDetached(uri, "")
	rl := waitLines(t, rout, 2)
	checkClean(t, "restored", rl)
	if n := number(t, rl[0]); n < lo+1 || n > hi+1 || !strings.HasPrefix(rl[0], "slept ") {
		t.Errorf("restored first line = %q, want slept N with %d <= N <= %d", rl[0], lo+1, hi+1)
	}
	e.must("kill", rid, "KILL")
	checkClean(t, "original", waitLines(t, out, hi+2))
	if got := e.meta(id)["status"]; got != "running" {
		t.Errorf("original status = %v, want running", got)
	}
}
