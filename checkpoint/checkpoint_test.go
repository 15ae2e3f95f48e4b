package checkpoint

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"snapshotter/internal/ctest"
	"snapshotter/internal/prereq"
	"snapshotter/storage/miniotest"
)

// knownBroken lists tests that cannot pass yet, with the reason; they are
// skipped (not failed) so the suite stays honest. The goal is an empty map.
var knownBroken = map[string]string{}

func skipIfBroken(t *testing.T) {
	t.Helper()
	if why, ok := knownBroken[t.Name()]; ok {
		t.Skipf("known broken: %s", why)
	}
}

var (
	snapBin  string
	buildErr error
	tmpRoot  string
)

func TestMain(m *testing.M) {
	var err error
	tmpRoot, err = os.MkdirTemp("", "snap-checkpoint")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	snapBin = filepath.Join(tmpRoot, "snap")
	// Static and with snap's entry point, as make build and e2e build it.
	build := exec.Command("go", "build", "-ldflags=-E=_rt0_snap", "-o", snapBin, "snapshotter/cmd/snapshotter")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build snap: %v\n%s", err, out)
	} else if _, err := miniotest.BuildS3Helper(tmpRoot); err != nil {
		// snap finds snap-s3 next to itself, as in bin/.
		buildErr = err
	}
	code := m.Run()
	ctest.Cleanup()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// program returns testdata/c/NAME.c compiled statically with gcc (once
// per run, by internal/ctest).
func program(t testing.TB, name string) string {
	t.Helper()
	return programWith(t, ctest.Glibc, name)
}

// programWith is program built with lc.
func programWith(t testing.TB, lc ctest.Libc, name string) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return ctest.Program(t, lc, name)
}

// env is one test's snap environment: its own state directory and store.
type env struct {
	t     *testing.T
	dir   string
	extra []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	skipIfBroken(t)
	if _, err := os.Stat("/proc/self/status"); err != nil {
		prereq.Missing(t, "procfs: %v", err)
	}
	e := &env{t: t, dir: t.TempDir()}
	t.Cleanup(e.killAll)
	return e
}

func (e *env) environ() []string {
	return append(os.Environ(),
		"SNAP_STATE_DIR="+filepath.Join(e.dir, "state"),
		"XDG_DATA_HOME="+filepath.Join(e.dir, "data"),
		"SNAP_STORE=")
}

// result is what one snap command did.
type result struct {
	stdout, stderr string
	code           int
}

// snap runs the snap binary with args and returns its output and status.
func (e *env) snap(args ...string) result {
	e.t.Helper()
	return e.snapWith(nil, e.extra, args...)
}

// snapCommandLimit bounds each snap command a test runs, so that one that
// never ends (a `snap wait` of a sandbox that goes on) fails its test, whose
// cleanup then kills the sandboxes, rather than holding the whole run until
// go test's own timeout, which runs no cleanup and leaves sentries behind.
// Far above what any command here takes, on any machine.
const snapCommandLimit = 5 * time.Minute

// snapWith is snap with stdin (nil: none) as its standard input and the
// extra environment entries env.
func (e *env) snapWith(stdin io.Reader, env []string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), snapCommandLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, snapBin, args...)
	cmd.Env = append(e.environ(), env...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("snap %v did not end within %v (killed); stderr %q", args, snapCommandLimit, errb.String())
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("snap %v: %v", args, err)
	}
	return r
}

// must runs snap and fails the test unless it exits 0.
func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.snap(args...)
	if r.code != 0 {
		e.t.Fatalf("snap %s = exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// mustFail runs snap, expects a non-zero status and one line on stderr
// without a panic, and returns that line.
func (e *env) mustFail(args ...string) string {
	e.t.Helper()
	r := e.snap(args...)
	if r.code == 0 {
		e.t.Fatalf("snap %s = exit 0 (stdout %q), want a failure", strings.Join(args, " "), r.stdout)
	}
	msg := strings.TrimSuffix(r.stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") || strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine ") {
		e.t.Errorf("snap %s: stderr = %q, want one line without a panic", strings.Join(args, " "), r.stderr)
	}
	return msg
}

// runDetached starts argv with snap run -d, stdout to a file; returns the
// ID and the file.
func (e *env) runDetached(stdin string, argv ...string) (string, string) {
	e.t.Helper()
	out := filepath.Join(e.dir, fmt.Sprintf("out-%d", time.Now().UnixNano()))
	args := []string{"run", "-d", "--stdout", out, "--stderr", out}
	if stdin != "" {
		args = append(args, "--stdin", stdin)
	}
	id := strings.TrimSpace(e.must(append(append(args, "--"), argv...)...))
	return id, out
}

// restoreDetached restores uri with snap restore -d and extra arguments.
func (e *env) restoreDetached(uri, stdin string, extra ...string) (string, string) {
	e.t.Helper()
	out := filepath.Join(e.dir, fmt.Sprintf("rout-%d", time.Now().UnixNano()))
	args := []string{"restore", uri, "-d", "--stdout", out, "--stderr", out}
	if stdin != "" {
		args = append(args, "--stdin", stdin)
	}
	args = append(args, extra...)
	id := strings.TrimSpace(e.must(args...))
	return id, out
}

// meta reads a sandbox's metadata file.
func (e *env) meta(id string) map[string]any {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "state", id, "meta.json"))
	if err != nil {
		e.t.Fatalf("read metadata of %s: %v", id, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		e.t.Fatalf("parse metadata of %s: %v", id, err)
	}
	return m
}

// killAll kills every sandbox of the test that still runs, and waits until
// every sentry process is gone, so that the test directory can be removed.
func (e *env) killAll() {
	killAllIn(filepath.Join(e.dir, "state"))
}

func killAllIn(stateDir string) {
	ents, _ := os.ReadDir(stateDir)
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(stateDir, ent.Name(), "meta.json"))
		if err != nil {
			continue
		}
		var m struct {
			PID      int    `json:"pid"`
			PIDStart uint64 `json:"pid_start"`
			Status   string `json:"status"`
		}
		if json.Unmarshal(b, &m) != nil || m.PID <= 0 {
			continue
		}
		if m.Status == "running" || m.Status == "starting" || m.Status == "waiting" {
			syscall.Kill(m.PID, syscall.SIGKILL)
		}
		for i := 0; i < 1000 && sentryAlive(m.PID, m.PIDStart); i++ {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// sentryAlive reports whether process pid, started at start (clock ticks),
// still exists and is not a zombie.
func sentryAlive(pid int, start uint64) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return false
	}
	st, _ := strconv.ParseUint(f[19], 10, 64)
	return st == start
}

// lines returns the lines of file path.
func lines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// waitLines waits until file path has at least n lines and returns them.
func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		l := lines(path)
		if len(l) >= n {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines %q, want at least %d", path, len(l), l, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDone waits until the last line of file path is "done" and returns
// the lines.
func waitDone(t *testing.T, path string) []string {
	t.Helper()
	for n := 1; ; n++ {
		ls := waitLines(t, path, n)
		if ls[len(ls)-1] == "done" {
			return ls
		}
	}
}

// wantLines fails t for each line of got that checkClean objects to and
// for each line of want that got lacks.
func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	checkClean(t, what, got)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s output %q has no line %q", what, got, w)
		}
	}
}

// number returns the number in a line like "count 12 sum OK".
func number(t *testing.T, line string) int {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("line %q has no number", line)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(f[1], ":"))
	if err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return n
}

// checkClean fails if any line reports a broken invariant.
func checkClean(t *testing.T, what string, ls []string) {
	t.Helper()
	for _, l := range ls {
		for _, bad := range []string{"CORRUPT", "CLOCK BACKWARD", "SHORT SLEEP", "DISARMED", "snap:"} {
			if strings.Contains(l, bad) {
				t.Errorf("%s printed %q", what, l)
			}
		}
	}
}

// saveAfter waits for line n of the sandbox's output, saves it with extra
// arguments and returns the image URI and the last line printed before
// the save completed.
func (e *env) saveAfter(id, out string, n int, extra ...string) (string, string) {
	e.t.Helper()
	waitLines(e.t, out, n)
	r := e.must(append([]string{"save", id}, extra...)...)
	uri := lastLine(r)
	ls := lines(out)
	return uri, ls[len(ls)-1]
}

// waitGone waits until the sandbox's sentry is gone.
func (e *env) waitGone(id string) {
	e.t.Helper()
	for i := 0; i < 2000; i++ {
		m := e.meta(id)
		if pid, _ := m["pid"].(float64); m["status"] != "running" || syscall.Kill(int(pid), 0) != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("sandbox %s still running", id)
}

// fifo makes a named pipe in the test directory and opens it for writing
// (O_RDWR, so that the open does not wait for a reader).
func (e *env) fifo(name string) *os.File {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		e.t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { f.Close() })
	return f
}
