package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"snapshotter/internal/prereq"
)

// flockPath is util-linux's flock(1), which runs a command holding a
// flock(2) lock.
const flockPath = "/usr/bin/flock"

// flockToolCases run "flock ARGS FILE -c SCRIPT"; FILE is made by the test
// and the script (a format with FILE as its argument) contends for it again.
var flockToolCases = []struct {
	name   string
	args   []string
	script string
	status int
	want   []string
}{
	{"busy", []string{"-n"}, `flock -n %[1]q true || echo busy`, 0, []string{"busy"}},
	{"shared", []string{"-s"}, `flock -s -n %[1]q echo shared ok`, 0, []string{"shared ok"}},
	{"wait-times-out", []string{"-n"}, `flock -w 0.1 %[1]q true; echo timed out $?`, 0, []string{"timed out 1"}},
	{"conflict-status", []string{"-n"}, `flock -n -E 7 %[1]q true`, 7, nil},
}

// TestFlockTool runs flock(1) natively and under snap: a second lock of
// the same file from the command it runs fails, waits and times out, or
// shares, as on Linux.
func TestFlockTool(t *testing.T) {
	if _, err := os.Stat(flockPath); err != nil {
		prereq.Missing(t, "util-linux flock (%s): %v", flockPath, err)
	}
	for _, c := range flockToolCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "lock") // one per case: they run in parallel
			if err := os.WriteFile(file, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			argv := append(append([]string{flockPath}, c.args...), file, "-c", fmt.Sprintf(c.script, file))
			compare(t, "flock/"+c.name, argv, spec{status: c.status, want: c.want})
		})
	}
}
