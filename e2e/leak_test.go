package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// leakGrace bounds how long the stubs of a finished sentry may take to die
// (they are killed asynchronously, by a parent-death signal for example).
const leakGrace = 15 * time.Second

// TestNoLeakedProcesses requires that nothing a sandbox started outlives
// snap: neither when the program exits nor when the sentry itself is killed
// with SIGKILL (stubs die with the sandbox). The test process
// becomes a child subreaper for the duration, so any orphaned stub is
// re-parented to it and can be seen. Top-level tests run one at a time, so
// no other test's children exist meanwhile. Keys: "cli/no-leak-exit",
// "cli/no-leak-sigkill".
func TestNoLeakedProcesses(t *testing.T) {
	lc := libcs[0]
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", err)
	}
	defer func() {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); err != nil {
			t.Errorf("prctl(PR_SET_CHILD_SUBREAPER, 0): %v", err)
		}
	}()

	t.Run("no-leak-exit", func(t *testing.T) {
		skipKnownBroken(t, "cli/no-leak-exit")
		bin := program(t, lc, "hello")
		got := execute(t, []string{snap(t), "run", "--", bin}, spec{}, t.TempDir())
		if got.status != 0 || got.stdout != "hello, world\n" {
			t.Fatalf("snap run hello: status %d, stdout %q, stderr %q; want 0, \"hello, world\\n\"", got.status, got.stdout, got.stderr)
		}
		if left := waitNoChildren(t); len(left) > 0 {
			t.Errorf("after snap run exited: live processes left = %v, want none", left)
		}
	})

	t.Run("no-leak-sigkill", func(t *testing.T) {
		skipKnownBroken(t, "cli/no-leak-sigkill")
		bin := program(t, lc, "sleeper")
		cmd := exec.Command(snap(t), "run", "--", bin) // sleeps forever
		cmd.Env = baseEnv()
		cmd.Dir = t.TempDir()
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		defer func() {
			if !killed {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}()
		line, err := bufio.NewReader(out).ReadString('\n')
		if line != "slept 1\n" {
			t.Fatalf("first line of snap run sleeper = %q (%v), want \"slept 1\\n\"; stderr: %s", line, err, stderr.String())
		}
		// The ptrace platform runs the program in stub processes, children
		// of the sentry: make sure there is something that could leak.
		if stubs := liveChildrenOf(t, cmd.Process.Pid); len(stubs) == 0 {
			t.Errorf("while the sandbox runs: children of the sentry = none, want its stub processes")
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed = true
		_ = cmd.Wait()
		if left := waitNoChildren(t); len(left) > 0 {
			t.Errorf("after SIGKILL of the sentry: live processes left = %v, want none", left)
		}
	})
}

// skipKnownBroken skips t if key is in knownBroken (unless SNAP_E2E_RUN_BROKEN=1).
func skipKnownBroken(t *testing.T, key string) {
	t.Helper()
	if why, ok := knownBroken[key]; ok && os.Getenv("SNAP_E2E_RUN_BROKEN") != "1" {
		t.Skipf("known broken: %s", why)
	}
}

// waitNoChildren reaps dead children until no live child is left or
// leakGrace has passed; it returns the live children left, described.
func waitNoChildren(t *testing.T) []string {
	t.Helper()
	deadline := time.Now().Add(leakGrace)
	for {
		left := liveChildren(t)
		if len(left) == 0 || time.Now().After(deadline) {
			for _, c := range left {
				_ = syscall.Kill(c.pid, syscall.SIGKILL) // do not leak them past the test
			}
			reapZombies()
			var desc []string
			for _, c := range left {
				desc = append(desc, fmt.Sprintf("%d (%s, state %s)", c.pid, c.comm, c.state))
			}
			return desc
		}
		reapZombies()
		time.Sleep(50 * time.Millisecond)
	}
}

type procInfo struct {
	pid   int
	comm  string
	state string
}

// liveChildren lists the processes whose parent is this test process and
// that are not zombies.
func liveChildren(t *testing.T) []procInfo {
	t.Helper()
	return liveChildrenOf(t, os.Getpid())
}

// liveChildrenOf lists the processes whose parent is parent and that are not
// zombies.
func liveChildrenOf(t *testing.T, parent int) []procInfo {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may contain spaces and parentheses.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil || ppid != parent || f[0] == "Z" || f[0] == "X" {
			continue
		}
		out = append(out, procInfo{pid: pid, comm: s[open+1 : end], state: f[0]})
	}
	return out
}

// reapZombies collects every dead child without blocking.
func reapZombies() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || errors.Is(err, syscall.ECHILD) {
			return
		}
	}
}
