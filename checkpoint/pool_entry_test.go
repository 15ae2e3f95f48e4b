package checkpoint

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// goInitLines are the lines GODEBUG=inittrace=1 makes the Go runtime
// print on stderr, one per package initialised: none when snap's entry
// code served the command before Go started.
func goInitLines(stderr string) int {
	n := 0
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "init ") && strings.Contains(l, " @") {
			n++
		}
	}
	return n
}

// withoutInitLines is stderr without goInitLines' lines.
func withoutInitLines(stderr string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !(strings.HasPrefix(l, "init ") && strings.Contains(l, " @")) && l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPoolTakeEntry: snap's entry code (cmd/snapshotter/internal/fasttake)
// serves the ordinary take before the Go runtime starts — detached and in
// the foreground, with stdio files, passing the program's exit status and
// a signal on — and leaves every other command line to Go with the pool
// as it was; a foreground take whose answer is not an exit status is
// handed to Go, which waits for the same member.
func TestPoolTakeEntry(t *testing.T) {
	e := newEnv(t)
	e.createPool("p", e.poolImage("img"), 2)
	e.extra = []string{"GODEBUG=inittrace=1"}
	state := filepath.Join(e.dir, "state")

	t.Run("detached", func(t *testing.T) {
		in := filepath.Join(e.dir, "d.in")
		if err := os.WriteFile(in, []byte("set b\ncheck\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errf := in+".out", in+".err"
		r := e.snap("--state-dir="+state, "pool", "take", "--stdin", in, "p", "--detach", "--stdout="+out, "--stderr", errf)
		if r.code != 0 || goInitLines(r.stderr) != 0 {
			t.Fatalf("pool take -d = exit %d, stderr %q; want 0 and no line of Go's", r.code, r.stderr)
		}
		id := strings.TrimSpace(r.stdout)
		e.must("wait", id)
		wantLines(t, "stdout of "+id, lines(out), "pages hold b", "bye after 2 commands")
		wantLines(t, "stderr of "+id, lines(errf), "stderr: 2 commands")
		e.waitPoolFull("p", 2)
	})

	t.Run("foreground exit status", func(t *testing.T) {
		out := filepath.Join(e.dir, "fg.out")
		r := e.snapWith(strings.NewReader("set c\ncheck\nexit 3\n"), e.extra, "pool", "take", "p", "--stdout", out)
		if r.code != 3 || r.stderr != "" {
			t.Errorf("pool take (foreground) = exit %d, stderr %q; want 3 (the program's) and nothing", r.code, r.stderr)
		}
		wantLines(t, "stdout", lines(out), "pages hold c")
		r = e.snapWith(strings.NewReader("check\n"), e.extra, "pool", "take", "p")
		if r.code != 0 || r.stderr != "stderr: 1 commands\n" || !strings.Contains(r.stdout, "bye after 1 commands") {
			t.Errorf("pool take (foreground, snap's stdio) = exit %d, stdout %q, stderr %q; want 0 and the program's output only", r.code, r.stdout, r.stderr)
		}
		e.waitPoolFull("p", 2)
	})

	t.Run("foreground signal", func(t *testing.T) {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pw.Close()
		out := filepath.Join(e.dir, "sig.out")
		cmd := exec.Command(snapBin, "pool", "take", "p", "--stdout", out)
		cmd.Env = append(e.environ(), e.extra...)
		var stderr strings.Builder
		cmd.Stdin, cmd.Stderr = pr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pr.Close()
		pw.WriteString("check\n")
		waitLines(t, out, 1)
		cmd.Process.Signal(syscall.SIGINT)
		err = cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+int(syscall.SIGINT) || stderr.String() != "" {
			t.Errorf("foreground take sent SIGINT: %v, stderr %q; want exit status %d and nothing on stderr", err, stderr.String(), 128+int(syscall.SIGINT))
		}
		e.waitPoolFull("p", 2)
	})

	t.Run("handed to Go", func(t *testing.T) {
		// The sandbox saved and stopped under a foreground take: the
		// wait's answer is not an exit status, and Go waits on.
		e.fifo("held.in")
		held := filepath.Join(e.dir, "held.in")
		out := filepath.Join(e.dir, "held.out")
		cmd := exec.Command(snapBin, "pool", "take", "p", "--stdin", held, "--stdout", out)
		cmd.Env = append(e.environ(), e.extra...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var id string
		for i := 0; id == ""; i++ {
			if running := e.statuses("running"); len(running) == 1 {
				id = running[0]
			} else if i == 3000 {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("running sandboxes %q after a foreground take, want one; stderr %q", running, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		e.must("save", id, "--to", "file://"+filepath.Join(e.dir, "handed"))
		err := cmd.Wait()
		// As the full command reports it.
		msg := withoutInitLines(stderr.String())
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || goInitLines(stderr.String()) == 0 || !strings.Contains(msg, id) || !strings.Contains(msg, "saved") {
			t.Errorf("foreground take whose sandbox was saved: %v, stderr %q; want Go's one line that %s was saved, exit status 1", err, stderr.String(), id)
		}
		e.waitPoolFull("p", 2)
	})

	// Left to Go with the pool unchanged (the last with an empty pool).
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name string
		env  []string
		args []string
		fail string // "" for success
	}{
		{"unknown flag", nil, []string{"pool", "take", "p", "-d", "--bogus"}, "unknown flag"},
		{"publish", nil, []string{"pool", "take", "p", "-d", "-p", "bogus"}, "-p"},
		{"take's flag before take", nil, []string{"--stdin", "/dev/null", "pool", "take", "p", "-d"}, ""},
		{"name too long", nil, []string{"pool", "take", long[:300], "-d"}, "pool name"},
		{"path too long", nil, []string{"pool", "take", "p", "-d", "--stdout", "/" + long}, "file name too long"},
		{"no pool", nil, []string{"pool", "take", "nope", "-d"}, "no such pool"},
		{"pool ls", nil, []string{"pool", "ls"}, ""},
		{"version", nil, []string{"version"}, ""},
		{"off", []string{"SNAP_NO_FAST_TAKE=1"}, []string{"pool", "take", "p", "-d"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.waitPoolFull("p", 2)
			before := e.statuses("waiting")
			r := e.snapWith(nil, append(tc.env, e.extra...), tc.args...)
			if goInitLines(r.stderr) == 0 {
				t.Errorf("snap %.60s: no line of Go's on stderr, want Go to run it", strings.Join(tc.args, " "))
			}
			msg := withoutInitLines(r.stderr)
			if tc.fail == "" && r.code != 0 || tc.fail != "" && (r.code == 0 || !strings.Contains(msg, tc.fail) || strings.Contains(msg, "\n")) {
				t.Errorf("snap %.60s = exit %d, stderr %q; want %q", strings.Join(tc.args, " "), r.code, msg, tc.fail)
			}
			if tc.fail != "" {
				if got := e.statuses("waiting"); strings.Join(got, " ") != strings.Join(before, " ") {
					t.Errorf("snap %.60s: waiting members %q, want %q as before", strings.Join(tc.args, " "), got, before)
				}
			} else if id := strings.TrimSpace(r.stdout); tc.args[0] == "pool" && tc.args[1] == "take" {
				e.must("wait", id) // its stdin /dev/null
			}
		})
	}

	t.Run("stdin closed", func(t *testing.T) {
		// Go's runtime opens /dev/null in its place; the entry code
		// leaves such a take to Go.
		e.waitPoolFull("p", 2)
		cmd := exec.Command("/bin/sh", "-c", `exec "$0" pool take p <&-`, snapBin)
		cmd.Env = append(e.environ(), e.extra...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil || goInitLines(stderr.String()) == 0 || !strings.Contains(stdout.String(), "bye after 0 commands") {
			t.Errorf("foreground take with stdin closed: %v, stdout %q, stderr %q; want Go to take with stdin /dev/null", err, stdout.String(), stderr.String())
		}
	})

	t.Run("empty pool", func(t *testing.T) {
		e.waitPoolSettled("p", 2)
		aside := filepath.Join(e.dir, "aside")
		if err := os.Mkdir(aside, 0o700); err != nil {
			t.Fatal(err)
		}
		waiting := filepath.Join(state, ".pools", "p", "waiting")
		ids := e.statuses("waiting")
		for _, id := range ids {
			if err := os.Rename(filepath.Join(waiting, id), filepath.Join(aside, id)); err != nil {
				t.Fatal(err)
			}
		}
		r := e.snapWith(nil, e.extra, "pool", "take", "p", "-d")
		if goInitLines(r.stderr) == 0 || r.code == 0 || !strings.Contains(withoutInitLines(r.stderr), "no waiting member") {
			t.Errorf("take from an empty pool = exit %d, stderr %q; want Go's error", r.code, r.stderr)
		}
		for _, id := range ids {
			os.Rename(filepath.Join(aside, id), filepath.Join(waiting, id))
		}
	})
}
