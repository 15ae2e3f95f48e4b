package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"snapshotter/internal/prereq"
)

// procps's ps and top, which read the sandbox's /proc (stat, status,
// cmdline, uptime, meminfo, loadavg...).
const (
	psPath  = "/usr/bin/ps"
	topPath = "/usr/bin/top"
)

// TestProcps: under snap, `ps -ef` and `top -b -n1` run and show the
// sandbox's processes only: a shell (PID 1), its background child and ps
// itself; top's own line, its task count and the memory summary.
func TestProcps(t *testing.T) {
	for _, p := range []string{psPath, topPath} {
		if _, err := os.Stat(p); err != nil {
			prereq.Missing(t, "procps (%s): %v", p, err)
		}
	}
	t.Run("ps", func(t *testing.T) {
		t.Parallel()
		got := execute(t, []string{snap(t), "run", "--", "/bin/busybox", "sh", "-c",
			"/bin/busybox sleep 30 & " + psPath + " -ef; kill $!"}, spec{}, t.TempDir())
		if got.status != 0 {
			t.Fatalf("ps -ef: status %d, stderr %q", got.status, got.stderr)
		}
		ls := strings.Split(strings.TrimSuffix(got.stdout, "\n"), "\n")
		if len(ls) != 4 || !regexp.MustCompile(`^UID +PID +PPID +C +STIME +TTY +TIME +CMD$`).MatchString(ls[0]) {
			t.Fatalf("ps -ef printed %q, want a header and three processes", got.stdout)
		}
		for i, want := range []string{`^root +1 +0 .* /bin/busybox sh -c`, `^root +2 +1 `, `^root +3 +1 .* ` + psPath + ` -ef$`} {
			if !regexp.MustCompile(want).MatchString(ls[i+1]) {
				t.Errorf("ps -ef line %d = %q, want it to match %q", i+2, ls[i+1], want)
			}
		}
	})
	t.Run("top", func(t *testing.T) {
		t.Parallel()
		got := execute(t, []string{snap(t), "run", "--", topPath, "-b", "-n1"}, spec{}, t.TempDir())
		if got.status != 0 {
			t.Fatalf("top -b -n1: status %d, stderr %q", got.status, got.stderr)
		}
		for _, want := range []string{`(?m)^top - .* load average: `, `(?m)^Tasks: +1 total, +1 running`,
			`(?m)^MiB Mem : +[0-9.]+ total`, `(?m)^ +1 root .* top$`} {
			if !regexp.MustCompile(want).MatchString(got.stdout) {
				t.Errorf("top -b -n1 printed %q, want a line matching %q", got.stdout, want)
			}
		}
	})
}
