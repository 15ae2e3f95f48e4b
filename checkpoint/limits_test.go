package checkpoint

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLimitsAfterRestore: the limits a sandbox ran with are saved in its
// image and hold after a restore (testdata/c/limits.c, saved while it
// waits on stdin before any check; threads rather than forks count the
// tasks, as a fork copies memory the memory limit would stop first); a
// restore with --pids or --memory replaces them.
func TestLimitsAfterRestore(t *testing.T) {
	e := newEnv(t)
	bin := program(t, "limits")
	in := e.fifo("in")
	out := filepath.Join(e.dir, "out")
	id := strings.TrimSpace(e.must("run", "-d", "--pids", "20", "--memory", "64M", "--stdin", in.Name(),
		"--stdout", out, "--stderr", out, "--", bin, "wait", "threads", "100", "memory"))
	waitLines(t, out, 1)
	uri := lastLine(e.must("save", id))

	for _, tc := range []struct {
		name  string
		flags []string
		want  []string
	}{
		{"saved limits", nil, []string{
			"threads: 19, then EAGAIN", "mmap 16 MiB and touch it: ok", "mmap 128 MiB: ENOMEM", "mremap 16 to 128 MiB: ENOMEM",
			"brk +128 MiB: ENOMEM", "malloc 128 MiB: NULL",
		}},
		{"overridden", []string{"--pids", "30", "--memory", "unlimited"}, []string{
			"threads: 29, then EAGAIN",
			"mmap 128 MiB: ok", "mremap 16 to 128 MiB: ok", "brk +128 MiB: ok", "malloc 128 MiB: ok",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rin := e.fifo("in-" + strings.ReplaceAll(tc.name, " ", "-"))
			rout := filepath.Join(e.dir, "rout-"+strings.ReplaceAll(tc.name, " ", "-"))
			args := append([]string{"restore", uri, "-d", "--stdin", rin.Name(), "--stdout", rout, "--stderr", rout}, tc.flags...)
			rid := strings.TrimSpace(e.must(args...))
			rin.WriteString("go\n")
			if r := e.snap("wait", rid); r.code != 0 {
				t.Fatalf("snap wait %s = %d (%s), want 0", rid, r.code, r.stderr)
			}
			got := lines(rout)
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("restored output = %q, want a line %q", got, w)
				}
			}
		})
	}
}

// TestHostFIFOKillAndSave: a sandbox whose program tried to open a host
// FIFO (refused at once, see kernel/vfs) can be saved, and snap kill ends it
// and its restored copy.
func TestHostFIFOKillAndSave(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "host-fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	id, out := e.runDetached("", program(t, "boundary"), "host", "--wait", "fifo="+fifo)
	if ls := waitLines(t, out, 2); ls[0] != "fifo: open EACCES, stat ok" || ls[1] != "waiting" {
		t.Fatalf("output = %q, want the FIFO refused, then waiting", ls)
	}
	uri := lastLine(e.must("save", id, "--leave-running"))
	rid, _ := e.restoreDetached(uri, "")
	for _, sb := range []string{id, rid} {
		e.must("kill", sb)
		r := e.snap("wait", sb)
		if want := 128 + int(unix.SIGTERM); r.code != want {
			t.Errorf("snap wait %s after snap kill = %d (%s), want %d", sb, r.code, r.stderr, want)
		}
	}
}
