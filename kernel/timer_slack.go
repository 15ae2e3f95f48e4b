package kernel

import "golang.org/x/sys/unix"

// Timer slack. When an idle Go thread finds a goroutine in the run-next slot
// of a P that is running (a fork's child task, readied by its parent just
// before the parent blocks in wait4), the Go scheduler backs off with
// usleep(3) before it takes it. Linux lets a sleep end as late as the
// thread's timer slack, 50 us unless set, and a usleep(3) takes about 72 us
// on this kind of host (15 us with a slack of 1 ns). The threads that run
// task goroutines therefore ask for the smallest slack: a thread keeps it
// when it goes back to the Go scheduler (Platform.ReleaseThread) and passes
// it to the threads it creates, so that in a running sandbox the threads
// that take a new task goroutine have it too. The sandboxed program's own
// sleeps are the sentry's timers and are not affected.
func setTimerSlack() {
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}
