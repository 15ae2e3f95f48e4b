package kernel

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Pause stops every task goroutine at a clean boundary and returns once all
// of them are parked: each sits at the top of its run loop, either about
// to enter the application with a consistent register file, or after a
// syscall that was interrupted and will restart (a blocking read runs
// again; nanosleep resumes from its restart block with the remaining time,
// since its deadline is kernel-monotonic). After Pause returns no task
// goroutine mutates kernel state until Unpause; tasks created meanwhile
// park before their first instruction.
//
// Once paused, the file cache has given back its retained pages
// (mm_filecache.go): a save that follows writes no page that no mapping
// holds.
//
// Pauses nest: each Pause needs its own Unpause. Pause on a kernel whose
// program has exited returns at once.
func (k *Kernel) Pause() {
	k.requestStop()
	k.waitStopped()
	k.dropRetained()
}

// PauseContext is Pause with a bound: if ctx ends before every task
// goroutine is parked, the stop is withdrawn (tasks resume as if Pause had
// not been called) and the error says how many tasks did not stop.
func (k *Kernel) PauseContext(ctx context.Context) error {
	k.requestStop()
	stop := context.AfterFunc(ctx, func() {
		// Wake waitStoppedOrDone so it sees ctx is done.
		k.stopMu.Lock()
		k.stopCond.Broadcast()
		k.stopMu.Unlock()
	})
	defer stop()
	k.stopMu.Lock()
	for k.stoppedTasks < k.liveTasks && ctx.Err() == nil {
		k.stopCond.Wait()
	}
	missing := k.liveTasks - k.stoppedTasks
	k.stopMu.Unlock()
	if missing > 0 {
		k.releaseStop()
		return fmt.Errorf("pause: %d of the sandbox's threads did not stop: %w", missing, ctx.Err())
	}
	k.dropRetained()
	return nil
}

// dropRetained gives back the file cache's retained pages.
//
// Preconditions: the kernel is paused.
func (k *Kernel) dropRetained() {
	if k.mf != nil {
		k.TrimFileCache()
	}
}

// TrimFileCache gives back the pages the file cache retains for no
// mapping (mm_filecache.go), as a pause does, while the sandbox runs, and
// returns their memory in bytes. A save calls it before pausing, so that
// the pause has (almost) nothing left to give back: up to 32 MiB of them
// take milliseconds.
func (k *Kernel) TrimFileCache() uint64 {
	return k.mf.files.dropRetained(k.mf)
}

// Unpause undoes one Pause (or successful PauseContext); the tasks resume
// when no pause remains.
func (k *Kernel) Unpause() {
	if k.pub != nil {
		k.pub.thaw() // a save froze it
	}
	k.releaseStop()
}

// Paused reports whether a pause is in effect and every live task
// goroutine is parked.
func (k *Kernel) Paused() bool {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	return k.stopCount > 0 && k.stoppedTasks >= k.liveTasks
}

// ErrNoInit means the sandbox's init process has exited.
var ErrNoInit = errors.New("init process has exited")

// SignalInit sends signal sig (1..64) from outside the sandbox (snap kill)
// to the init process, PID 1, through sendExternalSignal.
func (k *Kernel) SignalInit(sig int) error {
	if sig < 1 || sig > 64 {
		return fmt.Errorf("signal %d: %w", sig, unix.EINVAL)
	}
	k.tasks.mu.Lock()
	init := k.tasks.tids[1]
	k.tasks.mu.Unlock()
	if init == nil || init.tg.isExiting() {
		return ErrNoInit
	}
	sendExternalSignal(init.tg, sig)
	return nil
}

// sendExternalSignal delivers a signal sent from outside the sandbox to
// process tg. The signal code replaces it from an init function of its own
// file (sendExternalSignal = ...) to queue the signal as kill(2) from an
// unknown sender would (SI_USER, pid 0), so that handlers, masks and
// pending sets apply. Until then the default action is taken at once:
// nothing for SIGCHLD, SIGCONT, SIGURG and SIGWINCH, termination by the
// signal for every other one (the stop signals included).
var sendExternalSignal = func(tg *ThreadGroup, sig int) {
	switch unix.Signal(sig) {
	case unix.SIGCHLD, unix.SIGCONT, unix.SIGURG, unix.SIGWINCH:
		return
	}
	tg.exitGroup(ExitStatus{Signal: sig})
}
