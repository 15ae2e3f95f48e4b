//go:build linux && amd64

package ptrace

import (
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/internal/prereq"
	"snapshotter/platform"
)

// Hand-assembled x86-64 snippets, placed at these offsets of the code page
// (file offset 0 of the test memory file, mapped r-x at codeAddr).
const (
	// syscall; mov rbx, rax; syscall; int3
	offSyscall = 0x000
	// loop: mov rax,[rdi]; add rax,rsi; mov [rdi],rax; add rdi,rdx;
	//       dec rcx; jnz loop; syscall
	offLoop = 0x040
	// mov rax,[rdi]; syscall
	offLoad = 0x080
	// mov [rdi],rax; syscall
	offStore = 0x0c0
	// movq rax,xmm0; movq xmm1,rbx; syscall
	offFP = 0x100
	// mov rax, fs:[0]; syscall
	offFS = 0x140
	// jmp $
	offSpin = 0x180
	// ud2
	offUD2 = 0x1c0
	// hlt (privileged: a general protection fault)
	offHLT = 0x1d0
	// int3
	offInt3 = 0x1e0
	// int $0x80
	offInt80 = 0x1f0
	// loop: syscall; jmp loop
	offSyscallLoop = 0x200
	// touch: mov byte [rdi], 1; add rdi, rdx; dec rcx; jnz touch; syscall
	offTouch = 0x240
	// movq rax,xmm1; syscall
	offFPRead = 0x280
)

var snippets = map[int][]byte{
	offSyscall: {0x0f, 0x05, 0x48, 0x89, 0xc3, 0x0f, 0x05, 0xcc},
	offLoop: {0x48, 0x8b, 0x07, 0x48, 0x01, 0xf0, 0x48, 0x89, 0x07, 0x48, 0x01, 0xd7,
		0x48, 0xff, 0xc9, 0x75, 0xef, 0x0f, 0x05, 0xcc},
	offLoad:        {0x48, 0x8b, 0x07, 0x0f, 0x05, 0xcc},
	offStore:       {0x48, 0x89, 0x07, 0x0f, 0x05, 0xcc},
	offFP:          {0x66, 0x48, 0x0f, 0x7e, 0xc0, 0x66, 0x48, 0x0f, 0x6e, 0xcb, 0x0f, 0x05, 0xcc},
	offFS:          {0x64, 0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xcc},
	offSpin:        {0xeb, 0xfe},
	offUD2:         {0x0f, 0x0b},
	offHLT:         {0xf4},
	offInt3:        {0xcc},
	offInt80:       {0xcd, 0x80},
	offSyscallLoop: {0x0f, 0x05, 0xeb, 0xfc},
	offTouch:       {0xc6, 0x07, 0x01, 0x48, 0x01, 0xd7, 0x48, 0xff, 0xc9, 0x75, 0xf5, 0x0f, 0x05, 0xcc},
	offFPRead:      {0x66, 0x48, 0x0f, 0x7e, 0xc8, 0x0f, 0x05, 0xcc},
}

const (
	codeAddr = 0x40_0000
	dataOff  = 0x1_0000 // file offset of the data pages
)

// env is a memory file with the test code at offset 0 and a platform.
type env struct {
	fd  int
	mem []byte // the test's own shared mapping of the memory file
	p   *Platform
}

func newEnv(t testing.TB, size int) *env {
	t.Helper()
	fd, err := unix.MemfdCreate("ptrace-test-mem", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatalf("memfd_create: %v", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		t.Fatalf("ftruncate: %v", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	for off, code := range snippets {
		copy(mem[off:], code)
	}
	p, err := newPlatform(platform.Options{MemoryFD: fd})
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) {
		prereq.Missing(t, "ptrace: %v", err)
	}
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := &env{fd: fd, mem: mem, p: p}
	t.Cleanup(func() {
		p.Release()
		unix.Munmap(mem)
		unix.Close(fd)
	})
	return e
}

// newSpace makes an address space with the code page mapped at codeAddr.
func (e *env) newSpace(t testing.TB) *addressSpace {
	t.Helper()
	a, err := e.p.newAddressSpace()
	if err != nil {
		t.Fatalf("NewAddressSpace: %v", err)
	}
	if err := a.MapFile(codeAddr, 0, pageSize, platform.AccessType{Read: true, Execute: true}, false); err != nil {
		t.Fatalf("MapFile(code) = %v", err)
	}
	return a
}

func (e *env) newContext(t testing.TB) platform.Context {
	t.Helper()
	c, err := e.p.NewContext()
	if err != nil {
		t.Fatalf("NewContext: %v", err)
	}
	t.Cleanup(c.Release)
	return c
}

func (e *env) u64(off int) uint64 { return binary.LittleEndian.Uint64(e.mem[off:]) }

func locked(t testing.TB) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}

func switchOnce(c platform.Context, a platform.AddressSpace, st *platform.State) (platform.SignalInfo, platform.AccessType, error) {
	var info platform.SignalInfo
	var at platform.AccessType
	err := c.Switch(a, st, &info, &at)
	return info, at, err
}

// fetchFP reads the floating point state that the last Switch of c left in
// the context into st, failing t unless Switch did leave it there.
func fetchFP(t testing.TB, c platform.Context, st *platform.State) {
	t.Helper()
	if !st.FPInContext {
		t.Fatalf("FPInContext = false after Switch, want true")
	}
	if err := c.FetchFP(st); err != nil {
		t.Fatalf("FetchFP = %v", err)
	}
	if st.FPInContext {
		t.Fatalf("FPInContext = true after FetchFP, want false")
	}
}

func TestSyscall(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offSyscall
	st.Regs.Rax = unix.SYS_GETPID
	st.Regs.Rdi, st.Regs.Rsi, st.Regs.Rdx, st.Regs.R10, st.Regs.R8, st.Regs.R9 = 1, 2, 3, 4, 5, 6
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("Switch = %v, want nil (syscall)", err)
	}
	r := st.Regs
	if r.OrigRax != unix.SYS_GETPID {
		t.Errorf("OrigRax = %d, want %d", r.OrigRax, unix.SYS_GETPID)
	}
	if got := [6]uint64{r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9}; got != [6]uint64{1, 2, 3, 4, 5, 6} {
		t.Errorf("args = %v, want [1 2 3 4 5 6]", got)
	}
	if r.Rip != codeAddr+offSyscall+2 {
		t.Errorf("Rip = %#x, want %#x", r.Rip, codeAddr+offSyscall+2)
	}
	fetchFP(t, c, st)
	if len(st.FP) != e.p.fpSize {
		t.Errorf("len(FP) = %d, want %d", len(st.FP), e.p.fpSize)
	}
	st.Regs.Rax = 0x1234
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("second Switch = %v, want nil", err)
	}
	if st.Regs.Rbx != 0x1234 {
		t.Errorf("Rbx = %#x, want 0x1234 (result written to rax)", st.Regs.Rbx)
	}
	if st.Regs.Rip != codeAddr+offSyscall+7 {
		t.Errorf("Rip = %#x, want %#x", st.Regs.Rip, codeAddr+offSyscall+7)
	}
}

func TestRegistered(t *testing.T) {
	e := newEnv(t, 1<<20) // skips (or fails under SNAP_REQUIRE_ALL) without ptrace
	ctor, err := platform.Lookup("ptrace")
	if err != nil {
		t.Fatalf("Lookup(ptrace) = %v, want a constructor", err)
	}
	p, err := ctor(platform.Options{MemoryFD: e.fd})
	if err != nil {
		t.Fatalf("constructor = %v", err)
	}
	defer p.Release()
	if p.MinUserAddress() >= p.MaxUserAddress() || p.MaxUserAddress() > stubBase {
		t.Errorf("user range [%#x, %#x), want non-empty and below the stub at %#x", p.MinUserAddress(), p.MaxUserAddress(), uint64(stubBase))
	}
	as, err := p.NewAddressSpace()
	if err != nil {
		t.Fatalf("NewAddressSpace = %v", err)
	}
	defer as.Release()
	if err := as.MapFile(codeAddr, 0, pageSize, platform.AnyAccess, true); err != nil {
		t.Errorf("MapFile = %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	closed, err := unix.MemfdCreate("closed", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(closed)
	for _, tc := range []struct {
		name string
		fd   int
	}{{"negative", -1}, {"closed", closed}} {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := New(platform.Options{MemoryFD: tc.fd}); err == nil {
				p.Release()
				t.Errorf("New(MemoryFD: %d) = nil error, want one", tc.fd)
			}
		})
	}
}

func TestMemory(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	rw := platform.ReadWrite
	// Two pages of the file at dataOff, seen at three addresses, one of
	// them just below MaxUserAddress, one populated eagerly.
	maps := []struct {
		addr      uint64
		precommit bool
	}{
		{0x1000_0000, false},
		{0x2000_0000, true},
		{maxUserAddress - 2*pageSize, false},
	}
	for _, m := range maps {
		if err := a.MapFile(m.addr, dataOff, 2*pageSize, rw, m.precommit); err != nil {
			t.Fatalf("MapFile(%#x) = %v", m.addr, err)
		}
	}
	for i := 0; i < 2*pageSize/8; i++ {
		binary.LittleEndian.PutUint64(e.mem[dataOff+8*i:], uint64(i))
	}
	st := &platform.State{}
	for round, m := range maps {
		st.Regs.Rip = codeAddr + offLoop
		st.Regs.Rdi = m.addr            // cursor
		st.Regs.Rsi = uint64(round + 1) // addend
		st.Regs.Rdx = 8                 // stride
		st.Regs.Rcx = 2 * pageSize / 8  // count
		if _, _, err := switchOnce(c, a, st); err != nil {
			t.Fatalf("Switch(loop at %#x) = %v, want nil", m.addr, err)
		}
		if st.Regs.Rdi != m.addr+2*pageSize {
			t.Errorf("after loop at %#x: Rdi = %#x, want %#x", m.addr, st.Regs.Rdi, m.addr+2*pageSize)
		}
	}
	// Each round added round+1 to every word: 1+2+3.
	for i := 0; i < 2*pageSize/8; i++ {
		if got, want := e.u64(dataOff+8*i), uint64(i+6); got != want {
			t.Fatalf("word %d = %d, want %d", i, got, want)
		}
	}
	// Unmap the middle mapping: the others still work, it faults.
	if err := a.Unmap(0x2000_0000, 2*pageSize); err != nil {
		t.Fatalf("Unmap = %v", err)
	}
	st.Regs.Rip, st.Regs.Rdi = codeAddr+offLoad, 0x1000_0000+8
	// The loaded value is in rax when the syscall instruction runs, so it
	// shows up as the syscall number.
	if _, _, err := switchOnce(c, a, st); err != nil || st.Regs.OrigRax != 7 {
		t.Errorf("load from kept mapping = %v, value %d; want nil, 7", err, st.Regs.OrigRax)
	}
	st.Regs.Rip, st.Regs.Rdi = codeAddr+offLoad, 0x2000_0000+8
	if info, _, err := switchOnce(c, a, st); !errors.Is(err, platform.ErrFault) || info.Addr != 0x2000_0008 {
		t.Errorf("load from unmapped = %v at %#x, want ErrFault at 0x20000008", err, info.Addr)
	}
}

func TestFault(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	const (
		roAddr   = 0x3000_0000
		rwAddr   = 0x3100_0000
		noneAddr = 0x3200_0000
		unmapped = 0x3300_0000
		pastEOF  = 0x3400_0000
	)
	for _, m := range []struct {
		addr, off uint64
		at        platform.AccessType
	}{
		{roAddr, dataOff, platform.Read},
		{rwAddr, dataOff, platform.ReadWrite},
		{noneAddr, dataOff, platform.NoAccess},
		{pastEOF, 1 << 20, platform.ReadWrite}, // the file is 1 MiB long
	} {
		if err := a.MapFile(m.addr, m.off, pageSize, m.at, false); err != nil {
			t.Fatalf("MapFile(%#x, %v) = %v", m.addr, m.at, err)
		}
	}
	tests := []struct {
		name      string
		rip, rdi  uint64
		wantErr   error
		wantSig   unix.Signal
		wantAddr  uint64
		wantWrite bool
		wantExec  bool
	}{
		{"read unmapped", codeAddr + offLoad, unmapped + 16, platform.ErrFault, unix.SIGSEGV, unmapped + 16, false, false},
		{"write unmapped", codeAddr + offStore, unmapped + 8, platform.ErrFault, unix.SIGSEGV, unmapped + 8, false, false},
		{"write read-only", codeAddr + offStore, roAddr + 24, platform.ErrFault, unix.SIGSEGV, roAddr + 24, true, false},
		{"read no-access", codeAddr + offLoad, noneAddr, platform.ErrFault, unix.SIGSEGV, noneAddr, false, false},
		{"read past end of file", codeAddr + offLoad, pastEOF + 8, platform.ErrFault, unix.SIGBUS, pastEOF + 8, false, false},
		{"execute non-executable", rwAddr + 0x100, 0, platform.ErrFault, unix.SIGSEGV, rwAddr + 0x100, false, true},
		{"execute unmapped", unmapped, 0, platform.ErrFault, unix.SIGSEGV, unmapped, false, true},
		{"ud2", codeAddr + offUD2, 0, platform.ErrSignal, unix.SIGILL, codeAddr + offUD2, false, false},
		{"hlt", codeAddr + offHLT, 0, platform.ErrSignal, unix.SIGSEGV, 0, false, false},
		{"int3", codeAddr + offInt3, 0, platform.ErrSignal, unix.SIGTRAP, 0, false, false},
		{"int 0x80", codeAddr + offInt80, 0, platform.ErrSignal, unix.SIGSEGV, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			locked(t) // subtests run on their own goroutines
			st := &platform.State{}
			st.Regs.Rip, st.Regs.Rdi = tc.rip, tc.rdi
			st.Regs.Rax = 1 // exit for int $0x80, write for syscall
			info, at, err := switchOnce(c, a, st)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Switch = %v, want %v", err, tc.wantErr)
			}
			if info.Signo != int32(tc.wantSig) || info.Addr != tc.wantAddr {
				t.Errorf("info = %+v, want signo %d addr %#x", info, tc.wantSig, tc.wantAddr)
			}
			wantRip := tc.rip // faults stop at the faulting instruction
			if tc.wantSig == unix.SIGTRAP {
				wantRip++ // int3 is a trap: after the instruction
			}
			if st.Regs.Rip != wantRip {
				t.Errorf("Rip = %#x, want %#x", st.Regs.Rip, wantRip)
			}
			if tc.rip == codeAddr+offInt80 && st.Regs.Rax != 1 {
				t.Errorf("Rax after int $0x80 = %d, want 1 (as before the instruction)", st.Regs.Rax)
			}
			if tc.wantErr == platform.ErrFault && (at.Write != tc.wantWrite || at.Execute != tc.wantExec) {
				t.Errorf("access = %v, want write=%v exec=%v", at, tc.wantWrite, tc.wantExec)
			}
		})
	}
	// The stub thread survives faults: a syscall still works.
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offSyscall
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("Switch after faults = %v, want nil", err)
	}
}

func TestBadRange(t *testing.T) {
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	tests := []struct {
		name              string
		addr, off, length uint64
	}{
		{"unaligned addr", 0x1000_0001, 0, pageSize},
		{"unaligned offset", 0x1000_0000, 1, pageSize},
		{"unaligned length", 0x1000_0000, 0, 1},
		{"empty", 0x1000_0000, 0, 0},
		{"below min", 0, 0, pageSize},
		{"into stub", maxUserAddress - pageSize, 0, 2 * pageSize},
		{"wraps", ^uint64(0) &^ (pageSize - 1), 0, 2 * pageSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := a.MapFile(tc.addr, tc.off, tc.length, platform.Read, false); !errors.Is(err, ErrBadRange) {
				t.Errorf("MapFile(%#x, %#x, %#x) = %v, want ErrBadRange", tc.addr, tc.off, tc.length, err)
			}
		})
	}
	if err := a.Unmap(0x1000_0001, pageSize); !errors.Is(err, ErrBadRange) {
		t.Errorf("Unmap(unaligned) = %v, want ErrBadRange", err)
	}
}

// fakeSpace is an AddressSpace this platform did not make.
type fakeSpace struct{}

func (fakeSpace) MapFile(addr, offset, length uint64, at platform.AccessType, precommit bool) error {
	return nil
}
func (fakeSpace) Unmap(addr, length uint64) error { return nil }
func (fakeSpace) Release()                        {}

func TestSwitchErrors(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	e2 := newEnv(t, 1<<20)
	released := e.newSpace(t)
	released.Release()
	c := e.newContext(t)
	cReleased := e.newContext(t)
	cReleased.Release()
	tests := []struct {
		name    string
		c       platform.Context
		as      platform.AddressSpace
		wantErr error
	}{
		{"foreign type", c, fakeSpace{}, ErrWrongAddressSpace},
		{"other platform", c, e2.newSpace(t), ErrWrongAddressSpace},
		{"released address space", c, released, ErrReleased},
		{"released context", cReleased, e.newSpace(t), ErrReleased},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			locked(t)
			st := &platform.State{}
			st.Regs.Rip = codeAddr + offSyscall
			_, _, err := switchOnce(tc.c, tc.as, st)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Switch = %v, want %v", err, tc.wantErr)
			}
			for _, s := range []error{platform.ErrFault, platform.ErrSignal, platform.ErrInterrupted} {
				if errors.Is(err, s) {
					t.Errorf("Switch = %v, must not be the sentinel %v", err, s)
				}
			}
		})
	}
}

// TestKilledStubThread: a stub thread killed from outside while stopped is
// replaced transparently by the next Switch (nothing of it had run), and
// the dead one leaves no process behind.
func TestKilledStubThread(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offSyscall
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatal(err)
	}
	old, err := a.threadFor(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	oldTID := old.tid
	// The floating point state must be out of the stub thread first: Switch
	// left it there, and it dies with the stub thread (below).
	fetchFP(t, c, st)
	if err := unix.PidfdSendSignal(old.pidfd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("Switch on killed stub thread = %v, want nil (replaced)", err)
	}
	if st.Regs.Rip != codeAddr+offSyscall+7 {
		t.Errorf("Rip = %#x, want %#x", st.Regs.Rip, codeAddr+offSyscall+7)
	}
	now, err := a.threadFor(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	if now.tid == oldTID {
		t.Errorf("stub thread tid = %d, want a new one", now.tid)
	}
	if pi := readProc(oldTID); pi.exists && (pi.stub || pi.state == 'Z') {
		t.Errorf("killed stub thread %d: %+v, want gone", oldTID, pi)
	}
}

// TestMapFromTaskThread: MapFile on the thread that runs the application
// (as when the kernel handles a fault) injects into that thread's own stub
// thread; the application's registers survive it.
func TestMapFromTaskThread(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offLoad
	st.Regs.Rdi = 0x5800_0000
	st.Regs.Rbx = 0xabcdef
	info, _, err := switchOnce(c, a, st)
	if !errors.Is(err, platform.ErrFault) || info.Addr != 0x5800_0000 {
		t.Fatalf("Switch = %v at %#x, want ErrFault at 0x58000000", err, info.Addr)
	}
	a.mu.Lock()
	th := a.threads[unix.Gettid()]
	a.mu.Unlock()
	if th == nil {
		t.Fatal("no stub thread for this OS thread")
	}
	binary.LittleEndian.PutUint64(e.mem[dataOff:], 4242)
	// (Writable: a read-only mapping of an unmapped range would wait for
	// the touch, see TestDeferredMappings.)
	if err := a.MapFile(0x5800_0000, dataOff, pageSize, platform.ReadWrite, false); err != nil {
		t.Fatalf("MapFile = %v", err)
	}
	th.mu.Lock()
	direct := !th.regsValid // the injection went through this stub thread
	th.mu.Unlock()
	if !direct {
		t.Errorf("MapFile on the task thread did not use its stub thread")
	}
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("Switch after MapFile = %v, want nil", err)
	}
	if st.Regs.OrigRax != 4242 || st.Regs.Rbx != 0xabcdef {
		t.Errorf("after retry: loaded %d, rbx %#x; want 4242, 0xabcdef", st.Regs.OrigRax, st.Regs.Rbx)
	}
}

// TestBadRegisters: registers the CPU cannot run are a general protection
// fault (ErrSignal, SIGSEGV) and the stub thread stays usable.
func TestBadRegisters(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	tests := []struct {
		name string
		set  func(r *platform.Registers)
	}{
		{"non-canonical fs base", func(r *platform.Registers) { r.FsBase = 1 << 63 }},
		{"kernel code selector", func(r *platform.Registers) { r.Cs = 0x10 }},
		{"kernel data selector", func(r *platform.Registers) { r.Ds = 0x18 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			locked(t)
			st := &platform.State{}
			st.Regs.Rip = codeAddr + offSyscall
			tc.set(&st.Regs)
			info, _, err := switchOnce(c, a, st)
			if !errors.Is(err, platform.ErrSignal) || info.Signo != int32(unix.SIGSEGV) {
				t.Fatalf("Switch = %v (signal %d), want ErrSignal SIGSEGV", err, info.Signo)
			}
			st = &platform.State{}
			st.Regs.Rip = codeAddr + offSyscall
			if _, _, err := switchOnce(c, a, st); err != nil {
				t.Fatalf("Switch with good registers after = %v, want nil", err)
			}
		})
	}
}

// TestMapFallsBackToLeader: when the calling thread's stub thread is gone,
// MapFile still works (through the master and the stub leader) and the
// mapping is there for the next Switch.
func TestMapFallsBackToLeader(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t) // maps the code page, creating this thread's stub thread
	c := e.newContext(t)
	th, err := a.threadFor(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.PidfdSendSignal(th.pidfd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(e.mem[dataOff:], 77)
	if err := a.MapFile(0x5900_0000, dataOff, pageSize, platform.Read, false); err != nil {
		t.Fatalf("MapFile with a dead stub thread = %v, want nil", err)
	}
	st := &platform.State{}
	st.Regs.Rip, st.Regs.Rdi = codeAddr+offLoad, 0x5900_0000
	if _, _, err := switchOnce(c, a, st); err != nil || st.Regs.OrigRax != 77 {
		t.Fatalf("Switch = %v, loaded %d; want nil, 77", err, st.Regs.OrigRax)
	}
}

// TestPrecommit: a precommitted mapping has its memory file pages
// allocated when MapFile returns, read-only and writable alike; a plain
// one does not.
func TestPrecommit(t *testing.T) {
	e := newEnv(t, dataOff+3*64*pageSize)
	a := e.newSpace(t)
	tests := []struct {
		name      string
		off       uint64
		at        platform.AccessType
		precommit bool
		wantPages int64
	}{
		{"lazy", dataOff, platform.ReadWrite, false, 0},
		{"read-only", dataOff + 64*pageSize, platform.Read, true, 64},
		{"writable", dataOff + 2*64*pageSize, platform.ReadWrite, true, 64},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := allocatedPages(t, e.fd)
			addr := uint64(0x6000_0000 + i*0x100_0000)
			if err := a.MapFile(addr, tc.off, 64*pageSize, tc.at, tc.precommit); err != nil {
				t.Fatalf("MapFile = %v", err)
			}
			if got := allocatedPages(t, e.fd) - before; got != tc.wantPages {
				t.Errorf("pages allocated by MapFile(%s) = %d, want %d", tc.name, got, tc.wantPages)
			}
		})
	}
}

// allocatedPages is how many pages of the memory file hold memory.
func allocatedPages(t *testing.T, fd int) int64 {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512 / pageSize
}

// TestFaultNearInstruction: a data read just past the end of the code page,
// a few bytes after the instruction pointer, is a read, not an execute.
func TestFaultNearInstruction(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	const page, off = 0x5a00_0000, dataOff + 0x1_0000
	// mov rax, [rip+1] at the page's last 8 bytes: reads the next page.
	copy(e.mem[off+pageSize-8:], []byte{0x48, 0x8b, 0x05, 0x01, 0x00, 0x00, 0x00, 0xcc})
	if err := a.MapFile(page, off, pageSize, platform.AccessType{Read: true, Execute: true}, false); err != nil {
		t.Fatal(err)
	}
	st := &platform.State{}
	st.Regs.Rip = page + pageSize - 8
	info, at, err := switchOnce(c, a, st)
	if !errors.Is(err, platform.ErrFault) || info.Addr != page+pageSize {
		t.Fatalf("Switch = %v at %#x, want ErrFault at %#x", err, info.Addr, page+pageSize)
	}
	if at != platform.Read {
		t.Errorf("access = %v, want %v", at, platform.Read)
	}
}
