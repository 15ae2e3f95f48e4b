package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// knownBroken lists the cases that the kernel cannot run yet, by key
// ("<libc>/<case>" for C programs, "busybox/<case>" for applets), with the
// reason. The runner skips them with "known broken: <why>"; with
// SNAP_E2E_RUN_BROKEN=1 it runs them anyway, so that an entry can be checked
// and removed. The goal is an empty map: remove an entry as soon as its case
// passes. TestKnownBrokenKeys keeps every key pointing at a real case.
var knownBroken = map[string]string{}

// runTimeout bounds one run of a program, natively or under snap. It is far
// above any case's normal duration; it only keeps a hung sentry from hanging
// the suite.
const runTimeout = 2 * time.Minute

// A spec says how to run a program and what it must do natively.
type spec struct {
	args   []string // arguments after the program path
	env    []string // added to baseEnv
	stdin  string   // the program's whole standard input
	status int      // the native exit status (128+N for a death by signal N)
	want   []string // lines that stdout must contain, in both runs
	zdtm   zdtmSpec // where the zdtm mode saves the program (zdtm_test.go)
	// snapFlags are snap run flags for the runs under snap (--tmpfs /tmp).
	snapFlags []string
}

// An outcome is what one run of a program did.
type outcome struct {
	stdout, stderr string
	status         int // exit status, or 128+N after a death by signal N
}

// baseEnv is the whole environment of both runs, so that a program that
// prints its environment prints the same thing natively and under snap.
func baseEnv() []string {
	return []string{
		"PATH=/usr/bin:/bin",
		"HOME=/",
		"LANG=C",
		"TZ=UTC",
		"SNAP_STATE_DIR=" + filepath.Join(workDir, "state"),
	}
}

// execute runs argv with s's environment and stdin in dir and returns what
// it did. It fails t if argv cannot be started or does not finish within
// runTimeout; the whole process group is killed then, so nothing leaks.
func execute(t *testing.T, argv []string, s spec, dir string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(baseEnv(), s.env...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(s.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s: timed out after %v\nstdout:\n%s\nstderr:\n%s", strings.Join(argv, " "), runTimeout,
			clip(stdout.String()), clip(stderr.String()))
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok {
		t.Fatalf("%s: no wait status", strings.Join(argv, " "))
	}
	o := outcome{stdout: stdout.String(), stderr: stderr.String(), status: ws.ExitStatus()}
	if ws.Signaled() {
		o.status = 128 + int(ws.Signal())
	}
	return o
}

// compare runs argv natively, checks that it did what s says, then runs it
// under `snap run` and requires the same stdout, stderr and exit status,
// then does the same saved and restored mid-run (the zdtm mode,
// zdtm_test.go). A case listed in knownBroken is skipped after the native
// run (unless SNAP_E2E_RUN_BROKEN=1).
func compare(t *testing.T, key string, argv []string, s spec) {
	t.Helper()
	dir := t.TempDir()
	start := time.Now()
	native := execute(t, argv, s, dir)
	took := time.Since(start) // only to pick the zdtm mode's random point
	if native.status != s.status {
		t.Fatalf("native %s: status = %d, want %d\nstdout:\n%s\nstderr:\n%s", key, native.status, s.status,
			clip(native.stdout), clip(native.stderr))
	}
	checkWant(t, "native", native.stdout, s.want)
	if t.Failed() {
		return
	}

	why, broken := knownBroken[key]
	if broken && os.Getenv("SNAP_E2E_RUN_BROKEN") != "1" {
		t.Skipf("known broken: %s", why)
	}
	snapArgv := append(append(append([]string{snap(t), "run"}, s.snapFlags...), "--"), argv...)
	got := execute(t, snapArgv, s, dir)
	if got.status != native.status {
		t.Errorf("snap run %s: status = %d, want %d (native)", key, got.status, native.status)
	}
	if got.stdout != native.stdout {
		t.Errorf("snap run %s: stdout differs from native: %s", key, diff(native.stdout, got.stdout))
	}
	if got.stderr != native.stderr {
		t.Errorf("snap run %s: stderr differs from native: %s", key, diff(native.stderr, got.stderr))
	}
	if broken && !t.Failed() {
		t.Logf("known broken case %s passed: remove it from knownBroken", key)
	}
	if !t.Failed() {
		compareZdtm(t, key, argv, s, dir, native, took)
	}
}

// checkWant requires every line of want in stdout. (Only the native run is
// checked: the run under snap must print exactly the same.)
func checkWant(t *testing.T, who, stdout string, want []string) {
	t.Helper()
	lines := make(map[string]bool)
	for _, l := range strings.Split(stdout, "\n") {
		lines[l] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("%s: stdout has no line %q\nstdout:\n%s", who, w, clip(stdout))
		}
	}
}

// diff describes the first difference between want and got, line by line,
// followed by both texts (clipped).
func diff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(wl) && i < len(gl) && wl[i] == gl[i] {
		i++
	}
	line := func(ls []string) string {
		if i < len(ls) {
			return fmt.Sprintf("%q", ls[i])
		}
		return "(end)"
	}
	return fmt.Sprintf("first difference at line %d: got %s, want %s\n--- got:\n%s\n--- want:\n%s",
		i+1, line(gl), line(wl), clip(got), clip(want))
}

// clip shortens s for a failure message.
func clip(s string) string {
	const limit = 4000
	if len(s) <= limit {
		return s
	}
	return s[:limit/2] + "\n[...]\n" + s[len(s)-limit/2:]
}
