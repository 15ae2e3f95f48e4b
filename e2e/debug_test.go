package e2e

import (
	"strings"
	"testing"
)

// TestDebugNamesUnsupported: snap run --debug names each call the sandbox
// does not serve, once per process, with its number, name and errno, and
// the program gets that errno.
func TestDebugNamesUnsupported(t *testing.T) {
	bin := program(t, libcs[0], "exacterr")
	dir := t.TempDir()
	got := execute(t, []string{snap(t), "run", "--debug", "--", bin, "unsupported"}, spec{}, dir)
	if got.status != 0 {
		t.Fatalf("snap run --debug exacterr unsupported: status %d, stderr %q", got.status, got.stderr)
	}
	for _, want := range []string{"io_uring_setup: -1 ENOSYS", "ptrace: -1 EPERM", "syscall 400: -1 ENOSYS", "syscall 400 again: -1 ENOSYS",
		// The errnos docs/SYSCALLS.md gives the calls left out on purpose.
		"syslog: -1 EPERM", "vhangup: -1 EPERM", "acct: -1 EPERM", "quotactl: -1 ENOSYS", "kcmp: -1 ENOSYS",
		"seccomp: -1 ENOSYS", "userfaultfd: -1 ENOSYS", "landlock_create_ruleset: -1 ENOSYS", "memfd_secret: -1 ENOSYS"} {
		if !strings.Contains(got.stdout, want+"\n") {
			t.Errorf("stdout lacks %q; stdout:\n%s", want, got.stdout)
		}
	}
	tests := []struct {
		name string
		want string
	}{
		{"compiled out", "syscall 425 (io_uring_setup) unsupported (io_uring is not provided"},
		{"not permitted", "syscall 101 (ptrace) unsupported ("},
		{"unknown", "syscall 400 (#400) unknown: returning ENOSYS"},
	}
	for _, tc := range tests {
		if n := strings.Count(got.stderr, tc.want); n != 1 {
			t.Errorf("%s: stderr has %q %d times, want once; stderr:\n%s", tc.name, tc.want, n, got.stderr)
		}
	}
	if !strings.Contains(got.stderr, "): returning EPERM") {
		t.Errorf("stderr does not name ptrace's errno EPERM; stderr:\n%s", got.stderr)
	}
}
