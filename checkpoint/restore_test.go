package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"snapshotter/internal/ctest"
	"snapshotter/kernel"
	"snapshotter/runner"
)

// TestRestoreForeground restores in the foreground: the program's output
// is snap's stdout, and snap exits with the program's status when it ends.
func TestRestoreForeground(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sleeper"), "6")
	uri, last := e.saveAfter(id, out, 2)
	n := number(t, last)
	r := e.snap("restore", uri)
	if r.code != 0 {
		t.Fatalf("snap restore (foreground) = exit %d, stderr %q", r.code, r.stderr)
	}
	var want []string
	for k := n + 1; k <= 6; k++ {
		want = append(want, fmt.Sprintf("slept %d", k))
	}
	if got := strings.TrimSpace(r.stdout); got != strings.Join(want, "\n") {
		t.Errorf("foreground restore printed %q, want %q", got, strings.Join(want, "\n"))
	}
}

// holdFile opens the file named by argv[1], reads its first line, and
// prints it every 50 ms while keeping the file open.
const holdFile = `#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) { perror("open"); return 2; }
	struct timespec ts = {0, 50000000};
	for (int k = 1;; k++) {
		char buf[64] = {0};
		if (pread(fd, buf, sizeof buf - 1, 0) < 0) { perror("pread"); return 3; }
		buf[strcspn(buf, "\n")] = 0;
		printf("read %d %s\n", k, buf); fflush(stdout);
		nanosleep(&ts, 0);
	}
}`

// TestHostFileChanged: a host file open at the save is reopened and checked
// at restore; unchanged it works, changed the restore fails with a clear
// error.
func TestHostFileChanged(t *testing.T) {
	e := newEnv(t)
	program(t, "sleeper") // checks gcc and the snap build
	bin := ctest.Source(t, "gcc", "hold", holdFile, "-static", "-O2")
	data := filepath.Join(e.dir, "data.txt")
	os.WriteFile(data, []byte("version-1\n"), 0o644)
	id, out := e.runDetached("", bin, data)
	uri, last := e.saveAfter(id, out, 2)

	_, rout := e.restoreDetached(uri, "")
	ls := waitLines(t, rout, 1)
	if want := fmt.Sprintf("read %d version-1", number(t, last)+1); ls[0] != want {
		t.Errorf("restored with the file unchanged: first line %q, want %q", ls[0], want)
	}

	os.WriteFile(data, []byte("version-2, longer\n"), 0o644)
	msg := e.mustFail("restore", uri)
	if !strings.Contains(msg, "data.txt") || !strings.Contains(msg, "changed") {
		t.Errorf("restore after the host file changed: %q, want an error naming the file and saying it changed", msg)
	}
}

// timingRE is one line of restore --timings (runner.TimingLines), also in
// a detached sentry's log after its timestamp.
var timingRE = regexp.MustCompile(`restore step (\S+) +at +(-?[0-9.]+) ms took +(-?[0-9.]+) ms$`)

// restoreSteps are the steps every restore reports, in runner and kernel
// terms (load-memory and wait-memory only when there is memory to load,
// which every program has).
var restoreSteps = []string{
	runner.StepProcessStart, runner.StepCommand, runner.StepOpenImage,
	kernel.StepReadHeader, kernel.StepPlatform, kernel.StepMemory, kernel.StepReadState,
	kernel.StepDecode, kernel.StepAfterLoad, kernel.StepConfigure, kernel.StepAttach,
	kernel.StepWaitMemory, kernel.StepStartKernel, runner.StepResume, runner.StepFirstSwitch,
}

// checkTimings parses the timing lines in text and requires each of
// restoreSteps once, with a start and a duration that are not negative.
// It never looks at how long a step took.
func checkTimings(t *testing.T, what, text string) {
	t.Helper()
	checkStepsOnce(t, what, text, restoreSteps)
}

// checkStepsOnce is checkTimings with the steps required.
func checkStepsOnce(t *testing.T, what, text string, steps []string) {
	t.Helper()
	seen := map[string]int{}
	for _, l := range strings.Split(text, "\n") {
		m := timingRE.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		seen[m[1]]++
		for _, v := range m[2:] {
			if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 {
				t.Errorf("%s: step %s has %q, want a duration that is not negative", what, m[1], v)
			}
		}
	}
	for _, s := range steps {
		if seen[s] != 1 {
			t.Errorf("%s: step %s reported %d times, want once (output %q)", what, s, seen[s], text)
		}
	}
}

// TestRestoreTimings: restore --timings reports every step of a foreground
// restore on stderr, and a detached restore the same steps in its sentry
// log; --timings with -d is refused.
func TestRestoreTimings(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sleeper"), "6")
	uri, last := e.saveAfter(id, out, 2)
	r := e.snap("restore", uri, "--timings")
	if r.code != 0 {
		t.Fatalf("snap restore --timings = exit %d, stderr %q", r.code, r.stderr)
	}
	if got, want := strings.Fields(r.stdout)[1], strconv.Itoa(number(t, last)+1); got != want {
		t.Errorf("restore --timings: first line %q, want slept %s", strings.SplitN(r.stdout, "\n", 2)[0], want)
	}
	checkTimings(t, "restore --timings", r.stderr)

	// Without the restore cache, which the restore above filled: the
	// same steps as it, memory load included.
	rid, rout := e.restoreDetached(uri, "", "--no-cache")
	waitLines(t, rout, 1)
	// The sentry logs them once the program has run, on the side.
	logPath := filepath.Join(e.dir, "state", rid, "sentry.log")
	var logb []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		logb, _ = os.ReadFile(logPath)
		if strings.Contains(string(logb), "restore step "+runner.StepFirstSwitch) {
			break
		}
	}
	checkTimings(t, "restore -d: sentry.log", string(logb))

	if msg := e.mustFail("restore", uri, "-d", "--timings"); !strings.Contains(msg, "--timings") {
		t.Errorf("restore -d --timings: %q, want an error naming --timings", msg)
	}
}
