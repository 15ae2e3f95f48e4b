package e2e

import (
	"testing"
)

// limitCases run testdata/c/limits.c under snap run with limit flags; see
// its header. Natively (no limits) the program is checked by
// TestLimitsNative.
var limitCases = []struct {
	name  string
	flags []string
	args  []string
	want  []string
}{
	{"pids", []string{"--pids", "20"}, []string{"forks", "100", "threads", "100"}, []string{
		"forks: 19, then EAGAIN", // with the program itself: 20 tasks
		"reaped: 19",
		"threads: 19, then EAGAIN",
	}},
	{"pids-1", []string{"--pids=1"}, []string{"forks", "5", "threads", "5"}, []string{
		"forks: 0, then EAGAIN",
		"threads: 0, then EAGAIN",
	}},
	{"memory", []string{"--memory", "64M"}, []string{"memory"}, []string{
		"mmap 16 MiB and touch it: ok",
		"mmap 128 MiB: ENOMEM",
		"mremap 16 to 128 MiB: ENOMEM",
		"brk +128 MiB: ENOMEM",
		"brk +1 MiB: ok",
		"malloc 128 MiB: NULL",
	}},
	// A forked child's copy-on-write copies pass the limit: it is killed
	// as by an OOM kill, and its parent goes on.
	{"memory-cow", []string{"--memory", "64M"}, []string{"cow"}, []string{
		"cow: child killed by signal 9",
	}},
	// A file larger than the memory: /tmp (the overlay root's upper
	// layer) is sized by --memory, and the sandbox goes on.
	{"memory-file", []string{"--memory", "64M"}, []string{"file"}, []string{
		"file of 128 MiB in /tmp: ENOSPC",
		"then a file of 1 MiB: ok",
	}},
	{"defaults", nil, []string{"forks", "100", "threads", "100", "memory", "cow", "file"}, []string{
		"forks: 100, then the cap",
		"threads: 100, then the cap",
		"mmap 128 MiB: ok",
		"mremap 16 to 128 MiB: ok",
		"brk +128 MiB: ok",
		"malloc 128 MiB: ok",
		"cow: child exit 0",
		"file of 128 MiB in /tmp: ok",
	}},
}

// TestLimits checks that --pids and --memory hold: fork and clone beyond
// the task limit fail with EAGAIN, mappings beyond the memory limit with
// ENOMEM, a copy-on-write copy beyond it kills the process, and the
// defaults let an ordinary program through.
func TestLimits(t *testing.T) {
	for _, lc := range libcs {
		t.Run(lc.Name, func(t *testing.T) {
			for _, c := range limitCases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					bin := program(t, lc, "limits")
					argv := append(append(append([]string{snap(t), "run"}, c.flags...), "--", bin), c.args...)
					got := execute(t, argv, spec{}, t.TempDir())
					if got.status != 0 {
						t.Fatalf("snap run %v: status %d, stderr %q; want 0", c.flags, got.status, got.stderr)
					}
					checkWant(t, "snap run", got.stdout, c.want)
				})
			}
		})
	}
}

// TestLimitsNative runs testdata/c/limits.c natively, where nothing limits
// it, to show that the program itself only stops at its caps.
func TestLimitsNative(t *testing.T) {
	bin := program(t, libcs[0], "limits")
	got := execute(t, []string{bin, "forks", "30", "threads", "30", "memory", "cow"}, spec{}, t.TempDir())
	if got.status != 0 {
		t.Fatalf("limits natively: status %d, stderr %q", got.status, got.stderr)
	}
	checkWant(t, "native", got.stdout, []string{
		"forks: 30, then the cap", "reaped: 30", "threads: 30, then the cap",
		"mmap 128 MiB: ok", "mremap 16 to 128 MiB: ok", "brk +128 MiB: ok", "malloc 128 MiB: ok",
		"cow: child exit 0",
	})
}
