//go:build linux && amd64

package ptrace

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// xmm1Of returns xmm1's low 64 bits in an XSAVE area.
func xmm1Of(fp []byte) uint64 {
	return binary.LittleEndian.Uint64(fp[fxsaveXMMOffset+16:])
}

// runFP runs snippet off with rbx = rbx and returns what the application
// left in rax at its system call (OrigRax).
func runFP(t *testing.T, c platform.Context, a platform.AddressSpace, st *platform.State, off int, rbx uint64) uint64 {
	t.Helper()
	st.Regs.Rip = codeAddr + uint64(off)
	st.Regs.Rbx = rbx
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("Switch at %#x = %v", off, err)
	}
	return st.Regs.OrigRax
}

// TestFPLeftInContext: Switch leaves the floating point state in the stub
// thread (FPInContext) and the next Switch continues from it without
// FetchFP; a second context on the same stub thread gets its own state
// (the first one's is moved out and back, not lost or mixed), and FetchFP
// returns the newest state.
func TestFPLeftInContext(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c1, c2 := e.newContext(t), e.newContext(t)
	st1, st2 := &platform.State{}, &platform.State{}
	const v1, v2 = 0x1111_2222_3333_4444, 0x5555_6666_7777_8888

	runFP(t, c1, a, st1, offFP, v1) // xmm1 = v1
	if !st1.FPInContext {
		t.Fatalf("FPInContext after Switch = false, want true")
	}
	// st1.FP is out of date and must not be loaded: garbage in it changes
	// nothing.
	st1.FP = make([]byte, e.p.fpSize)
	if got := runFP(t, c1, a, st1, offFPRead, 0); got != v1 {
		t.Errorf("xmm1 on the next Switch = %#x, want %#x (kept in the stub thread)", got, uint64(v1))
	}

	// c2 on the same OS thread uses the same stub thread.
	if got := runFP(t, c2, a, st2, offFPRead, 0); got != 0 {
		t.Errorf("second context's xmm1 (initial state) = %#x, want 0", got)
	}
	runFP(t, c2, a, st2, offFP, v2)
	if got := runFP(t, c1, a, st1, offFPRead, 0); got != v1 {
		t.Errorf("first context's xmm1 after the second ran = %#x, want %#x", got, uint64(v1))
	}
	if got := runFP(t, c2, a, st2, offFPRead, 0); got != v2 {
		t.Errorf("second context's xmm1 after the first ran = %#x, want %#x", got, uint64(v2))
	}

	// Both states can be fetched, whichever the stub thread holds.
	fetchFP(t, c1, st1)
	fetchFP(t, c2, st2)
	if got := xmm1Of(st1.FP); got != v1 {
		t.Errorf("fetched xmm1 of the first context = %#x, want %#x", got, uint64(v1))
	}
	if got := xmm1Of(st2.FP); got != v2 {
		t.Errorf("fetched xmm1 of the second context = %#x, want %#x", got, uint64(v2))
	}
	// FetchFP without a state in the context does nothing.
	before := append([]byte(nil), st1.FP...)
	if err := c1.FetchFP(st1); err != nil {
		t.Errorf("FetchFP with FPInContext clear = %v, want nil", err)
	}
	if string(before) != string(st1.FP) {
		t.Errorf("FetchFP with FPInContext clear changed FP")
	}
	// A state the kernel replaces (FPInContext cleared) is loaded.
	binary.LittleEndian.PutUint64(st1.FP[fxsaveXMMOffset+16:], v2)
	if got := runFP(t, c1, a, st1, offFPRead, 0); got != v2 {
		t.Errorf("xmm1 after replacing FP = %#x, want %#x", got, uint64(v2))
	}
}

// TestFPFollowsAddressSpace: a context that leaves its state in a stub
// thread of one address space and then runs in another (on the same OS
// thread) carries the state over.
func TestFPFollowsAddressSpace(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a1, a2 := e.newSpace(t), e.newSpace(t)
	c := e.newContext(t)
	st := &platform.State{}
	const v = 0x0123_4567_89ab_cdef
	runFP(t, c, a1, st, offFP, v)
	if got := runFP(t, c, a2, st, offFPRead, 0); got != v {
		t.Errorf("xmm1 in the second address space = %#x, want %#x", got, uint64(v))
	}
	if got := runFP(t, c, a1, st, offFPRead, 0); got != v {
		t.Errorf("xmm1 back in the first address space = %#x, want %#x", got, uint64(v))
	}
}

// TestFPLostWithStubThread: a state left in a stub thread that is killed
// from outside is lost, and FetchFP and Switch say so instead of running
// the application with another state.
func TestFPLostWithStubThread(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	st := &platform.State{}
	runFP(t, c, a, st, offFP, 42)
	th, err := a.threadFor(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.PidfdSendSignal(th.pidfd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.FetchFP(st); !errors.Is(err, errFPLost) {
		t.Errorf("FetchFP after the stub thread died = %v, want errFPLost", err)
	}
	st.Regs.Rip = codeAddr + offFPRead
	if _, _, err := switchOnce(c, a, st); !errors.Is(err, errFPLost) {
		t.Errorf("Switch after the stub thread died = %v, want errFPLost", err)
	}
}
