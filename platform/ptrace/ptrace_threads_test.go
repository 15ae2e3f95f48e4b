//go:build linux && amd64

package ptrace

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// waitRunning waits until Switch on c has started its stub thread. It may
// be called from any goroutine.
func waitRunning(c platform.Context) error {
	ctx := c.(*context)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ctx.mu.Lock()
		r := ctx.running != nil
		ctx.mu.Unlock()
		if r {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("Switch never started running the stub thread")
}

func TestInterrupt(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)

	t.Run("while spinning", func(t *testing.T) {
		locked(t) // subtests run on their own goroutines
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSpin
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := waitRunning(c); err != nil {
				t.Error(err)
			}
			c.Interrupt() // in any case, so that Switch returns
		}()
		_, _, err := switchOnce(c, a, st)
		<-done
		if !errors.Is(err, platform.ErrInterrupted) {
			t.Fatalf("Switch(spin) = %v, want ErrInterrupted", err)
		}
		if st.Regs.Rip != codeAddr+offSpin {
			t.Errorf("Rip = %#x, want %#x (the spin loop)", st.Regs.Rip, codeAddr+offSpin)
		}
	})
	t.Run("before switch", func(t *testing.T) {
		locked(t)
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSyscall
		c.Interrupt()
		if _, _, err := switchOnce(c, a, st); !errors.Is(err, platform.ErrInterrupted) {
			t.Fatalf("Switch after Interrupt = %v, want ErrInterrupted", err)
		}
		if _, _, err := switchOnce(c, a, st); err != nil {
			t.Fatalf("next Switch = %v, want nil (interrupt consumed)", err)
		}
	})
	t.Run("stale signal is ignored", func(t *testing.T) {
		locked(t)
		// An interrupt signal that reaches a stopped stub thread after its
		// Switch returned: the following Switch reports it once through the
		// flag, then the one after runs normally past the pending signal.
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSyscall
		th, err := a.threadFor(unix.Gettid())
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Tgkill(th.tid, th.tid, interruptSignal); err != nil {
			t.Fatal(err)
		}
		if _, _, err := switchOnce(c, a, st); err != nil {
			t.Fatalf("Switch with stale signal = %v, want nil", err)
		}
		if st.Regs.OrigRax != 0 || st.Regs.Rip != codeAddr+offSyscall+2 {
			t.Errorf("after stale signal: OrigRax %d Rip %#x, want 0 %#x", st.Regs.OrigRax, st.Regs.Rip, codeAddr+offSyscall+2)
		}
	})
}

func TestFPRoundTrip(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	// A first Switch from a nil FP returns the initial state.
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offSyscall
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("Switch = %v", err)
	}
	fetchFP(t, c, st)
	if len(st.FP) != e.p.fpSize {
		t.Fatalf("len(FP) = %d, want %d", len(st.FP), e.p.fpSize)
	}
	const in, out = 0x1122334455667788, 0x99aabbccddeeff00
	binary.LittleEndian.PutUint64(st.FP[fxsaveXMMOffset:], in) // xmm0
	st.FP[xsaveHeaderOffset] |= 2                              // xstate_bv: SSE state present
	st.Regs.Rip = codeAddr + offFP
	st.Regs.Rbx = out
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("Switch(fp) = %v", err)
	}
	if st.Regs.OrigRax != in {
		t.Errorf("rax after movq rax,xmm0 = %#x, want %#x", st.Regs.OrigRax, uint64(in))
	}
	fetchFP(t, c, st)
	if got := binary.LittleEndian.Uint64(st.FP[fxsaveXMMOffset+16:]); got != out {
		t.Errorf("xmm1 after movq xmm1,rbx = %#x, want %#x", got, uint64(out))
	}
	// Another context on the same thread (the same stub thread) must get
	// the initial state for a nil FP, not what the last one left.
	c2 := e.newContext(t)
	st2 := &platform.State{}
	st2.Regs.Rip = codeAddr + offFP
	if _, _, err := switchOnce(c2, a, st2); err != nil {
		t.Fatalf("Switch(fp, nil FP) = %v", err)
	}
	if st2.Regs.OrigRax != 0 {
		t.Errorf("xmm0 with nil FP = %#x, want 0", st2.Regs.OrigRax)
	}
}

func TestFSBase(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	const tls = 0x5000_0000
	if err := a.MapFile(tls, dataOff, pageSize, platform.ReadWrite, false); err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(e.mem[dataOff:], 0xfeedface)
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offFS
	st.Regs.FsBase = tls
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("Switch = %v", err)
	}
	if st.Regs.OrigRax != 0xfeedface {
		t.Errorf("fs:[0] = %#x, want 0xfeedface", st.Regs.OrigRax)
	}
	if st.Regs.FsBase != tls {
		t.Errorf("FsBase = %#x, want %#x", st.Regs.FsBase, tls)
	}
}

// TestTwoSpaces runs two contexts in two address spaces that map different
// file pages at the same address, interleaved on one thread.
func TestTwoSpaces(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	const data = 0x6000_0000
	spaces := []*addressSpace{e.newSpace(t), e.newSpace(t)}
	ctxs := []platform.Context{e.newContext(t), e.newContext(t)}
	states := []*platform.State{{}, {}}
	for i, a := range spaces {
		off := dataOff + i*pageSize
		if err := a.MapFile(data, uint64(off), pageSize, platform.ReadWrite, false); err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(e.mem[off:], uint64(100*(i+1)))
		states[i].Regs.Rip = codeAddr + offLoop
		states[i].Regs.Rdi, states[i].Regs.Rsi, states[i].Regs.Rdx, states[i].Regs.Rcx = data, 1, 0, 1
	}
	for round := 0; round < 3; round++ {
		for i := range spaces {
			st := states[i]
			st.Regs.Rip, st.Regs.Rcx = codeAddr+offLoop, 1
			if _, _, err := switchOnce(ctxs[i], spaces[i], st); err != nil {
				t.Fatalf("round %d space %d: Switch = %v", round, i, err)
			}
		}
	}
	for i := range spaces {
		if got, want := e.u64(dataOff+i*pageSize), uint64(100*(i+1)+3); got != want {
			t.Errorf("space %d word = %d, want %d", i, got, want)
		}
	}
}

// TestOtherThreads creates the address space on the test goroutine and
// switches into it from several other locked OS threads, each getting its
// own stub thread, including one context moving between threads.
func TestOtherThreads(t *testing.T) {
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	const data = 0x7000_0000
	if err := a.MapFile(data, dataOff, pageSize, platform.ReadWrite, false); err != nil {
		t.Fatal(err)
	}
	c := e.newContext(t)
	st := &platform.State{}
	const workers = 3
	for w := 0; w < workers; w++ {
		var wg sync.WaitGroup
		var err error
		var tid int
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tid = unix.Gettid()
			st.Regs.Rip = codeAddr + offLoop
			st.Regs.Rdi, st.Regs.Rsi, st.Regs.Rdx, st.Regs.Rcx = data+8*uint64(w), 1, 0, 1
			if _, _, err = switchOnce(c, a, st); err == nil {
				// The context moves to the next worker's thread, and only
				// this one can read the state out of its stub thread.
				err = c.FetchFP(st)
			}
		}()
		wg.Wait()
		if err != nil {
			t.Fatalf("worker %d (tid %d): Switch = %v", w, tid, err)
		}
		if got := e.u64(dataOff + 8*w); got != 1 {
			t.Errorf("worker %d wrote %d, want 1", w, got)
		}
	}
	a.mu.Lock()
	n := len(a.threads)
	a.mu.Unlock()
	if n < 1 || n > workers {
		t.Errorf("stub threads = %d, want 1..%d (one per OS thread used)", n, workers)
	}
	// Concurrent contexts in one address space on different threads.
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cw, err := e.p.NewContext()
			if err != nil {
				errs[w] = err
				return
			}
			defer cw.Release()
			sw := &platform.State{}
			for i := 0; i < 50 && errs[w] == nil; i++ {
				sw.Regs.Rip = codeAddr + offLoop
				sw.Regs.Rdi, sw.Regs.Rsi, sw.Regs.Rdx, sw.Regs.Rcx = data+64+8*uint64(w), 1, 0, 1
				_, _, errs[w] = switchOnce(cw, a, sw)
			}
		}()
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("concurrent worker %d: %v", w, err)
		}
		if got := e.u64(dataOff + 64 + 8*w); got != 50 {
			t.Errorf("concurrent worker %d wrote %d, want 50", w, got)
		}
	}
	// Release from this goroutine: the stub threads' tracers are other,
	// still living OS threads.
	pids := stubPIDs(e.p)
	e.p.Release()
	for _, pid := range pids {
		if pi := readProc(pid); pi.exists && (pi.stub || pi.state == 'Z') {
			t.Errorf("after Release: process %d = %+v, want gone", pid, pi)
		}
	}
}

// TestThreadExit: a sentry OS thread that exits takes only its own stub
// thread with it; the address space keeps working.
func TestThreadExit(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	done := make(chan error)
	var exitTID int
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with us
		exitTID = unix.Gettid()
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSyscall
		_, _, err := switchOnce(c, a, st)
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("Switch on exiting thread = %v", err)
	}
	a.mu.Lock()
	dying := a.threads[exitTID]
	a.mu.Unlock()
	if dying == nil {
		t.Fatalf("no stub thread recorded for OS thread %d", exitTID)
	}
	// The exiting OS thread's stub thread dies (EXITKILL) and is reaped by
	// the host, leaving no zombie.
	deadline := time.Now().Add(10 * time.Second)
	for {
		pi := readProc(dying.tid)
		if !pi.exists || !pi.stub && pi.state != 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stub thread %d of exited OS thread: %+v, want gone", dying.tid, pi)
		}
		time.Sleep(time.Millisecond)
	}
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offSyscall
	for i := 0; i < 3; i++ {
		if _, _, err := switchOnce(c, a, st); err != nil {
			t.Fatalf("Switch after other thread exited = %v", err)
		}
		st.Regs.Rip = codeAddr + offSyscall
	}
	// Creating a stub thread (this OS thread already has one, so use a new
	// goroutine) sweeps the dead one.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSyscall
		_, _, err := switchOnce(c, a, st)
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("Switch on a third thread = %v", err)
	}
	a.mu.Lock()
	_, kept := a.threads[exitTID]
	a.mu.Unlock()
	if kept {
		t.Errorf("stub thread of exited OS thread %d still recorded after a sweep", exitTID)
	}
}

// TestFPOtherSize: an XSAVE area of another size (an image from a host
// with other XSAVE features) is adapted: the legacy area and the SSE state
// survive, the result has this host's size.
func TestFPOtherSize(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	for _, size := range []int{xsaveHeaderOffset + 64, e.p.fpSize + 256} {
		st := &platform.State{FP: make([]byte, size)}
		copy(st.FP, e.p.initFP)
		const v = 0x0102030405060708
		binary.LittleEndian.PutUint64(st.FP[fxsaveXMMOffset:], v)
		st.FP[xsaveHeaderOffset] |= 2
		st.Regs.Rip = codeAddr + offFP
		if _, _, err := switchOnce(c, a, st); err != nil {
			t.Fatalf("Switch with %d-byte FP = %v", size, err)
		}
		if st.Regs.OrigRax != v {
			t.Errorf("%d-byte FP: xmm0 = %#x, want %#x", size, st.Regs.OrigRax, uint64(v))
		}
		fetchFP(t, c, st)
		if len(st.FP) != e.p.fpSize {
			t.Errorf("%d-byte FP: len after Switch = %d, want %d", size, len(st.FP), e.p.fpSize)
		}
	}
}

// TestInterruptStress interrupts a thread that makes system calls as fast
// as it can: every Switch returns nil or ErrInterrupted, and once the
// interrupts stop, no stale one is reported.
func TestInterruptStress(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offSyscallLoop
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.Interrupt()
			time.Sleep(20 * time.Microsecond)
		}
	}()
	var syscalls, interrupts int
	// At least 3000 round trips, and until an interrupt landed (bounded).
	for i := 0; i < 100000 && (i < 3000 || interrupts == 0); i++ {
		_, _, err := switchOnce(c, a, st)
		switch {
		case err == nil:
			syscalls++
		case errors.Is(err, platform.ErrInterrupted):
			interrupts++
		default:
			close(stop)
			wg.Wait()
			t.Fatalf("Switch %d = %v, want nil or ErrInterrupted", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if syscalls == 0 || interrupts == 0 {
		t.Errorf("syscalls %d, interrupts %d; want both > 0", syscalls, interrupts)
	}
	// At most one interrupt can still be pending (flag set after the last
	// stop); after that, only system calls.
	if _, _, err := switchOnce(c, a, st); err != nil && !errors.Is(err, platform.ErrInterrupted) {
		t.Fatalf("Switch after stress = %v", err)
	}
	for i := 0; i < 20; i++ {
		if _, _, err := switchOnce(c, a, st); err != nil {
			t.Fatalf("Switch %d after interrupts stopped = %v, want nil", i, err)
		}
	}
	t.Logf("%d syscalls, %d interrupts", syscalls, interrupts)
}

// TestFPInvalid: an XSAVE area the host would refuse (reserved MXCSR bits,
// unknown features, a compacted header, as a forged signal frame could
// hold) is loaded the way the hardware would mask it; the SSE state stays.
func TestFPInvalid(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	st := &platform.State{FP: append([]byte(nil), e.p.initFP...)}
	const v = 0x1111222233334444
	le := binary.LittleEndian
	le.PutUint64(st.FP[fxsaveXMMOffset:], v)
	le.PutUint32(st.FP[fxsaveMXCSR:], 0xffffffff)
	le.PutUint64(st.FP[xsaveHeaderOffset:], 1<<62|3)
	le.PutUint64(st.FP[xsaveHeaderOffset+8:], 1<<63|3)
	bad := append([]byte(nil), st.FP...)
	st.Regs.Rip = codeAddr + offFP
	if _, _, err := switchOnce(c, a, st); err != nil {
		t.Fatalf("Switch with invalid FP = %v, want nil", err)
	}
	// The host does refuse it as is.
	th, err := a.threadFor(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	th.mu.Lock()
	err = setFP(th.tid, bad)
	th.fpValid = false
	th.mu.Unlock()
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("PTRACE_SETREGSET(invalid) = %v, want EINVAL", err)
	}
	if st.Regs.OrigRax != v {
		t.Errorf("xmm0 = %#x, want %#x", st.Regs.OrigRax, uint64(v))
	}
	fetchFP(t, c, st)
	mask := le.Uint32(e.p.initFP[fxsaveMXCSRMask:])
	if got := le.Uint32(st.FP[fxsaveMXCSR:]); got != mask {
		t.Errorf("MXCSR = %#x, want %#x (masked)", got, mask)
	}
}

// TestConcurrentStress runs several application threads in one address
// space, each counting in its own word in loops that end in a system call,
// while another goroutine maps and unmaps an unrelated range and a third
// interrupts them: every Switch ends in a documented way and every count
// is exact.
func TestConcurrentStress(t *testing.T) {
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	const data, scratch = 0x7100_0000, 0x7200_0000
	if err := a.MapFile(data, dataOff, pageSize, platform.ReadWrite, true); err != nil {
		t.Fatal(err)
	}
	const workers, rounds, iters = 3, 200, 5000
	ctxs := make([]platform.Context, workers)
	for w := range ctxs {
		ctxs[w] = e.newContext(t)
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // mapper
		defer bg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := a.MapFile(scratch, dataOff+pageSize, pageSize, platform.Read, i%2 == 0); err != nil {
				t.Errorf("MapFile = %v", err)
				return
			}
			if err := a.Unmap(scratch, pageSize); err != nil {
				t.Errorf("Unmap = %v", err)
				return
			}
		}
	}()
	go func() { // interrupter
		defer bg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctxs[i%workers].Interrupt()
			time.Sleep(100 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, workers)
	interrupts := make([]int, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			st := &platform.State{}
			fresh := true
			for done := 0; done < rounds; {
				if fresh {
					st.Regs.Rip = codeAddr + offLoop
					st.Regs.Rdi, st.Regs.Rsi, st.Regs.Rdx, st.Regs.Rcx = data+8*uint64(w), 1, 0, iters
				}
				_, _, err := switchOnce(ctxs[w], a, st)
				switch {
				case err == nil:
					done++
					fresh = true
				case errors.Is(err, platform.ErrInterrupted):
					// Resume where it stopped, possibly inside the loop.
					fresh = false
					interrupts[w]++
				default:
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", w, err)
		}
		if got := e.u64(dataOff + 8*w); got != rounds*iters {
			t.Errorf("worker %d count = %d, want %d", w, got, rounds*iters)
		}
	}
	t.Logf("interrupts per worker: %v", interrupts)
}

// TestContextMovesBetweenThreads runs one application thread (a syscall
// loop) with one context from two goroutines locked to different OS
// threads, alternately: Switch first tries the stub thread of its last
// call, which only that call's OS thread traces, so every move must fall
// back to the calling thread's own stub thread. The registers carry the
// application's progress from one thread to the other.
func TestContextMovesBetweenThreads(t *testing.T) {
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	cc := c.(*context)
	st := &platform.State{}
	st.Regs.Rip = codeAddr + offSyscallLoop
	const rounds = 10
	type turn struct {
		round int
		done  chan error
	}
	workers := [2]chan turn{make(chan turn), make(chan turn)}
	tids := [2]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tids[w] = unix.Gettid()
			for tr := range workers[w] {
				st.Regs.Rax = uint64(tr.round) // the previous syscall's result
				_, _, err := switchOnce(c, a, st)
				if err == nil && (cc.last == nil || cc.last.tracer != unix.Gettid()) {
					err = errors.New("Switch did not remember the calling thread's stub thread")
				}
				if err == nil {
					// Only this OS thread can read the floating point
					// state out of its stub thread: do it before the
					// context moves.
					err = c.FetchFP(st)
				}
				tr.done <- err
			}
		}()
	}
	defer func() {
		for _, w := range workers {
			close(w)
		}
		wg.Wait()
	}()
	for i := 0; i < rounds; i++ {
		done := make(chan error)
		workers[i%2] <- turn{round: 1000 + i, done: done}
		if err := <-done; err != nil {
			t.Fatalf("round %d on worker %d: Switch = %v", i, i%2, err)
		}
		// The loop's next syscall number is the result written before it.
		if i > 0 {
			if want := uint64(1000 + i); st.Regs.OrigRax != want {
				t.Fatalf("round %d: OrigRax = %d, want %d", i, st.Regs.OrigRax, want)
			}
		}
	}
	a.mu.Lock()
	t0, t1 := a.threads[tids[0]], a.threads[tids[1]]
	a.mu.Unlock()
	if t0 == nil || t1 == nil || t0 == t1 {
		t.Errorf("stub threads of the workers' OS threads %v = %v, %v; want two different ones", tids, t0, t1)
	}
}

// TestPreThread checks the stub thread cloned with each stub: the first OS
// thread that needs a stub thread takes it; one killed from outside before
// that is replaced by a fresh clone; and one never used is gone after the
// address space is released.
func TestPreThread(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	newSpace := func() *addressSpace {
		a, err := e.p.newAddressSpace()
		if err != nil {
			t.Fatalf("NewAddressSpace: %v", err)
		}
		if a.pre.tid == 0 {
			t.Fatalf("new address space (stub %d) has no stub thread cloned in advance", a.pid)
		}
		return a
	}
	// threadOf maps the code page (which makes the calling thread's stub
	// thread) and returns that thread.
	threadOf := func(a *addressSpace) *stubThread {
		if err := a.MapFile(codeAddr, 0, pageSize, platform.AccessType{Read: true, Execute: true}, false); err != nil {
			t.Fatalf("MapFile(code) = %v", err)
		}
		th, err := a.threadFor(unix.Gettid())
		if err != nil {
			t.Fatalf("threadFor = %v", err)
		}
		return th
	}
	run := func(a *addressSpace) {
		c := e.newContext(t)
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSyscall
		st.Regs.Rax = unix.SYS_GETPID
		if _, _, err := switchOnce(c, a, st); err != nil || st.Regs.OrigRax != unix.SYS_GETPID {
			t.Fatalf("Switch = %v with OrigRax %d, want a getpid stop", err, st.Regs.OrigRax)
		}
	}

	t.Run("taken", func(t *testing.T) {
		a := newSpace()
		defer a.Release()
		pre := a.pre.tid
		if th := threadOf(a); th.tid != pre {
			t.Errorf("first stub thread = %d, want the one cloned in advance, %d", th.tid, pre)
		}
		if a.pre.tid != 0 {
			t.Errorf("after the first stub thread, pre = %d, want none", a.pre.tid)
		}
		run(a)
	})
	t.Run("killed before use", func(t *testing.T) {
		a := newSpace()
		defer a.Release()
		pre := a.pre
		if err := unix.PidfdSendSignal(pre.pidfd, unix.SIGKILL, nil, 0); err != nil {
			t.Fatal(err)
		}
		waitPidfdExit(pre.pidfd, reapTimeoutMillis)
		if th := threadOf(a); th.tid == pre.tid {
			t.Errorf("first stub thread = %d, the killed one; want a new one", th.tid)
		}
		run(a)
	})
	t.Run("released unused", func(t *testing.T) {
		a := newSpace()
		pre := a.pre.tid
		a.Release()
		e.p.reaping.Wait()
		if pi := readProc(pre); pi.exists && (pi.stub || pi.state == 'Z') {
			t.Errorf("after Release: unused stub thread %d = %+v, want gone", pre, pi)
		}
	})
}
