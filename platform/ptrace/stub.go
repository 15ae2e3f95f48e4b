//go:build linux && amd64

package ptrace

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// writeStub writes the stub executable and returns a read-only descriptor
// of it (execve refuses files open for writing): a sealed memfd, or, where
// executable memfds are forbidden (vm.memfd_noexec=2), an unlinked file in
// a temporary directory.
func writeStub() (int, error) {
	img := buildStubImage()
	fd, err := writeStubMemfd(img)
	if err == nil {
		return fd, nil
	}
	for _, dir := range []string{os.TempDir(), "/dev/shm"} {
		if fd, ferr := writeStubFile(dir, img); ferr == nil {
			return fd, nil
		}
	}
	return -1, err
}

func writeStubMemfd(img []byte) (int, error) {
	fd, err := unix.MemfdCreate(stubFileName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if err == unix.EINVAL { // kernels before 6.3 lack MFD_EXEC
		fd, err = unix.MemfdCreate(stubFileName, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return -1, fmt.Errorf("memfd_create for stub: %w", err)
	}
	defer unix.Close(fd)
	if n, err := unix.Pwrite(fd, img, 0); err != nil || n != len(img) {
		return -1, fmt.Errorf("write stub image (%d of %d bytes): %w", n, len(img), err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return -1, fmt.Errorf("seal stub image: %w", err)
	}
	ro, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("reopen stub image read-only: %w", err)
	}
	return ro, nil
}

// writeStubFile writes img to a new file in dir, opens it read-only and
// unlinks it.
func writeStubFile(dir string, img []byte) (int, error) {
	f, err := os.CreateTemp(dir, stubFileName+"-*")
	if err != nil {
		return -1, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(img); err != nil {
		return -1, err
	}
	if err := f.Chmod(0o500); err != nil {
		return -1, err
	}
	if err := f.Close(); err != nil {
		return -1, err
	}
	return unix.Open(f.Name(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
}

// forkExecStub starts the stub executable at path, traced by the calling
// OS thread, with files as its descriptors (^uintptr(0) closes one).
//
// Preconditions: the caller is locked to the thread that will trace it.
func forkExecStub(path string, files []uintptr) (int, error) {
	return syscall.ForkExec(path, []string{"snap-stub"}, &syscall.ProcAttr{
		Env:   []string{},
		Files: files,
		Sys: &syscall.SysProcAttr{
			Ptrace:    true,
			Pdeathsig: syscall.SIGKILL,
			Setpgid:   true,
		},
	})
}

// spawnStub starts a stub process, waits for its exec stop and strips its
// address space down to the stub page and its table page. It returns the
// stub's pid, its registers at the exec stop, a stub thread cloned in
// advance for the first OS thread that will need one (see preThread), and
// the sentry's mapping of its table page.
//
// Preconditions: runs on the master thread.
func (p *Platform) spawnStub() (int, platform.Registers, preThread, stubTable, error) {
	p.counts.stubs.Add(1)
	pid, regs, table, err := p.spawnStubLeader()
	if err != nil {
		return 0, regs, preThread{}, nil, err
	}
	p.counts.setupStops.Add(1)
	pre, err := clonePreThread(pid, &regs)
	if err != nil {
		killAndReap(pid)
		table.release()
		return 0, regs, preThread{}, nil, fmt.Errorf("stub %d: %w", pid, err)
	}
	return pid, regs, pre, table, nil
}

// preThread is a stub thread cloned by the master in advance, sleeping in
// pause and traced by nobody yet: the first OS thread that needs a stub
// thread of the address space seizes it (newThreadLocked), instead of
// waiting for a hand-off to the master and a clone injected into the
// leader, the two slowest steps of a sandbox's start after the exec of the
// stub (0.2-0.4 ms each here). Its real parent is the stub leader, which
// ignores SIGCHLD, so the host reaps it when it exits, and it has the
// leader's death as its parent-death signal like every stub thread.
type preThread struct {
	tid int
	// pidfd was opened while the leader was stopped right after the
	// clone, so it refers to this thread, never to a process that reused
	// its pid.
	pidfd int
}

// clonePreThread clones a stub thread in the stopped stub leader pid.
//
// Preconditions: runs on the master thread.
func clonePreThread(pid int, regs *platform.Registers) (preThread, error) {
	r, err := inject(pid, regs, stubCloneEntry, sysClone, [6]uint64{cloneThreadFlag}, uint64(pid))
	if err != nil {
		return preThread{}, fmt.Errorf("clone stub thread: %w", err)
	}
	tid := int(r)
	// The leader is stopped, so the child cannot have been reaped and its
	// pid is still its own.
	pidfd, err := unix.PidfdOpen(tid, 0)
	if err != nil {
		_ = unix.Kill(tid, unix.SIGKILL)
		return preThread{}, fmt.Errorf("pidfd_open stub thread %d: %w", tid, err)
	}
	return preThread{tid: tid, pidfd: pidfd}, nil
}

// exited reports whether the thread has exited (or was never made).
func (pt preThread) exited() bool {
	if pt.tid == 0 {
		return true
	}
	fds := []unix.PollFd{{Fd: int32(pt.pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n != 0
	}
}

// kill kills the thread, waits (bounded) until it has exited, and closes
// its pidfd. The host reaps it (see preThread).
func (pt preThread) kill() {
	if pt.tid == 0 {
		return
	}
	if err := unix.PidfdSendSignal(pt.pidfd, unix.SIGKILL, nil, 0); err == nil {
		waitPidfdExit(pt.pidfd, reapTimeoutMillis)
	}
	unix.Close(pt.pidfd)
}

// spawnStubLeader starts the stub process of spawnStub, without its
// preThread.
//
// Preconditions: runs on the master thread.
func (p *Platform) spawnStubLeader() (int, platform.Registers, stubTable, error) {
	var regs platform.Registers
	table, tableFD, err := newStubTable()
	if err != nil {
		return 0, regs, nil, fmt.Errorf("start stub: %w", err)
	}
	none := ^uintptr(0)
	argv0 := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), p.stubFD)
	pid, err := forkExecStub(argv0, []uintptr{none, none, none, uintptr(p.memFD), uintptr(tableFD)})
	unix.Close(tableFD)
	if err != nil {
		table.release()
		return 0, regs, nil, fmt.Errorf("start stub: %w", err)
	}
	fail := func(err error) (int, platform.Registers, stubTable, error) {
		killAndReap(pid)
		table.release()
		return 0, regs, nil, err
	}
	ws, err := wait4(pid)
	if err != nil {
		return fail(fmt.Errorf("wait for stub %d exec: %w", pid, err))
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return fail(fmt.Errorf("stub %d after exec: status %#x: %w", pid, uint32(ws), ErrStubDied))
	}
	if err := ptraceRaw(unix.PTRACE_SETOPTIONS, pid, 0, unix.PTRACE_O_EXITKILL); err != nil {
		return fail(fmt.Errorf("set ptrace options of stub %d: %w", pid, err))
	}
	if err := getRegs(pid, &regs); err != nil {
		return fail(fmt.Errorf("read registers of stub %d: %w", pid, err))
	}
	// The exec mapped the scratch page (a PT_LOAD of the image), so one
	// batch strips the stub down; a host whose loader did not map it
	// gets it mapped first.
	if !stubMapped(pid, stubScratch) {
		p.counts.setupStops.Add(1)
		if _, err := inject(pid, &regs, stubSyscallEntry, sysMmap, [6]uint64{stubScratch, pageSize, unix.PROT_READ | unix.PROT_WRITE,
			unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_FIXED, ^uint64(0), 0}, 0); err != nil {
			return fail(fmt.Errorf("stub %d: map scratch page: %w", pid, err))
		}
	}
	// The scratch page is writable, so it serves only this batch, which
	// runs before any application code exists in the stub, and goes with
	// its last call (the batch reads no entry after it).
	steps := []stubCall{
		{sysMunmap, [6]uint64{0, stubBase}},                                               // below the stub
		{sysMunmap, [6]uint64{stubTableAddr, taskEnd - stubTableAddr}},                    // above the scratch page
		{sysRtSigaction, [6]uint64{uint64(unix.SIGCHLD), stubBase + stubSigactOff, 0, 8}}, // ignore SIGCHLD
		{sysPrctl, [6]uint64{unix.PR_SET_NAME, stubBase + stubNameOff}},                   // its name
		{sysMmap, [6]uint64{stubTableAddr, pageSize, unix.PROT_READ, unix.MAP_SHARED | unix.MAP_FIXED, stubTableFDInStub, 0}},
		{sysCloseRange, [6]uint64{stubTableFDInStub, math.MaxUint32}}, // and whatever snap inherited without close-on-exec
		{sysPrctl, [6]uint64{unix.PR_SET_NO_NEW_PRIVS, 1}},
		{sysSeccomp, [6]uint64{unix.SECCOMP_SET_MODE_FILTER, 0, stubTableAddr + stubFilterProgOff}}, // seccomp_amd64.go
		{sysMunmap, [6]uint64{stubScratch, pageSize}},
	}
	putStubFilter(table)
	p.counts.setupStops.Add(1)
	if failed, err := injectBatch(pid, &regs, steps, nil); err != nil {
		return fail(fmt.Errorf("stub %d: strip down (call %d): %w", pid, failed, err))
	}
	return pid, regs, table, nil
}

// stubMapped reports whether addr is mapped in the stub process pid.
func stubMapped(pid int, addr uint64) bool {
	var b [1]byte
	n, err := unix.ProcessVMReadv(pid, []unix.Iovec{{Base: &b[0], Len: 1}}, []unix.RemoteIovec{{Base: uintptr(addr), Len: 1}}, 0)
	return err == nil && n == 1
}

// inject makes the stopped stub process pid (a leader or a stub thread)
// execute system call nr with args from entry (stubSyscallEntry or
// stubCloneEntry) and r15 set to r15, and waits until it stops again. base
// holds valid segment registers. The registers of pid are overwritten.
//
// Preconditions: runs on the tracer of pid.
func inject(pid int, base *platform.Registers, entry, nr uint64, args [6]uint64, r15 uint64) (uint64, error) {
	regs := *base
	regs.Rip = entry
	regs.Rax = nr
	regs.OrigRax = ^uint64(0)
	regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9 = args[0], args[1], args[2], args[3], args[4], args[5]
	regs.R15 = r15
	if err := runToTrap(pid, &regs); err != nil {
		return 0, fmt.Errorf("inject syscall %d: %w", nr, err)
	}
	if r := int64(regs.Rax); r < 0 && r > -4096 {
		return 0, unix.Errno(-r)
	}
	return regs.Rax, nil
}

// stubCall is one system call of a batch.
type stubCall struct {
	nr   uint64
	args [6]uint64
}

// injectBatch makes the stopped stub process pid (a leader or a stub
// thread) execute calls, at most batchMax, in order, stopping at the
// first that fails, in one stop: it writes their table into the stub's
// table page (the sentry's mapping of it, table) and runs it from
// batchEntry. A nil table is a new stub's set-up, before its table page
// is mapped: the table goes into its scratch page. It returns the index
// of the failed call with its error, or -1 and nil. base holds valid
// segment registers. The registers of pid are overwritten.
//
// Preconditions: runs on the tracer of pid; nothing else uses the stub's
// table page (the address space's opMu is held).
func injectBatch(pid int, base *platform.Registers, calls []stubCall, table stubTable) (int, error) {
	if len(calls) == 0 || len(calls) > batchMax {
		return -1, fmt.Errorf("inject batch of %d calls: %w", len(calls), ErrBadRange)
	}
	n := len(calls) * batchEntrySize
	entries, at := []byte(table), uint64(stubTableAddr)
	if table == nil {
		entries, at = make([]byte, n), stubScratch
	}
	entries = entries[:n]
	for i, c := range calls {
		e := entries[i*batchEntrySize:]
		binary.LittleEndian.PutUint64(e, c.nr)
		for j, a := range c.args {
			binary.LittleEndian.PutUint64(e[8+8*j:], a)
		}
	}
	if table == nil {
		local := []unix.Iovec{{Base: &entries[0]}}
		local[0].SetLen(n)
		remote := []unix.RemoteIovec{{Base: stubScratch, Len: n}}
		if got, err := unix.ProcessVMWritev(pid, local, remote, 0); err != nil || got != n {
			return -1, fmt.Errorf("inject batch of %d calls: write table (%d bytes written): %w", len(calls), got, err)
		}
	}
	regs := *base
	regs.Rip = stubBatchEntry
	regs.OrigRax = ^uint64(0)
	regs.R12, regs.R13 = at, uint64(len(calls))
	if err := runToTrap(pid, &regs); err != nil {
		return -1, fmt.Errorf("inject batch of %d calls: %w", len(calls), err)
	}
	if regs.R13 == 0 {
		return -1, nil
	}
	i := len(calls) - int(regs.R13)
	if r := int64(regs.Rax); i >= 0 && i < len(calls) && r < 0 && r > -4096 {
		return i, unix.Errno(-r)
	}
	return -1, fmt.Errorf("inject batch of %d calls: stopped with %d left and rax %#x: %w", len(calls), regs.R13, regs.Rax, ErrStubDied)
}

// runToTrap loads regs into the stopped stub process pid, continues it
// until it stops with SIGTRAP (the int3 after the injected code; other
// signals are suppressed), and reads its registers back into regs.
//
// Preconditions: runs on the tracer of pid.
func runToTrap(pid int, regs *platform.Registers) error {
	if err := setRegs(pid, regs); err != nil {
		return fmt.Errorf("set registers: %w", err)
	}
	if err := ptraceRaw(unix.PTRACE_CONT, pid, 0, 0); err != nil {
		return fmt.Errorf("continue: %w", err)
	}
	for {
		ws, err := wait4(pid)
		if err != nil {
			return fmt.Errorf("wait: %w", err)
		}
		if !ws.Stopped() {
			return fmt.Errorf("status %#x: %w", uint32(ws), ErrStubDied)
		}
		switch ws.StopSignal() {
		case unix.SIGTRAP:
			return getRegsInto(pid, regs)
		case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE:
			// The injected code itself faulted: resuming would fault
			// again forever.
			return fmt.Errorf("injected code faulted (signal %v): %w", ws.StopSignal(), ErrStubDied)
		}
		// Some other signal (SIGCHLD from a dying stub thread...):
		// suppress it and keep going.
		if err := ptraceRaw(unix.PTRACE_CONT, pid, 0, 0); err != nil {
			return fmt.Errorf("continue after signal %v: %w", ws.StopSignal(), err)
		}
	}
}

// getRegsInto reads the registers of the stopped pid into regs.
func getRegsInto(pid int, regs *platform.Registers) error {
	if err := getRegs(pid, regs); err != nil {
		return fmt.Errorf("read registers: %w", err)
	}
	return nil
}

// discardStub kills and reaps a stub leader that no address space took,
// with its pre-cloned thread, and unmaps its table page.
func discardStub(pid int, pre preThread, table stubTable) {
	pre.kill()
	killAndReap(pid)
	table.release()
}

// killAndReap kills pid with SIGKILL and waits until it is gone. It is a
// no-op for a pid that is not a child or tracee of this process.
func killAndReap(pid int) {
	_ = unix.Kill(pid, unix.SIGKILL)
	for {
		ws, err := wait4(pid)
		if err != nil || ws.Exited() || ws.Signaled() {
			return
		}
	}
}
