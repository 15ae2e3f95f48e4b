package e2e

import (
	"os"
	"testing"
)

// closedStdoutCases run closedout with its standard output closed or on a
// pipe whose reader has exited, through a shell that sets that up around
// the program natively and around snap run under snap.
var closedStdoutCases = []struct {
	name   string
	shell  []string // the wrapper; the program's argv follows
	args   []string
	status int
	stderr string
}{
	{"closed", []string{"/bin/sh", "-c", `exec "$@" >&-`, "sh"}, nil, 3, "write: EBADF\n"},
	{"broken-pipe", []string{"/bin/bash", "-c", `set -o pipefail; "$@" | true`, "bash"}, nil, 141, ""},
	{"broken-pipe-ignored", []string{"/bin/bash", "-c", `set -o pipefail; "$@" | true`, "bash"}, []string{"ignore"}, 3, "write: EPIPE\n"},
}

// TestClosedStdout: a write to a closed standard output fails as on Linux
// (EBADF), and one to a pipe whose reader is gone raises SIGPIPE (or fails
// with EPIPE when it is ignored), natively and under snap, gcc and musl.
func TestClosedStdout(t *testing.T) {
	for _, lc := range libcs {
		for _, c := range closedStdoutCases {
			key := "stdout/" + lc.Name + "/" + c.name
			t.Run(lc.Name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				prog := program(t, lc, "closedout")
				dir := t.TempDir()
				native := execute(t, append(append(append([]string(nil), c.shell...), prog), c.args...), spec{}, dir)
				if native.status != c.status || native.stderr != c.stderr {
					t.Fatalf("native: status %d, stderr %q; want %d, %q", native.status, native.stderr, c.status, c.stderr)
				}
				if why, ok := knownBroken[key]; ok && os.Getenv("SNAP_E2E_RUN_BROKEN") != "1" {
					t.Skipf("known broken: %s", why)
				}
				argv := append(append(append([]string(nil), c.shell...), snap(t), "run", "--", prog), c.args...)
				got := execute(t, argv, spec{}, dir)
				if got.status != native.status || got.stderr != native.stderr {
					t.Errorf("snap run: status %d, stderr %q; want %d, %q (native)", got.status, got.stderr, native.status, native.stderr)
				}
			})
		}
	}
}
