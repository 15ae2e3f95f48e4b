package kernel

import (
	"encoding/binary"
	"math/bits"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/platform"
)

// Signal numbers and limits.
const (
	numSignals = 64
	sigRTMin   = 32
)

// Special handler values and sigaction flags (asm-generic/signal-defs.h,
// x86 uapi).
const (
	sigDFL = 0
	sigIGN = 1

	saNocldstop = 0x1
	saNocldwait = 0x2
	saSiginfo   = 0x4
	saOnstack   = 0x08000000
	saRestart   = 0x10000000
	saNodefer   = 0x40000000
	saResethand = 0x80000000
	saRestorer  = 0x04000000
)

// siginfo codes.
const (
	siUser     = 0
	siKernel   = 0x80
	siQueue    = -1
	siTimer    = -2
	siTkill    = -6
	segvMaperr = 1
	segvAccerr = 2
	cldDumped  = 3
)

// sigAction is a struct kernel_sigaction.
//
// +stateify savable
type sigAction struct {
	Handler  uint64
	Flags    uint64
	Restorer uint64
	Mask     uint64
}

// sigInfo is the part of a siginfo_t the kernel fills.
//
// +stateify savable
type sigInfo struct {
	Signo int32
	Code  int32
	// Addr is si_addr for faults.
	Addr uint64
	// Pid and UID are the sender's, Status SIGCHLD's si_status; Value is
	// sigqueue's value (or the 8 bytes after si_uid a caller supplied).
	Pid    int32
	UID    uint32
	Status int32
	Value  uint64
	// Raw, when non-nil, is the whole siginfo a rt_sigqueueinfo caller
	// supplied (si_signo overwritten).
	Raw []byte
	// Timer is the POSIX timer that queued the signal (Pid is then its
	// ID, UID its overrun count, set when the signal is dequeued), or nil.
	Timer *posixTimer
}

// sigPending is a pending set with the queued siginfos.
//
// +stateify savable
type sigPending struct {
	// Set has bit signo-1 set for every pending signal.
	Set uint64
	// Queue holds one entry per pending standard signal and every queued
	// real-time signal, in arrival order.
	Queue []sigInfo
}

// enqueue adds info; a standard signal already pending is dropped.
func (p *sigPending) enqueue(info sigInfo) {
	bit := sigBit(int(info.Signo))
	if info.Signo < sigRTMin && p.Set&bit != 0 {
		return
	}
	p.Set |= bit
	p.Queue = append(p.Queue, info)
}

// dequeue removes the first queued instance of signo.
func (p *sigPending) dequeue(signo int) sigInfo {
	var out sigInfo
	found, more := false, false
	q := p.Queue[:0]
	for _, e := range p.Queue {
		if int(e.Signo) == signo {
			if !found {
				out, found = e, true
				continue
			}
			more = true
		}
		q = append(q, e)
	}
	p.Queue = q
	if !more {
		p.Set &^= sigBit(signo)
	}
	if !found {
		out = sigInfo{Signo: int32(signo), Code: siKernel}
	}
	if out.Timer != nil {
		out.UID = out.Timer.delivered()
	}
	return out
}

// discard removes every instance of the signals in set.
func (p *sigPending) discard(set uint64) {
	if p.Set&set == 0 {
		return
	}
	q := p.Queue[:0]
	for _, e := range p.Queue {
		if sigBit(int(e.Signo))&set == 0 {
			q = append(q, e)
		} else if e.Timer != nil {
			e.Timer.Queued, e.Timer.Overruns = false, 0 // the next expiry queues it again
		}
	}
	p.Queue = q
	p.Set &^= set
}

// itimer is one interval timer. Expiry is kernel-monotonic so that a
// restored kernel keeps the timer running; the Go timer that wakes the
// process is host state, re-armed by the task goroutine when missing.
//
// +stateify savable
type itimer struct {
	// Expiry is the next expiry in kernel-monotonic nanoseconds; 0 when
	// disarmed.
	Expiry int64
	// Interval is the period in nanoseconds; 0 for a one-shot timer.
	Interval int64
	// timer wakes a task of the process at Expiry. Not saved.
	timer *time.Timer `state:"nosave"`
	// armedFor is the Expiry timer was armed for.
	armedFor int64 `state:"nosave"`
}

// Interval timer kinds and their signals.
const numItimers = 3

var itimerSignals = [numItimers]int{int(unix.SIGALRM), int(unix.SIGVTALRM), int(unix.SIGPROF)}

// tgSignals is a process's signal state. Protected by ThreadGroup.mu.
//
// +stateify savable
type tgSignals struct {
	// Actions are the dispositions, indexed by signo-1.
	Actions [numSignals]sigAction
	// Pending are the process-directed pending signals.
	Pending sigPending
	// Itimers are ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF. The
	// expiry of the last two is in process CPU time (itimerClockLocked).
	Itimers [numItimers]itimer
	// Stopped is set while a stop signal (SIGSTOP, SIGTSTP, SIGTTIN,
	// SIGTTOU) keeps the process stopped, until SIGCONT or SIGKILL.
	Stopped bool
	// StopSignal is the signal that stopped the process, reported to a
	// parent's wait with WUNTRACED while StopReport is set; StopReport is
	// cleared when such a wait consumes it (not with WNOWAIT) or the
	// process continues.
	StopSignal int32
	StopReport bool
	// ContinueReport is set when SIGCONT ended a stop, until a parent's
	// wait with WCONTINUED consumes it or the process stops again.
	ContinueReport bool
	// ExecTask is the thread in an execve that must first end every other
	// thread of the process (Linux's signal->group_exec_task), or nil.
	// The other threads exit when they next reach handlePendingSignals.
	ExecTask *Task
	// execDone is closed (and cleared) when a thread exits while ExecTask
	// is set, to wake ExecTask. Not saved: ExecTask's wait is interrupted
	// by a save and its execve restarts afterwards (ERESTARTNOINTR).
	execDone chan struct{} `state:"nosave"`
	// UserTime is no longer written: images from before hold in it the
	// user time measured while a CPU timer was armed, which the process's
	// user time then does not fall below (rusage.go).
	UserTime int64
	// ExitedUser and SysTime are the user and system time (rusage.go) of
	// the process's threads that exited (SysTime in images from before:
	// the system time measured while a CPU timer was armed, which the
	// process's then continues from); ChildUser and ChildSys are the user
	// and system time of its reaped children and their reaped children
	// (RUSAGE_CHILDREN), added at reap. In nanoseconds. Protected by
	// ThreadGroup.mu.
	SysTime                         int64
	ExitedUser, ChildUser, ChildSys int64
	// Timers are the POSIX timers (timer_create), NextTimerID the ID the
	// next one gets if free.
	Timers      []*posixTimer
	NextTimerID int32
	// queued is closed (and cleared) when a signal is queued for the
	// process or one of its threads, for signalfd waiters. Not saved:
	// made on demand.
	queued chan struct{} `state:"nosave"`
}

// signalQueuedLocked wakes the signalfd waiters of the process.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) signalQueuedLocked() {
	if tg.sigs.queued != nil {
		close(tg.sigs.queued)
		tg.sigs.queued = nil
	}
}

// signalQueuedChanLocked returns a channel closed when a signal is next
// queued for the process or one of its threads.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) signalQueuedChanLocked() <-chan struct{} {
	if tg.sigs.queued == nil {
		tg.sigs.queued = make(chan struct{})
	}
	return tg.sigs.queued
}

// taskSignals is a thread's signal state. Protected by ThreadGroup.mu,
// except the CPU time marks.
//
// +stateify savable
type taskSignals struct {
	// Mask is the blocked set.
	Mask uint64
	// Pending are the thread-directed pending signals.
	Pending sigPending
	// AltSP, AltSize and AltFlags are the alternate signal stack
	// (AltFlags SS_DISABLE when none).
	AltSP, AltSize uint64
	AltFlags       int32
	// SavedMask is the mask to restore after rt_sigsuspend, valid when
	// HaveSavedMask.
	SavedMask     uint64
	HaveSavedMask bool
	// CPUTime is no longer written: images from before hold in it the
	// thread's CPU time measured while a CPU timer was armed, which its
	// CPU clock then does not fall below (rusage.go).
	CPUTime int64
	// UserDone is the thread's user time (rusage.go) up to ruMark on host
	// process ruStub, the platform's stub thread that runs it (0 when
	// none yet), in nanoseconds. SysDone is its system time up to sysMark
	// on the sentry's OS thread sysTID, the one its task goroutine is
	// locked to (0 when none). Written by the task goroutine (or by a save
	// while it is parked) holding ThreadGroup.mu; read under it. ruStub,
	// ruMark, sysTID and sysMark are not saved: a restored task runs on a
	// new stub and a new OS thread.
	UserDone int64
	SysDone  int64
	ruStub   int   `state:"nosave"`
	ruMark   int64 `state:"nosave"`
	sysTID   int   `state:"nosave"`
	sysMark  int64 `state:"nosave"`
	// Awaited is the set rt_sigtimedwait waits for while the thread is
	// blocked in it (Linux's real_blocked): the wait unblocks it in Mask
	// so that a signal of it wakes the thread, but a signal whose action
	// is to be ignored must still be queued for the wait to take. Not
	// saved: a task parks for a save only outside the wait.
	Awaited uint64 `state:"nosave"`
}

const (
	ssOnstack   = 1
	ssDisable   = 2
	minSigstksz = 2048
)

func sigBit(signo int) uint64 { return 1 << uint(signo-1) }

// unblockable are SIGKILL and SIGSTOP.
var unblockable = sigBit(int(unix.SIGKILL)) | sigBit(int(unix.SIGSTOP))

// syncSignals are dequeued first, as Linux does.
var syncSignals = sigBit(int(unix.SIGSEGV)) | sigBit(int(unix.SIGBUS)) | sigBit(int(unix.SIGILL)) |
	sigBit(int(unix.SIGTRAP)) | sigBit(int(unix.SIGFPE)) | sigBit(int(unix.SIGSYS))

// defaultAction is what SIG_DFL does.
type defaultAction uint8

const (
	actTerminate defaultAction = iota
	actCore
	actIgnore
	actStop
	actContinue
)

func defaultActionOf(signo int) defaultAction {
	switch unix.Signal(signo) {
	case unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP, unix.SIGABRT, unix.SIGBUS, unix.SIGFPE,
		unix.SIGSEGV, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGSYS:
		return actCore
	case unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH:
		return actIgnore
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return actStop
	case unix.SIGCONT:
		return actContinue
	}
	return actTerminate
}

// ignoredLocked reports whether signo would be discarded on delivery.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) ignoredLocked(signo int) bool {
	h := tg.sigs.Actions[signo-1].Handler
	if h == sigIGN {
		return true
	}
	return h == sigDFL && (defaultActionOf(signo) == actIgnore || defaultActionOf(signo) == actContinue)
}

// sendSignal queues info for the process (target nil) or for thread
// target, and wakes a thread that can take it. SIGKILL kills at once.
func (tg *ThreadGroup) sendSignal(info sigInfo, target *Task) {
	signo := int(info.Signo)
	if signo <= 0 || signo > numSignals {
		return
	}
	if signo == int(unix.SIGKILL) {
		tg.exitGroup(ExitStatus{Signal: signo})
		return
	}
	tg.mu.Lock()
	if tg.exiting {
		tg.mu.Unlock()
		return
	}
	bit := sigBit(signo)
	if signo == int(unix.SIGCONT) && tg.continueLocked() {
		// The parent learns of it (CLD_CONTINUED) once tg.mu is
		// released; the rest of the delivery does not depend on it.
		defer tg.k.notifyParentJobControl(tg, cldContinued, int32(unix.SIGCONT))
	} else if defaultActionOf(signo) == actStop {
		tg.sigs.Pending.discard(sigBit(int(unix.SIGCONT)))
		for _, o := range tg.tasks {
			o.sig.Pending.discard(sigBit(int(unix.SIGCONT)))
		}
	}
	blockedEverywhere := true
	if target != nil {
		blockedEverywhere = (target.sig.Mask|target.sig.Awaited)&bit != 0
	} else {
		for _, o := range tg.tasks {
			if (o.sig.Mask|o.sig.Awaited)&bit == 0 {
				blockedEverywhere = false
				break
			}
		}
	}
	if tg.ignoredLocked(signo) && !blockedEverywhere {
		tg.mu.Unlock()
		return
	}
	if tg.sigs.Stopped && !blockedEverywhere && tg.sigs.Actions[signo-1].Handler == sigDFL && defaultActionOf(signo) == actTerminate {
		// A fatal signal ends a stopped process at once, as in Linux.
		tg.mu.Unlock()
		tg.exitGroup(ExitStatus{Signal: signo})
		return
	}
	var wake *Task
	tg.signalQueuedLocked()
	if target != nil {
		target.sig.Pending.enqueue(info)
		if target.sig.Mask&bit == 0 {
			wake = target
		}
	} else {
		tg.sigs.Pending.enqueue(info)
		for _, o := range tg.tasks {
			if o.sig.Mask&bit == 0 {
				wake = o
				break
			}
		}
	}
	tg.mu.Unlock()
	if wake != nil {
		wake.interrupt()
	}
}

// continueLocked ends a stop and discards pending stop signals, as
// SIGCONT does when it is sent (whatever its disposition). It reports
// whether a stop ended; the caller then notifies the parent
// (notifyParentJobControl) after releasing tg.mu.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) continueLocked() bool {
	stops := sigBit(int(unix.SIGSTOP)) | sigBit(int(unix.SIGTSTP)) | sigBit(int(unix.SIGTTIN)) | sigBit(int(unix.SIGTTOU))
	tg.sigs.Pending.discard(stops)
	for _, o := range tg.tasks {
		o.sig.Pending.discard(stops)
	}
	if !tg.sigs.Stopped {
		return false
	}
	tg.sigs.Stopped = false
	tg.sigs.StopReport = false
	tg.sigs.ContinueReport = true
	for _, o := range tg.tasks {
		go o.interrupt()
	}
	return true
}

// stopLocked stops every thread of the process for signo: each one parks
// in handlePendingSignals until SIGCONT. The caller then notifies the
// parent (notifyParentJobControl with CLD_STOPPED) after releasing tg.mu.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) stopLocked(self *Task, signo int) {
	tg.sigs.Stopped = true
	tg.sigs.StopSignal = int32(signo)
	tg.sigs.StopReport = true
	tg.sigs.ContinueReport = false
	for _, o := range tg.tasks {
		if o != self {
			go o.interrupt()
		}
	}
}

// sendSignalToSelf sends signal sig to the task's own process, as the
// kernel does for SIGPIPE after a write to a broken pipe.
//
// Preconditions: called by the task goroutine.
func (t *Task) sendSignalToSelf(sig int) {
	t.tg.sendSignal(sigInfo{Signo: int32(sig), Code: siKernel}, t)
}

// deliverSyncSignal handles a synchronous signal the application raised
// (a fault the MM could not fix, SIGILL, SIGFPE, SIGTRAP...): as Linux's
// force_sig, a blocked or ignored signal is unblocked and reset to its
// default action, then the signal is queued for this thread and delivered
// before the task returns to the application.
//
// Preconditions: called by the task goroutine.
func (t *Task) deliverSyncSignal(pi *platform.SignalInfo) taskRunState {
	signo := int(pi.Signo)
	if signo <= 0 || signo > numSignals {
		signo = int(unix.SIGSEGV)
	}
	info := sigInfo{Signo: int32(signo), Code: pi.Code, Addr: pi.Addr}
	if signo == int(unix.SIGSEGV) {
		mm := t.tg.mm
		mm.mu.RLock()
		if mm.vmaAtLocked(pi.Addr) != nil {
			info.Code = segvAccerr
		} else {
			info.Code = segvMaperr
		}
		mm.mu.RUnlock()
	}
	tg := t.tg
	tg.mu.Lock()
	bit := sigBit(signo)
	act := &tg.sigs.Actions[signo-1]
	if t.sig.Mask&bit != 0 || act.Handler == sigIGN {
		t.sig.Mask &^= bit
		*act = sigAction{}
	}
	t.sig.Pending.enqueue(info)
	tg.mu.Unlock()
	return stateApp
}

// signalsOnExec resets what execve resets: handled signals go back to
// their default action, the alternate signal stack and the POSIX timers
// are dropped; the mask and pending signals stay.
//
// Preconditions: called by the task goroutine.
func (t *Task) signalsOnExec() {
	tg := t.tg
	tg.mu.Lock()
	defer tg.mu.Unlock()
	for i := range tg.sigs.Actions {
		a := &tg.sigs.Actions[i]
		if a.Handler != sigIGN {
			*a = sigAction{}
		}
	}
	t.sig.AltSP, t.sig.AltSize, t.sig.AltFlags = 0, 0, ssDisable
	tg.deletePosixTimersLocked()
}

// signalsOnNewTask gives a new task the signal state it inherits from its
// creator t: a new thread shares the process's handlers and copies t's
// mask; a forked process copies the handlers and t's mask, with nothing
// pending (and no interval timers).
//
// Preconditions: called by t's task goroutine before nt starts.
func (t *Task) signalsOnNewTask(nt *Task, newProcess bool) {
	t.tg.mu.Lock()
	mask := t.sig.Mask
	actions := t.tg.sigs.Actions
	alt := [3]uint64{t.sig.AltSP, t.sig.AltSize, uint64(t.sig.AltFlags)}
	t.tg.mu.Unlock()
	if newProcess {
		nt.tg.mu.Lock()
		nt.tg.sigs.Actions = actions
		nt.tg.mu.Unlock()
	}
	nt.tg.mu.Lock()
	nt.sig = taskSignals{Mask: mask, AltFlags: ssDisable}
	if newProcess {
		// fork keeps the alternate stack; a new thread does not.
		nt.sig.AltSP, nt.sig.AltSize, nt.sig.AltFlags = alt[0], alt[1], int32(alt[2])
	}
	nt.tg.mu.Unlock()
}

// signalParentOnExitLocked notifies the parent of a process that is
// becoming a zombie with the exit signal clone asked for (SIGCHLD for fork).
//
// Preconditions: TaskSet.mu is held (so that the signal is pending before a
// wait sees the zombie); neither tg.mu nor the parent's mu is held.
func (k *Kernel) signalParentOnExitLocked(tg *ThreadGroup) {
	parent := tg.parent
	if parent == nil || tg.exitSignal <= 0 || tg.exitSignal > numSignals {
		return
	}
	tg.mu.Lock()
	st := tg.exitStatus
	uid := tg.leader.creds.UID
	tg.mu.Unlock()
	info := sigInfo{Signo: tg.exitSignal, Code: cldExited, Pid: tg.tgid, UID: uid, Status: int32(st.Code)}
	if st.Signal != 0 {
		info.Code, info.Status = cldKilled, int32(st.Signal)
		if defaultActionOf(st.Signal) == actCore {
			info.Code = cldDumped
		}
	}
	parent.sendSignal(info, nil)
}

// notifyParentJobControl tells the parent of tg that tg stopped
// (cldStopped, status the stop signal) or continued (cldContinued,
// status SIGCONT): its waiters wake up to see it with WUNTRACED or
// WCONTINUED, and it gets SIGCHLD unless its SIGCHLD action has
// SA_NOCLDSTOP, as Linux's do_notify_parent_cldstop.
//
// Preconditions: neither TaskSet.mu nor tg.mu is held.
func (k *Kernel) notifyParentJobControl(tg *ThreadGroup, code, status int32) {
	ts := k.tasks
	ts.mu.Lock()
	parent := tg.parent
	ts.mu.Unlock()
	if parent == nil {
		return
	}
	tg.mu.Lock()
	uid := tg.leader.creds.UID
	tg.mu.Unlock()
	parent.mu.Lock()
	noStop := parent.sigs.Actions[unix.SIGCHLD-1].Flags&saNocldstop != 0
	parent.mu.Unlock()
	// The signal first, then the waiters: a parent woken from wait finds
	// its SIGCHLD already pending, as on Linux.
	if !noStop {
		parent.sendSignal(sigInfo{Signo: int32(unix.SIGCHLD), Code: code, Pid: tg.tgid, UID: uid, Status: status}, nil)
	}
	ts.mu.Lock()
	parent.notifyChildLocked()
	ts.mu.Unlock()
}

// checkItimersLocked queues the signals of expired interval timers and
// POSIX timers and (re)arms the Go timers that wake the process at the
// next expiry.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) checkItimersLocked(mono int64) {
	tg.checkPosixTimersLocked()
	for i := range tg.sigs.Itimers {
		it := &tg.sigs.Itimers[i]
		if it.Expiry == 0 {
			continue
		}
		if i != itimerReal && it.timer != nil && it.armedFor == it.Expiry {
			// Its poll has not fired: the process cannot have used the
			// time yet (armItimerLocked), and reading its CPU time costs
			// host calls.
			continue
		}
		now := tg.itimerClockLocked(i, mono)
		if now >= it.Expiry {
			tg.sigs.Pending.enqueue(sigInfo{Signo: int32(itimerSignals[i]), Code: siKernel})
			if it.Interval > 0 {
				missed := (now - it.Expiry) / it.Interval
				it.Expiry += (missed + 1) * it.Interval
			} else {
				it.Expiry = 0
				continue
			}
		}
		if it.timer == nil || it.armedFor != it.Expiry {
			tg.armItimerLocked(i, mono)
		}
	}
}

// minCPUTimerPoll bounds how often a CPU-time interval timer wakes the
// process to check it.
const minCPUTimerPoll = 200 * time.Microsecond

// armItimerLocked starts the Go timer that interrupts a thread of the
// process when timer which expires; the thread then queues the signal.
// ITIMER_REAL's Go timer fires at the expiry. A CPU-time timer's cannot
// know when the process will have used the time, so it fires when the
// process could have at the earliest (all threads running from now on),
// and the thread it interrupts re-arms it for what is left.
//
// Preconditions: tg.mu is held.
func (tg *ThreadGroup) armItimerLocked(which int, mono int64) {
	it := &tg.sigs.Itimers[which]
	if it.timer != nil {
		it.timer.Stop()
		it.timer = nil
	}
	if it.Expiry == 0 {
		return
	}
	it.armedFor = it.Expiry
	delay := time.Duration(it.Expiry - tg.itimerClockLocked(which, mono))
	if which != itimerReal {
		delay = max(delay/time.Duration(max(len(tg.tasks), 1)), minCPUTimerPoll)
	}
	// ITIMER_REAL's Go timer runs on the host's clock, which the kernel's
	// may trail a little (vdso_clock.go); like a CPU-time timer's, once
	// fired it is re-armed by the next check if the expiry is not reached.
	var tm *time.Timer
	tm = time.AfterFunc(delay, func() {
		// tm is set: the arming code held tg.mu until it was.
		tg.mu.Lock()
		if it.timer == tm {
			it.timer = nil // fired: the next check re-arms it
		}
		tg.mu.Unlock()
		tg.itimerWake()
	})
	it.timer = tm
}

// itimerWake interrupts one thread of the process (one that does not block
// the timer signals if any) so that it notices expired timers.
func (tg *ThreadGroup) itimerWake() {
	tg.mu.Lock()
	var wake *Task
	for _, o := range tg.tasks {
		if wake == nil || o.sig.Mask&sigBit(int(unix.SIGALRM)) == 0 {
			wake = o
		}
	}
	tg.mu.Unlock()
	if wake != nil {
		wake.interrupt()
	}
}

// dequeueSignalLocked removes and returns the next deliverable signal.
//
// Preconditions: tg.mu is held.
func (t *Task) dequeueSignalLocked() (sigInfo, bool) {
	for _, p := range []*sigPending{&t.sig.Pending, &t.tg.sigs.Pending} {
		ready := p.Set &^ t.sig.Mask
		if ready == 0 {
			continue
		}
		if ready&syncSignals != 0 {
			ready &= syncSignals
		}
		return p.dequeue(lowestSignal(ready)), true
	}
	return sigInfo{}, false
}

// handlePendingSignals is called by runApp just before the task returns to
// the application. It delivers pending signals (setting up a handler frame
// in t.regs, converting a pending syscall restart errno to EINTR when the
// handler does not ask for SA_RESTART) and returns a non-nil state when
// the task must not return to the application (runExit for a fatal
// signal).
//
// Preconditions: called by the task goroutine.
func (t *Task) handlePendingSignals() taskRunState {
	tg := t.tg
	tg.mu.Lock()
	if e := tg.sigs.ExecTask; e != nil && e != t {
		// Another thread is in execve: this one ends, as when Linux's
		// de_thread kills it, with its pending signals.
		tg.mu.Unlock()
		return &runExit{}
	}
	tg.checkItimersLocked(t.k.monotonicNow())
	if tg.sigs.Stopped {
		tg.mu.Unlock()
		// Park until SIGCONT, SIGKILL or an external stop interrupts;
		// the run loop then comes back here. An interrupted syscall
		// keeps its restart errno: once the process continues, a
		// signal with a handler may turn it into EINTR (sigsuspend
		// must return then, as on Linux), else it restarts. The memory
		// of an image just replaced by execve is given back first: an
		// allocation past --memory waits for it.
		t.startExecFree()
		t.block(nil)
		return stateApp
	}
	for {
		info, ok := t.dequeueSignalLocked()
		if !ok {
			break
		}
		signo := int(info.Signo)
		act := tg.sigs.Actions[signo-1]
		switch act.Handler {
		case sigIGN:
			continue
		case sigDFL:
			switch defaultActionOf(signo) {
			case actIgnore, actContinue:
				continue
			case actStop:
				tg.stopLocked(t, signo)
				tg.mu.Unlock()
				t.k.notifyParentJobControl(tg, cldStopped, int32(signo))
				return stateApp
			}
			tg.mu.Unlock()
			tg.exitGroup(ExitStatus{Signal: signo})
			return &runExit{}
		}
		if act.Flags&saResethand != 0 {
			tg.sigs.Actions[signo-1] = sigAction{}
		}
		oldMask := t.sig.Mask
		if t.sig.HaveSavedMask {
			oldMask = t.sig.SavedMask
			t.sig.HaveSavedMask = false
		}
		newMask := t.sig.Mask | act.Mask
		if act.Flags&saNodefer == 0 {
			newMask |= sigBit(signo)
		}
		t.sig.Mask = newMask &^ unblockable
		alt := t.sig
		tg.mu.Unlock()

		t.prepareRestartForHandler(act)
		if err := t.setupSignalFrame(info, act, oldMask, alt); err != nil {
			t.k.debugf("task %d: cannot set up the frame of signal %d: %v", t.tid, signo, err)
			tg.exitGroup(ExitStatus{Signal: int(unix.SIGSEGV)})
			return &runExit{}
		}
		return nil
	}
	if t.sig.HaveSavedMask {
		t.sig.Mask = t.sig.SavedMask
		t.sig.HaveSavedMask = false
	}
	tg.mu.Unlock()
	return nil
}

// prepareRestartForHandler settles an interrupted syscall before a handler
// runs: it restarts (registers rewound) with SA_RESTART or for
// ERESTARTNOINTR, and returns EINTR otherwise.
//
// Preconditions: called by the task goroutine.
func (t *Task) prepareRestartForHandler(act sigAction) {
	e := t.syscallRestartErrno()
	if e == 0 {
		return
	}
	restart := e == errRestartNoIntr || (e == errRestartSys && act.Flags&saRestart != 0)
	if restart {
		t.restartSyscallIfNeeded()
		return
	}
	t.haveSyscallReturn = false
	t.restart = restartBlock{}
	eintr := -int64(unix.EINTR)
	t.regs.Rax = uint64(eintr)
}

// The x86-64 signal frame (arch/x86/include/asm/sigframe.h): pretcode,
// then struct ucontext (flags, link, stack_t, struct sigcontext, sigset),
// then siginfo; the XSAVE area lies above it, 64-byte aligned.
const (
	ucFlagsOff    = 0
	ucLinkOff     = 8
	ucStackOff    = 16
	ucMcontextOff = 40
	sigcontextLen = 256
	ucSigmaskOff  = ucMcontextOff + sigcontextLen // 296
	ucontextLen   = ucSigmaskOff + 8              // 304
	frameUcOff    = 8
	frameInfoOff  = frameUcOff + ucontextLen // 312
	siginfoLen    = 128
	frameLen      = frameInfoOff + siginfoLen // 440
	redZone       = 128

	// uc_flags: UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS.
	ucFlags = 0x2 | 0x4
)

// sigcontext field offsets within uc_mcontext.
const (
	scR8 = 8 * iota
	scR9
	scR10
	scR11
	scR12
	scR13
	scR14
	scR15
	scRdi
	scRsi
	scRbp
	scRbx
	scRdx
	scRax
	scRcx
	scRsp
	scRip
	scEflags
	scSegs // cs, gs, fs, ss as u16
	scErr
	scTrapno
	scOldmask
	scCr2
	scFpstate
)

// eflags bits a signal handler may change through sigreturn.
const fixEflags = 0x50DD5

// marshalSiginfo writes info as a siginfo_t.
func marshalSiginfo(b []byte, info sigInfo) {
	if len(info.Raw) == siginfoLen {
		copy(b, info.Raw)
	}
	le := binary.LittleEndian
	le.PutUint32(b[0:], uint32(info.Signo))
	le.PutUint32(b[8:], uint32(info.Code))
	if len(info.Raw) == siginfoLen {
		return
	}
	switch {
	case info.Signo == int32(unix.SIGSEGV) || info.Signo == int32(unix.SIGBUS) ||
		info.Signo == int32(unix.SIGILL) || info.Signo == int32(unix.SIGFPE) || info.Signo == int32(unix.SIGTRAP):
		if info.Code > 0 && info.Code != siKernel {
			le.PutUint64(b[16:], info.Addr)
			return
		}
	}
	le.PutUint32(b[16:], uint32(info.Pid))
	le.PutUint32(b[20:], info.UID)
	if info.Signo == int32(unix.SIGCHLD) {
		le.PutUint32(b[24:], uint32(info.Status))
	} else {
		le.PutUint64(b[24:], info.Value)
	}
}

// onAltStack reports whether sp is inside the alternate stack.
func (s *taskSignals) onAltStack(sp uint64) bool {
	return s.AltFlags&ssDisable == 0 && s.AltSize != 0 && sp > s.AltSP && sp-s.AltSP <= s.AltSize
}

// buildSignalFrame returns the frame bytes for regs and where it and the
// XSAVE area go, given the stack pointer to start from.
func buildSignalFrame(r *registers, fpLen int, info sigInfo, oldMask uint64, alt taskSignals, onstack bool) (frame []byte, sp, fpAddr uint64) {
	sp = r.Rsp
	wasOnAlt := alt.onAltStack(sp)
	if onstack && alt.AltFlags&ssDisable == 0 && alt.AltSize != 0 && !wasOnAlt {
		sp = alt.AltSP + alt.AltSize
	} else {
		sp -= redZone
	}
	if fpLen > 0 {
		sp = (sp - uint64(fpLen)) &^ 63
		fpAddr = sp
	}
	sp = ((sp - frameLen) &^ 15) - 8

	frame = make([]byte, frameLen)
	le := binary.LittleEndian
	uc := frame[frameUcOff:]
	le.PutUint64(uc[ucFlagsOff:], ucFlags)
	le.PutUint64(uc[ucStackOff:], alt.AltSP)
	flags := uint32(alt.AltFlags)
	if wasOnAlt {
		flags |= ssOnstack
	}
	le.PutUint32(uc[ucStackOff+8:], flags)
	le.PutUint64(uc[ucStackOff+16:], alt.AltSize)
	sc := uc[ucMcontextOff:]
	for off, v := range map[int]uint64{
		scR8: r.R8, scR9: r.R9, scR10: r.R10, scR11: r.R11, scR12: r.R12, scR13: r.R13,
		scR14: r.R14, scR15: r.R15, scRdi: r.Rdi, scRsi: r.Rsi, scRbp: r.Rbp, scRbx: r.Rbx,
		scRdx: r.Rdx, scRax: r.Rax, scRcx: r.Rcx, scRsp: r.Rsp, scRip: r.Rip, scEflags: r.Eflags,
		scOldmask: oldMask, scFpstate: fpAddr,
	} {
		le.PutUint64(sc[off:], v)
	}
	le.PutUint16(sc[scSegs:], uint16(r.Cs))
	le.PutUint16(sc[scSegs+6:], uint16(r.Ss))
	if info.Signo == int32(unix.SIGSEGV) || info.Signo == int32(unix.SIGBUS) {
		le.PutUint64(sc[scTrapno:], 14) // page fault
		le.PutUint64(sc[scErr:], 4)     // user-mode access
		le.PutUint64(sc[scCr2:], info.Addr)
	}
	le.PutUint64(uc[ucSigmaskOff:], oldMask)
	marshalSiginfo(frame[frameInfoOff:], info)
	return frame, sp, fpAddr
}

// setupSignalFrame writes the handler frame to the application's stack
// and points the registers at the handler.
//
// Preconditions: called by the task goroutine.
func (t *Task) setupSignalFrame(info sigInfo, act sigAction, oldMask uint64, alt taskSignals) error {
	fpState := t.fpState()
	frame, sp, fpAddr := buildSignalFrame(&t.regs, len(fpState), info, oldMask, alt, act.Flags&saOnstack != 0)
	binary.LittleEndian.PutUint64(frame[0:], act.Restorer)
	mm := t.tg.mm
	if len(fpState) > 0 {
		if err := mm.CopyOut(fpAddr, fpState); err != nil {
			return err
		}
	}
	if err := mm.CopyOut(sp, frame); err != nil {
		return err
	}
	t.regs.Rip = act.Handler
	t.regs.Rsp = sp
	t.regs.Rdi = uint64(info.Signo)
	t.regs.Rsi = sp + frameInfoOff
	t.regs.Rdx = sp + frameUcOff
	t.regs.Rax = 0
	t.regs.Eflags &^= clearOnHandlerEflags
	t.regs.Cs, t.regs.Ss = userCS, userSS
	// Like Linux, the handler starts with the initial floating point state
	// (round to nearest, exceptions masked); the interrupted one is in the
	// frame for sigreturn. One frame is set up per return to the
	// application, so the handler runs (and fpState is full-sized again)
	// before another could be.
	t.setFPState(nil)
	return nil
}

// clearOnHandlerEflags are DF, TF and RF, cleared when a handler starts.
const clearOnHandlerEflags uint64 = 0x400 | 0x100 | 0x10000

func init() {
	sendExternalSignal = func(tg *ThreadGroup, sig int) {
		info := sigInfo{Signo: int32(sig), Code: siUser}
		if sig == int(unix.SIGKILL) || !tg.k.stopRequested() {
			tg.sendSignal(info, nil)
			return
		}
		// A save or pause is in progress: queue the signal once it ends,
		// so that it does not change state a saver is reading, without
		// making the sender wait.
		go func() {
			tg.k.waitNotStopped()
			tg.sendSignal(info, nil)
		}()
	}
}

// waitNotStopped waits until no stop (save, pause) is requested.
func (k *Kernel) waitNotStopped() {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	for k.stopCount > 0 {
		k.stopCond.Wait()
	}
}

// lowestSignal returns the lowest-numbered signal in the non-empty set.
func lowestSignal(set uint64) int { return bits.TrailingZeros64(set) + 1 }
