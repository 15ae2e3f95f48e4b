package kernel

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestProcessHoldingPIDExiting: a child whose last thread has left the task set
// but which is not marked a zombie yet (its exit is between the two) still
// has its pid: pidfd_open finds it, as it finds a zombie; a pid nobody
// has is ESRCH.
func TestProcessHoldingPIDExiting(t *testing.T) {
	task := newUnitTask(t)
	for _, zombie := range []bool{false, true} {
		child := &ThreadGroup{k: task.k, tgid: 4242, parent: task.tg, zombie: zombie}
		ts := task.k.tasks
		ts.mu.Lock()
		task.tg.children = []*ThreadGroup{child}
		ts.mu.Unlock()
		if got, err := task.processHoldingPID(4242); err != nil || got != child {
			t.Errorf("processHoldingPID(child, zombie %v) = %p, %v, want %p", zombie, got, err, child)
		}
	}
	if _, err := task.processHoldingPID(4343); !errors.Is(err, unix.ESRCH) {
		t.Errorf("processHoldingPID(unknown pid) = %v, want ESRCH", err)
	}
}
