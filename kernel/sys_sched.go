package kernel

import (
	"context"
	"runtime"

	"golang.org/x/sys/unix"
)

// schedAttrs are a thread's scheduling attributes. The host schedules the
// sentry's threads as it likes: these are what the application set and
// reads back, inherited by new threads and processes as on Linux.
//
// +stateify savable
type schedAttrs struct {
	// Nice is the nice value, -20 to 19.
	Nice int32
	// Policy is SCHED_OTHER, SCHED_BATCH or SCHED_IDLE; ResetOnFork is
	// SCHED_RESET_ON_FORK.
	Policy      int32
	ResetOnFork bool
	// TimerSlack and DefaultTimerSlack are PR_SET_TIMERSLACK's value and
	// the value 0 restores, in nanoseconds.
	TimerSlack, DefaultTimerSlack uint64
	// Affinity is sched_setaffinity's mask, one bit per CPU; nil means
	// every CPU of the sandbox.
	Affinity []byte
	// MemPolicy is set_mempolicy's policy (sys_numa.go).
	MemPolicy memPolicy
	// Personality is the execution domain and its flags (personality(2)).
	Personality uint32
}

// defaultTimerSlack is Linux's initial timer slack, in nanoseconds.
const defaultTimerSlack = 50000

// initialSchedAttrs are the attributes of the sandbox's first thread.
func initialSchedAttrs() schedAttrs {
	return schedAttrs{TimerSlack: defaultTimerSlack, DefaultTimerSlack: defaultTimerSlack}
}

// schedForClone returns the attributes a new thread or process made by t
// starts with, as on Linux: t's, with the timer slack made the new default
// and, under SCHED_RESET_ON_FORK, a negative nice value reset to 0 and the
// flag cleared (it would also reset a real-time policy, which the sandbox
// never has).
func (t *Task) schedForClone() schedAttrs {
	t.mu.Lock()
	s := t.sched
	t.mu.Unlock()
	s.Affinity = append([]byte(nil), s.Affinity...)
	s.DefaultTimerSlack = s.TimerSlack
	if s.ResetOnFork {
		s.ResetOnFork = false
		s.Nice = max(s.Nice, 0)
	}
	return s
}

// Scheduling policies (linux/sched.h).
const (
	schedOther       = 0
	schedFIFO        = 1
	schedRR          = 2
	schedBatch       = 3
	schedIdle        = 5
	schedDeadline    = 6
	schedResetOnFork = 0x40000000
)

// Targets of getpriority and setpriority (sys/resource.h).
const (
	prioProcess = 0
	prioPgrp    = 1
	prioUser    = 2
)

// priorityTargets returns the threads getpriority and setpriority act on:
// a thread, every thread of a process group, or every thread of a user.
// ESRCH if there are none.
func (t *Task) priorityTargets(which, who int32) ([]*Task, error) {
	if which != prioProcess && which != prioPgrp && which != prioUser {
		return nil, unix.EINVAL
	}
	if which == prioProcess {
		o, err := t.taskByTID(who)
		if err != nil {
			return nil, err
		}
		return []*Task{o}, nil
	}
	t.tg.mu.Lock()
	pgid, uid := t.tg.pgid, t.creds.UID
	t.tg.mu.Unlock()
	if who != 0 {
		pgid, uid = who, uint32(who)
	}
	ts := t.k.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []*Task
	for _, o := range ts.tids {
		o.tg.mu.Lock()
		match := (which == prioPgrp && o.tg.pgid == pgid) || (which == prioUser && o.creds.UID == uid)
		o.tg.mu.Unlock()
		if match {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		return nil, unix.ESRCH
	}
	return out, nil
}

// sysGetpriority returns 20 minus the lowest nice value of the targets,
// as the raw Linux syscall does (the C library turns it back into nice).
func sysGetpriority(t *Task, a *sysArgs) (uint64, error) {
	targets, err := t.priorityTargets(a.Int(0), a.Int(1))
	if err != nil {
		return 0, err
	}
	best := int32(0)
	for _, o := range targets {
		o.mu.Lock()
		best = max(best, 20-o.sched.Nice)
		o.mu.Unlock()
	}
	return uint64(best), nil
}

// sysSetpriority sets the nice value of the targets, clamped to -20..19.
// Lowering it needs CAP_SYS_NICE (effective user 0 in the sandbox) or
// RLIMIT_NICE room, as on Linux: EACCES otherwise.
func sysSetpriority(t *Task, a *sysArgs) (uint64, error) {
	targets, err := t.priorityTargets(a.Int(0), a.Int(1))
	if err != nil {
		return 0, err
	}
	nice := min(max(a.Int(2), -20), 19)
	mayRaise := t.canRaisePriority(nice) // before any Task.mu: it takes ThreadGroup.mu
	for _, o := range targets {
		o.mu.Lock()
		if nice < o.sched.Nice && !mayRaise {
			err = unix.EACCES
		} else {
			o.sched.Nice = nice
		}
		o.mu.Unlock()
	}
	return 0, err
}

// canRaisePriority reports whether t may set a nice value of nice below
// the current one: with CAP_SYS_NICE or within RLIMIT_NICE.
func (t *Task) canRaisePriority(nice int32) bool {
	if t.hasCapSysNice() {
		return true
	}
	t.tg.mu.Lock()
	defer t.tg.mu.Unlock()
	return uint64(20-nice) <= t.tg.limits[unix.RLIMIT_NICE].Cur
}

// schedTarget returns the thread a sched_* call names: pid 0 is the
// caller; a negative pid is EINVAL.
func (t *Task) schedTarget(pid int32) (*Task, error) {
	if pid < 0 {
		return nil, unix.EINVAL
	}
	return t.taskByTID(pid)
}

func sysSchedGetscheduler(t *Task, a *sysArgs) (uint64, error) {
	o, err := t.schedTarget(a.Int(0))
	if err != nil {
		return 0, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	p := uint64(o.sched.Policy)
	if o.sched.ResetOnFork {
		p |= schedResetOnFork
	}
	return p, nil
}

// sysSchedGetparam reports sched_priority, which is 0 for every policy
// the sandbox runs.
func sysSchedGetparam(t *Task, a *sysArgs) (uint64, error) {
	if a[1] == 0 {
		return 0, unix.EINVAL
	}
	if _, err := t.schedTarget(a.Int(0)); err != nil {
		return 0, err
	}
	return 0, t.copyOutUint32(a[1], 0)
}

func sysSchedSetscheduler(t *Task, a *sysArgs) (uint64, error) {
	if a.Int(1) < 0 {
		return 0, unix.EINVAL
	}
	return 0, t.setScheduler(a.Int(0), a.Int(1), a[2])
}

// sysSchedSetparam changes the priority within the current policy.
func sysSchedSetparam(t *Task, a *sysArgs) (uint64, error) {
	return 0, t.setScheduler(a.Int(0), -1, a[1])
}

// setScheduler implements sched_setscheduler (policy -1: keep the policy,
// as sched_setparam). The time-sharing policies take priority 0. The
// real-time ones would need the host's real-time scheduling, which the
// sentry never gives a sandbox: EPERM whatever the user, as for a caller
// without CAP_SYS_NICE.
func (t *Task) setScheduler(pid, policy int32, paramAddr uint64) error {
	if paramAddr == 0 || pid < 0 {
		return unix.EINVAL
	}
	prio, err := t.copyInUint32(paramAddr)
	if err != nil {
		return err
	}
	o, err := t.taskByTID(pid)
	if err != nil {
		return err
	}
	reset := false
	if policy >= 0 {
		reset = policy&schedResetOnFork != 0
		policy &^= schedResetOnFork
	}
	switch policy {
	case -1, schedOther, schedBatch, schedIdle:
		if prio != 0 {
			return unix.EINVAL
		}
	case schedFIFO, schedRR:
		if prio < 1 || prio > 99 {
			return unix.EINVAL
		}
		return unix.EPERM
	default:
		return unix.EINVAL
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if policy >= 0 {
		o.sched.Policy, o.sched.ResetOnFork = policy, reset
	}
	return nil
}

// sysSchedGetPriorityMax and sysSchedGetPriorityMin give the range of
// sched_priority for a policy, as Linux.
func sysSchedGetPriorityMax(_ *Task, a *sysArgs) (uint64, error) {
	switch a.Int(0) {
	case schedFIFO, schedRR:
		return 99, nil
	case schedOther, schedBatch, schedIdle, schedDeadline:
		return 0, nil
	}
	return 0, unix.EINVAL
}

func sysSchedGetPriorityMin(_ *Task, a *sysArgs) (uint64, error) {
	switch a.Int(0) {
	case schedFIFO, schedRR:
		return 1, nil
	case schedOther, schedBatch, schedIdle, schedDeadline:
		return 0, nil
	}
	return 0, unix.EINVAL
}

// hostCPUs are the CPUs the sentry may run on and the size of the host
// kernel's CPU mask in bytes (what its sched_getaffinity returns); the
// sandbox's CPUs are these.
type hostCPUs struct {
	mask []byte
	size int
}

// readHostCPUs reads the process's CPU affinity. It must run before any
// thread of the sentry is pinned to one CPU (cpu_pin.go), so Kernel.New
// and the restore call it. If the host will not say, the sandbox has the
// CPUs the Go runtime counted.
func readHostCPUs() hostCPUs {
	buf := make([]byte, 8192)
	n, err := rawSchedGetaffinity(buf)
	if err != nil || n == 0 || n > len(buf) {
		ncpu := runtime.NumCPU()
		size := (ncpu + 63) / 64 * 8
		mask := make([]byte, size)
		for i := range ncpu {
			mask[i/8] |= 1 << (i % 8)
		}
		return hostCPUs{mask: mask, size: size}
	}
	return hostCPUs{mask: buf[:n:n], size: n}
}

// affinityOf returns o's CPU mask: its own, limited to the sandbox's CPUs,
// or all the sandbox's CPUs.
func (t *Task) affinityOf(o *Task) []byte {
	cpus := t.k.cpus.mask
	out := append([]byte(nil), cpus...)
	o.mu.Lock()
	own := o.sched.Affinity
	o.mu.Unlock()
	if own == nil {
		return out
	}
	some := false
	for i := range out {
		if i < len(own) {
			out[i] &= own[i]
		} else {
			out[i] = 0
		}
		some = some || out[i] != 0
	}
	if !some {
		return append(out[:0], cpus...) // restored on a host without those CPUs
	}
	return out
}

// sysSchedGetaffinity reports the thread's CPUs as Linux: the buffer must
// hold the kernel's mask and be a multiple of 8 bytes; the result is the
// number of bytes written.
func sysSchedGetaffinity(t *Task, a *sysArgs) (uint64, error) {
	size := uint64(t.k.cpus.size)
	if a[1] < size || a[1]%8 != 0 {
		return 0, unix.EINVAL
	}
	o, err := t.taskByTID(a.Int(0))
	if err != nil {
		return 0, err
	}
	return size, t.tg.mm.CopyOut(a[2], t.affinityOf(o))
}

// sysSchedSetaffinity records the thread's CPUs (the host still places the
// sentry's threads itself). A mask without any of the sandbox's CPUs is
// EINVAL, as on Linux.
func sysSchedSetaffinity(t *Task, a *sysArgs) (uint64, error) {
	cpus := t.k.cpus.mask
	mask := make([]byte, len(cpus))
	if err := t.tg.mm.CopyIn(a[2], mask[:min(uint64(len(mask)), a[1])]); err != nil {
		return 0, err
	}
	o, err := t.taskByTID(a.Int(0))
	if err != nil {
		return 0, err
	}
	some := false
	for i := range mask {
		some = some || mask[i]&cpus[i] != 0
	}
	if !some {
		return 0, unix.EINVAL
	}
	o.mu.Lock()
	o.sched.Affinity = mask
	o.mu.Unlock()
	return 0, nil
}

// personalityQuery is the argument that only reads the personality.
const personalityQuery = 0xffffffff

// sysPersonality sets the thread's personality and returns the previous
// one; 0xffffffff only reads it. Every value is accepted and kept, as on
// Linux, but none changes how the sandbox behaves.
func sysPersonality(t *Task, a *sysArgs) (uint64, error) {
	p := uint32(a[0])
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.sched.Personality
	if p != personalityQuery {
		t.sched.Personality = p
	}
	return uint64(old), nil
}

// setTimerSlack implements PR_SET_TIMERSLACK: 0 restores the default.
// Sleeps are not made longer by it.
func (t *Task) setTimerSlack(ns uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ns == 0 {
		ns = t.sched.DefaultTimerSlack
	}
	t.sched.TimerSlack = ns
}

// timerSlack implements PR_GET_TIMERSLACK.
func (t *Task) timerSlack() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sched.TimerSlack
}

// afterLoad gives threads saved before the timer slack was kept Linux's
// default one. Invoked by stateify.
func (s *schedAttrs) afterLoad(context.Context) {
	if s.DefaultTimerSlack == 0 {
		s.TimerSlack, s.DefaultTimerSlack = defaultTimerSlack, defaultTimerSlack
	}
}

// sysSchedRRGetInterval reports a thread's round-robin time slice. Every
// thread of the sandbox has a time-sharing policy (real-time ones are
// EPERM), for which Linux reports the fair scheduler's slice in whole
// ticks: that depends on the host's tick rate and CPU count, so the
// sentry asks the host for its own time-sharing thread's and reports
// that, as a native program on the same machine gets it.
func sysSchedRRGetInterval(t *Task, a *sysArgs) (uint64, error) {
	if _, err := t.schedTarget(a.Int(0)); err != nil {
		return 0, err
	}
	ns, err := hostRRInterval()
	if err != nil {
		return 0, err
	}
	return 0, t.copyOutTimespec(a[1], ns)
}
