package kernel

import (
	"os/exec"
	"testing"
	"time"
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
	tg.sigs.UserTime, tg.sigs.SysTime = 7, 5
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
