//go:build linux && amd64

package ptrace

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// TestHandOffP: a context that hands its P off while the application runs
// reports a system call and an interrupt as one that keeps it, also with a
// single P, which the goroutine that interrupts the spinning application
// needs (the Switch then gets a P back after it).
func TestHandOffP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handOff bool
	}{
		{"keeps its P", false},
		{"hands its P off", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			locked(t)
			e := newEnv(t, 1<<20)
			a := e.newSpace(t)
			c := e.newContext(t)
			h, ok := c.(interface{ HandOffP(bool) })
			if !ok {
				t.Fatalf("context %T has no HandOffP", c)
			}
			h.HandOffP(tc.handOff)

			st := &platform.State{}
			st.Regs.Rip = codeAddr + offSyscall
			st.Regs.Rax = unix.SYS_GETPID
			if _, _, err := switchOnce(c, a, st); err != nil || st.Regs.OrigRax != unix.SYS_GETPID {
				t.Fatalf("Switch = %v with OrigRax %d, want nil and %d (a system call)", err, st.Regs.OrigRax, unix.SYS_GETPID)
			}

			// The application spins until interrupted; a goroutine that
			// needs the only P runs meanwhile and interrupts it.
			var ran atomic.Bool
			go func() {
				ran.Store(true)
				c.Interrupt()
			}()
			st.Regs.Rip = codeAddr + offSpin
			for {
				_, _, err := switchOnce(c, a, st)
				if errors.Is(err, platform.ErrInterrupted) && ran.Load() {
					break
				}
				if err != nil && !errors.Is(err, platform.ErrInterrupted) {
					t.Fatalf("Switch into a spinning application = %v, want %v", err, platform.ErrInterrupted)
				}
			}
			if st.Regs.Rip != codeAddr+offSpin {
				t.Errorf("Rip = %#x after the interrupt, want %#x (still spinning)", st.Regs.Rip, codeAddr+offSpin)
			}
			st.Regs.Rip = codeAddr + offSyscall
			st.Regs.Rax = unix.SYS_GETTID
			if _, _, err := switchOnce(c, a, st); err != nil || st.Regs.OrigRax != unix.SYS_GETTID {
				t.Errorf("Switch after the interrupt = %v with OrigRax %d, want nil and %d", err, st.Regs.OrigRax, unix.SYS_GETTID)
			}
		})
	}
}
