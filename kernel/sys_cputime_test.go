package kernel

import (
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestProcessCPUNow reads the CPU clock of another host process, as the
// kernel does for a stub thread: it grows while the process spins, stays
// put while it is stopped, and reads 0 once the process is gone.
func TestProcessCPUNow(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Process.Kill()
	first := processCPUNow(pid)
	deadline := time.Now().Add(10 * time.Second)
	for processCPUNow(pid) <= first {
		if time.Now().After(deadline) {
			t.Fatalf("processCPUNow(%d) stayed at %d for 10 s, want it to grow", pid, first)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if got := processCPUNow(pid); got != 0 {
		t.Errorf("processCPUNow(%d) after exit = %d, want 0", pid, got)
	}
}

// TestItimerClock checks which clock each interval timer follows.
func TestItimerClock(t *testing.T) {
	tg := &ThreadGroup{}
	tg.sigs.ExitedUser, tg.sigs.SysTime = 7, 5 // no live threads: what exited threads had
	for _, tc := range []struct {
		which int
		want  int64
	}{
		{itimerReal, 1000},
		{itimerVirtual, 7},
		{itimerProf, 12},
	} {
		if got := tg.itimerClockLocked(tc.which, 1000); got != tc.want {
			t.Errorf("itimerClockLocked(%d, 1000) = %d, want %d", tc.which, got, tc.want)
		}
	}
}

// TestSentryThreadCPUNow reads the CPU clock of another OS thread of this
// process by its thread ID, as the kernel reads a task goroutine's for its
// system time: it grows while the goroutine locked to that thread spins,
// and stands still while the goroutine waits (the thread sleeps; no other
// goroutine runs on it).
func TestSentryThreadCPUNow(t *testing.T) {
	tids := make(chan int)
	spin, wait, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- unix.Gettid()
		for {
			select {
			case <-spin:
			case <-done:
				return
			default:
				continue // spinning until told to wait
			}
			<-wait // waiting: the thread sleeps
		}
	}()
	tid := <-tids
	defer close(done)
	first := sentryThreadCPUNow(tid)
	deadline := time.Now().Add(10 * time.Second)
	for sentryThreadCPUNow(tid)-first < int64(20*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("sentryThreadCPUNow(%d) grew from %d to %d in 10 s of spinning, want 20 ms more", tid, first, sentryThreadCPUNow(tid))
		}
		time.Sleep(time.Millisecond)
	}
	spin <- struct{}{}
	time.Sleep(10 * time.Millisecond) // the last loop round ends
	asleep := sentryThreadCPUNow(tid)
	time.Sleep(100 * time.Millisecond)
	if got := sentryThreadCPUNow(tid) - asleep; got > int64(5*time.Millisecond) {
		t.Errorf("sentryThreadCPUNow(%d) grew by %v while its goroutine waited 100 ms, want < 5ms", tid, time.Duration(got))
	}
	wait <- struct{}{}
}
