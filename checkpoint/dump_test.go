package checkpoint

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSentryDumpOnSIGUSR1: SIGUSR1 to a detached sentry writes its tasks
// (each with the stub thread it runs on) and every goroutine's stack to
// sentry.log, and the sandbox goes on.
func TestSentryDumpOnSIGUSR1(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "cowfork"), "loop")
	// Once both have run.
	deadline := time.Now().Add(60 * time.Second)
	for n := 2; len(firstTicks(t, lines(out))) < 2; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: %q, want both processes ticking", lines(out))
		}
		waitLines(t, out, n)
	}
	pid, _ := e.meta(id)["pid"].(float64)
	if err := syscall.Kill(int(pid), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	var log string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(log, "dump ends"); {
		if time.Now().After(deadline) {
			t.Fatalf("sentry.log after SIGUSR1: %q, want a dump", log)
		}
		time.Sleep(20 * time.Millisecond)
		log = string(e.sentryLog(id))
	}
	// Both processes, each on a stub thread of its own.
	task := regexp.MustCompile(`(?m)^task (\d+) \(process (\d+), "cowfork"\): stub thread ([1-9]\d*), sentry thread [1-9]\d*,`)
	if got := task.FindAllStringSubmatch(log, -1); len(got) != 2 || got[0][3] == got[1][3] {
		t.Errorf("task lines %q in sentry.log %q, want two tasks on two stub threads", got, log)
	}
	for _, want := range []string{"tasks: 2 live, 0 parked", "goroutine ", "(*Task).run"} {
		if !strings.Contains(log, want) {
			t.Errorf("sentry.log has no %q: %q", want, log)
		}
	}
	n := len(lines(out))
	waitLines(t, out, n+2)
	if m := e.meta(id); m["status"] != "running" {
		t.Errorf("after the dump the sandbox is %v, want running", m["status"])
	}
}
