package e2e

import (
	"os"
	"testing"

	"snapshotter/internal/prereq"
)

// timeoutPath is coreutils' timeout, which arms a POSIX timer
// (timer_create) for its deadline.
const timeoutPath = "/usr/bin/timeout"

// TestTimeout: timeout ends a longer sleep with status 124 and lets a
// shorter command finish, natively and under snap.
func TestTimeout(t *testing.T) {
	if _, err := os.Stat(timeoutPath); err != nil {
		prereq.Missing(t, "coreutils timeout (%s): %v", timeoutPath, err)
	}
	for _, c := range timeoutCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			compare(t, "timeout/"+c.name, append([]string{timeoutPath}, c.spec.args...), c.spec)
		})
	}
}

var timeoutCases = []struct {
	name string
	spec spec
}{
	{"expires", spec{args: []string{"0.05", "/bin/sleep", "5"}, status: 124}},
	{"completes", spec{args: []string{"5", "/bin/echo", "in time"}, want: []string{"in time"}}},
	{"signal", spec{args: []string{"-s", "KILL", "0.05", "/bin/sleep", "5"}, status: 137}},
}
