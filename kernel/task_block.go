package kernel

import (
	"errors"
	"time"
)

// errInterrupted is returned by the blocking helpers when the task was
// interrupted. Syscalls turn it into one of the restart errnos.
var errInterrupted = errors.New("task interrupted")

// interrupt wakes the task goroutine: a blocking helper returns
// errInterrupted, a vfs operation given cancelChan returns, and a Switch in
// progress returns ErrInterrupted. It may be called from any goroutine.
func (t *Task) interrupt() {
	t.mu.Lock()
	t.interruptPending = true
	if t.cancel != nil {
		close(t.cancel)
		t.cancel = nil
	}
	ctx := t.ctx
	t.mu.Unlock()
	if ctx != nil {
		ctx.Interrupt()
	}
}

// clearInterrupt consumes a pending interrupt.
//
// Preconditions: called by the task goroutine, before it re-checks what an
// interrupt may announce (exit, signals, stops).
func (t *Task) clearInterrupt() {
	t.mu.Lock()
	t.interruptPending = false
	t.mu.Unlock()
}

// closedChan is always closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// cancelChan returns a channel that is closed when the task is interrupted
// (already closed if an interrupt is pending). vfs operations that block
// take it.
//
// Preconditions: called by the task goroutine.
func (t *Task) cancelChan() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.interruptPending {
		return closedChan
	}
	if t.cancel == nil {
		t.cancel = make(chan struct{})
	}
	return t.cancel
}

// block waits until ch is ready (closed or sent on) or the task is
// interrupted (errInterrupted).
//
// Preconditions: called by the task goroutine.
func (t *Task) block(ch <-chan struct{}) error {
	cancel := t.cancelChan()
	select {
	case <-ch:
		return nil
	case <-cancel:
		return errInterrupted
	}
}

// blockUntil waits until ch is ready (nil: never), the kernel monotonic
// clock reaches deadline (nanoseconds; nil error, timedOut true), or the
// task is interrupted (errInterrupted).
//
// Preconditions: called by the task goroutine.
func (t *Task) blockUntil(ch <-chan struct{}, deadline int64) (timedOut bool, err error) {
	cancel := t.cancelChan()
	// The Go timer runs on the host's clock, the kernel's clock may run a
	// little slower (vdso_clock.go): wait again until it has reached the
	// deadline too.
	for {
		d := deadline - t.k.monotonicNow()
		if d <= 0 {
			select {
			case <-ch:
				return false, nil
			default:
				return true, nil
			}
		}
		timer := time.NewTimer(time.Duration(d))
		select {
		case <-ch:
			timer.Stop()
			return false, nil
		case <-cancel:
			timer.Stop()
			return false, errInterrupted
		case <-timer.C:
		}
	}
}
