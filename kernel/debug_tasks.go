package kernel

import (
	"fmt"
	"io"
	"sort"
)

// WriteTasks writes what a person looking into a sandbox that makes no
// progress wants to see of its tasks (a detached sentry writes it to its
// log on SIGUSR1, beside every goroutine's stack): the pause state, then
// one line per live task with its thread and process IDs, name, the host
// process of the stub thread it last ran on (0: it never ran since the
// start or the restore) and the sentry's OS thread it is locked to, its
// blocked and pending signals, and whether its process is exiting or
// stopped. It reads only what its locks protect, so it is safe while the
// tasks run.
func (k *Kernel) WriteTasks(w io.Writer) {
	k.stopMu.Lock()
	live, parked, stops := k.liveTasks, k.stoppedTasks, k.stopCount
	k.stopMu.Unlock()
	fmt.Fprintf(w, "tasks: %d live, %d parked, %d stop requests\n", live, parked, stops)
	type entry struct {
		tid int32
		t   *Task
	}
	// The thread IDs as the task set holds them (an execve may change
	// one).
	k.tasks.mu.Lock()
	tasks := make([]entry, 0, len(k.tasks.tids))
	for tid, t := range k.tasks.tids {
		tasks = append(tasks, entry{tid, t})
	}
	k.tasks.mu.Unlock()
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].tid < tasks[j].tid })
	for _, e := range tasks {
		t := e.t
		t.mu.Lock()
		name := t.name
		t.mu.Unlock()
		tg := t.tg
		tg.mu.Lock()
		line := fmt.Sprintf("task %d (process %d, %q): stub thread %d, sentry thread %d, blocked %#x, pending %#x (process %#x), exiting %v, stopped %v",
			e.tid, tg.tgid, name, t.sig.ruStub, t.sig.sysTID, t.sig.Mask, t.sig.Pending.Set, tg.sigs.Pending.Set, tg.exiting, tg.sigs.Stopped)
		tg.mu.Unlock()
		fmt.Fprintln(w, line)
	}
}
