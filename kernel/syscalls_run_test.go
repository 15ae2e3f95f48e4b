package kernel_test

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
)

// TestUnsupportedSyscalls makes every call the table marks unsupported, and
// numbers it does not know, from a real program: each returns its row's
// errno (ENOSYS for the unknown ones), and the debug log names each call
// once with its number, name and errno.
func TestUnsupportedSyscalls(t *testing.T) {
	want := kernel.UnsupportedSyscallsForTest()
	for _, nr := range []int{400, 511, 512, 1000} {
		want[nr] = int(unix.ENOSYS)
	}
	nrs := make([]int, 0, len(want))
	for nr := range want {
		nrs = append(nrs, nr)
	}
	sort.Ints(nrs)
	args := []string{probe(t, "gcc"), "rawsyscalls"}
	for _, nr := range nrs {
		args = append(args, strconv.Itoa(nr))
	}
	// Twice the first number: logged once only.
	args = append(args, strconv.Itoa(nrs[0]))
	var log bytes.Buffer
	out, st := runConfig(t, kernel.Config{Debug: true, Log: &log}, args, nil, nil)
	if st != (kernel.ExitStatus{}) {
		t.Fatalf("rawsyscalls: status %v, output:\n%s", st, out)
	}
	for _, nr := range nrs {
		line := fmt.Sprintf("%d=%d", nr, -want[nr])
		if !strings.Contains(out, line+"\n") {
			t.Errorf("syscall %d: output lacks %q (errno %v)", nr, line, unix.Errno(want[nr]))
		}
	}
	logs := log.String()
	tests := []struct {
		name string
		want string
	}{
		{"unsupported with a reason", "syscall 425 (io_uring_setup) unsupported (io_uring is not provided"},
		{"privileged", "syscall 101 (ptrace) unsupported (tracing inside the sandbox is not supported yet (strace and gdb fail to attach)): returning EPERM"},
		{"unknown", "syscall 400 (#400) unknown: returning ENOSYS"},
	}
	for _, tc := range tests {
		if !strings.Contains(logs, tc.want) {
			t.Errorf("%s: debug log lacks %q; log:\n%s", tc.name, tc.want, logs)
		}
	}
	if n := strings.Count(logs, fmt.Sprintf("syscall %d (", nrs[0])); n != 1 {
		t.Errorf("syscall %d made twice: logged %d times, want once", nrs[0], n)
	}
}

// TestPrivilegedCalls: calls that need a capability the sandbox never has
// over the host fail with Linux's errno for a caller without it, whatever
// user the program runs as (the e2e comparison with native Linux cannot
// check these when the tests run as root).
func TestPrivilegedCalls(t *testing.T) {
	out, st := run(t, []string{probe(t, "gcc"), "privileged"}, nil)
	if st != (kernel.ExitStatus{}) {
		t.Fatalf("privileged: status %v, output:\n%s", st, out)
	}
	tests := []struct {
		name string
		want unix.Errno
	}{
		{"clock_settime", unix.EPERM},
		{"clock_settime_cputime", unix.EPERM},
		{"settimeofday", unix.EPERM},
		{"sched_setscheduler_fifo", unix.EPERM},
		{"unshare_newuts", unix.EPERM},
		{"unshare_newuser", unix.EPERM},
		{"setpipe_2mib", unix.EPERM},
		{"setns", unix.EINVAL},
	}
	for _, tc := range tests {
		if line := fmt.Sprintf("%s=%d\n", tc.name, -int(tc.want)); !strings.Contains(out, line) {
			t.Errorf("%s: output lacks %q (%v); output:\n%s", tc.name, line, tc.want, out)
		}
	}
}
