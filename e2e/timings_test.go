package e2e

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"snapshotter/internal/prereq"
	"snapshotter/kernel"
)

// runStepRE and runCountRE are the lines of `snap run --timings`.
var (
	runStepRE  = regexp.MustCompile(`^run step (\S+) +at +(-?[0-9.]+) ms took +(-?[0-9.]+) ms$`)
	runCountRE = regexp.MustCompile(`^run count (\S+) +([0-9]+)$`)
)

// runSteps are the steps every `snap run --timings` reports.
var runSteps = []string{"command", kernel.StepNewKernel, kernel.StepWaitPlatform, kernel.StepLoad,
	kernel.StepRun, kernel.StepExit, "release"}

// TestRunTimings requires `snap run --timings` to leave the program's
// output and status alone and to report on stderr every step once, with
// start and duration not negative, and counts that fit what the program
// did: it made system calls (each a ptrace stop), and its executable (and
// a dynamic program's loader and libraries) was read into the file cache
// and mapped into a stub. It never looks at how long a step took.
func TestRunTimings(t *testing.T) {
	tests := []struct {
		name   string
		argv   func(t *testing.T) []string
		stdout string
	}{
		{name: "static", argv: func(t *testing.T) []string { return []string{program(t, libcs[0], "hello")} }, stdout: "hello, world\n"},
		{name: "dynamic", argv: func(t *testing.T) []string {
			if _, err := os.Stat("/bin/echo"); err != nil {
				prereq.Missing(t, "/bin/echo: %v", err)
			}
			return []string{"/bin/echo", "timed"}
		}, stdout: "timed\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			argv := append([]string{snap(t), "run", "--timings", "--"}, tc.argv(t)...)
			got := execute(t, argv, spec{}, t.TempDir())
			if got.status != 0 || got.stdout != tc.stdout {
				t.Fatalf("%s: status %d, stdout %q, want 0 and %q (stderr %q)", strings.Join(argv[1:], " "), got.status, got.stdout, tc.stdout, got.stderr)
			}
			steps, counts := map[string]int{}, map[string]uint64{}
			for _, l := range strings.Split(strings.TrimSuffix(got.stderr, "\n"), "\n") {
				if m := runStepRE.FindStringSubmatch(l); m != nil {
					steps[m[1]]++
					for _, v := range m[2:] {
						if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 {
							t.Errorf("step %s has %q, want a time that is not negative", m[1], v)
						}
					}
					continue
				}
				if m := runCountRE.FindStringSubmatch(l); m != nil {
					counts[m[1]], _ = strconv.ParseUint(m[2], 10, 64)
					continue
				}
				t.Errorf("stderr line %q is neither a step nor a count", l)
			}
			for _, s := range runSteps {
				if steps[s] != 1 {
					t.Errorf("step %s reported %d times, want once (stderr %q)", s, steps[s], got.stderr)
				}
			}
			if counts["syscalls"] == 0 || counts["ptrace-stops"] < counts["syscalls"] {
				t.Errorf("counts syscalls %d, ptrace-stops %d: want system calls, each a stop", counts["syscalls"], counts["ptrace-stops"])
			}
			if counts["injected-mmap"] == 0 || counts["stub-processes"] == 0 {
				t.Errorf("counts injected-mmap %d, stub-processes %d: want both (the program was loaded into a stub)", counts["injected-mmap"], counts["stub-processes"])
			}
			if counts["file-cache-misses"] == 0 || counts["file-cache-bytes-read"] == 0 {
				t.Errorf("counts file-cache-misses %d, bytes %d: want both (the executable is mapped through the file cache)", counts["file-cache-misses"], counts["file-cache-bytes-read"])
			}
		})
	}
}
