//go:build linux && amd64

package ptrace

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStubSeccomp checks the stub's seccomp filter: it is installed, with
// no_new_privs, and of what the stub executes natively it lets through
// what the sentry injects and kills the stub for anything else, including
// an allowed call with other arguments.
func TestStubSeccomp(t *testing.T) {
	const x = 0x2000_0000
	for _, tc := range []struct {
		name    string
		nr      uint64
		args    [6]uint64
		allowed bool
	}{
		{"mmap", unix.SYS_MMAP, [6]uint64{x, pageSize, unix.PROT_READ, unix.MAP_SHARED | unix.MAP_FIXED, stubFDInStub, 0}, true},
		{"munmap", unix.SYS_MUNMAP, [6]uint64{x, pageSize}, true},
		{"getppid", unix.SYS_GETPPID, [6]uint64{}, true},
		{"getpid", unix.SYS_GETPID, [6]uint64{}, false},
		{"kill", unix.SYS_KILL, [6]uint64{1, 0}, false},
		{"execve", unix.SYS_EXECVE, [6]uint64{stubBase + stubNameOff, 0, 0}, false},
		{"openat of another path", unix.SYS_OPENAT, [6]uint64{uint64(0xffffffffffffff9c), stubBase + stubNameOff, unix.O_RDONLY | unix.O_CLOEXEC}, false},
		{"openat for writing", unix.SYS_OPENAT, [6]uint64{uint64(0xffffffffffffff9c), stubTableAddr, unix.O_RDWR | unix.O_CLOEXEC}, false},
		{"clone of a process", unix.SYS_CLONE, [6]uint64{uint64(unix.SIGCHLD)}, false},
		{"prctl other than PR_SET_PDEATHSIG", unix.SYS_PRCTL, [6]uint64{unix.PR_SET_DUMPABLE, 1}, false},
		{"prctl PR_SET_PDEATHSIG with another signal", unix.SYS_PRCTL, [6]uint64{unix.PR_SET_PDEATHSIG, uint64(unix.SIGTERM)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			a, st := spaceWithThread(t)
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2"} {
				if !strings.Contains(string(status), want) {
					t.Fatalf("stub %d status lacks %q", a.pid, want)
				}
			}
			_, err = inject(st.tid, &a.leaderRegs, stubSyscallEntry, tc.nr, tc.args, 0)
			killed := errors.Is(err, ErrStubDied)
			if tc.allowed && err != nil {
				t.Fatalf("inject: %v, want it run", err)
			}
			if !tc.allowed && !killed {
				t.Fatalf("inject: %v, want the stub killed (%v)", err, ErrStubDied)
			}
		})
	}
}
