package kernel

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/internal/ctest"
	"snapshotter/internal/prereq"
)

// Test programs for Pause, compiled with gcc -static at test time.
var pausePrograms = map[string]string{
	// spin: counts in memory in user mode, printing a line every 2^24
	// iterations.
	"spin": `#include <stdio.h>
int main(void) {
	volatile unsigned long n = 0;
	for (;;) {
		if ((++n & 0xffffff) == 0) { printf("spin %lu\n", n >> 24); fflush(stdout); }
	}
}`,
	// sleep: nanosleep 50 ms in a loop (resuming after EINTR), checking
	// that no sleep is cut short.
	"sleep": `#include <errno.h>
#include <stdio.h>
#include <time.h>
static long long now(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec * 1000000000LL + ts.tv_nsec; }
int main(void) {
	for (int k = 1;; k++) {
		long long start = now();
		struct timespec req = {0, 50000000}, rem;
		while (nanosleep(&req, &rem) != 0) { if (errno != EINTR) return 2; req = rem; }
		if (now() - start < 50000000) { printf("SHORT SLEEP\n"); fflush(stdout); return 3; }
		printf("slept %d\n", k); fflush(stdout);
	}
}`,
	// reexec: execs itself with its argument plus one, for ever, and
	// prints every 20th.
	"reexec": `#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 0;
	if (n % 20 == 0) { printf("exec %ld\n", n); fflush(stdout); }
	char next[32];
	snprintf(next, sizeof next, "%ld", n + 1);
	execl(argv[0], argv[0], next, (char *)0);
	return 2;
}`,
	// echo: reads lines from stdin and echoes them until EOF.
	"echo": `#include <stdio.h>
#include <unistd.h>
int main(void) {
	char buf[256];
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n <= 0) return n < 0 ? 2 : 0;
		write(1, buf, n);
	}
}`,
}

// buildPauseProgram compiles pausePrograms[name] into a temporary directory.
func buildPauseProgram(t *testing.T, name string) string {
	t.Helper()
	return ctest.Source(t, "gcc", name, pausePrograms[name], "-static", "-O2")
}

// pauseSandbox is a running program with its stdio on pipes.
type pauseSandbox struct {
	k     *Kernel
	lines chan string
	stdin *os.File
}

// stdioPipes makes a sandbox's stdin pipe (the sandbox reads inR) and
// stdout pipe (the sandbox writes outW); the caller closes them.
func stdioPipes(tb testing.TB) (inR, inW, outR, outW *os.File) {
	tb.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	outR, outW, err = os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		tb.Fatal(err)
	}
	return inR, inW, outR, outW
}

// scanLines sends each line of r on the returned channel (buffered for n
// lines) until r ends, then closes the channel and r.
func scanLines(r io.ReadCloser, n int) chan string {
	lines := make(chan string, n)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		r.Close()
	}()
	return lines
}

func startPauseSandbox(t *testing.T, name string) *pauseSandbox {
	t.Helper()
	bin := buildPauseProgram(t, name)
	k, err := New(Config{})
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			prereq.Missing(t, "ptrace not permitted: %v", err)
		}
		t.Fatalf("New() = %v", err)
	}
	inR, inW, outR, outW := stdioPipes(t)
	s := &pauseSandbox{k: k, lines: scanLines(outR, 1024), stdin: inW}
	if err := k.Start(StartOptions{Argv: []string{bin}, Stdin: inR, Stdout: outW, Stderr: outW}); err != nil {
		t.Fatalf("Start(%s) = %v", name, err)
	}
	// The kernel uses the host files as they are: close them only after
	// the program has ended (outW's close then ends the output reader).
	t.Cleanup(func() {
		k.SignalInit(int(unix.SIGKILL))
		k.Wait()
		inW.Close()
		inR.Close()
		outW.Close()
		k.Release()
	})
	return s
}

// next returns the next output line, failing after a generous timeout.
func (s *pauseSandbox) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			t.Fatalf("program output ended")
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatalf("no output from the program in 60 s")
	}
	return ""
}

// memoryHash hashes every allocated range of the memory file.
func memoryHash(t *testing.T, k *Kernel) [32]byte {
	t.Helper()
	h := sha256.New()
	for _, r := range k.mf.Allocated() {
		b, err := k.mf.Bytes(r.Start, r.Length())
		if err != nil {
			t.Fatalf("Bytes(%#x, %#x) = %v", r.Start, r.Length(), err)
		}
		h.Write(b)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// initTask returns PID 1.
func initTask(k *Kernel) *Task {
	k.tasks.mu.Lock()
	defer k.tasks.mu.Unlock()
	return k.tasks.tids[1]
}

// pauseInSyscall pauses the kernel until the init task is parked in one of
// the syscalls nrs (the program spends most of its time there, but a pause
// may also land between syscalls: then it resumes and tries again).
func pauseInSyscall(t *testing.T, k *Kernel, nrs ...uint64) *Task {
	t.Helper()
	for attempt := 0; attempt < 500; attempt++ {
		k.Pause()
		task := initTask(k)
		for _, nr := range nrs {
			if task.regs.OrigRax == nr && task.haveSyscallReturn {
				return task
			}
		}
		k.Unpause()
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("the program never paused in syscalls %v", nrs)
	return nil
}

func TestPauseUserMode(t *testing.T) {
	s := startPauseSandbox(t, "spin")
	s.next(t)
	s.k.Pause()
	if !s.k.Paused() {
		t.Fatalf("Paused() after Pause = false")
	}
	// Drain what was printed before the pause, then nothing may change.
	for len(s.lines) > 0 {
		<-s.lines
	}
	before := memoryHash(t, s.k)
	regs := initTask(s.k).regs
	time.Sleep(300 * time.Millisecond) // the spinner prints about every 20 ms when running
	if after := memoryHash(t, s.k); after != before {
		t.Errorf("memory hash changed while paused: %x, want %x", after, before)
	}
	if got := initTask(s.k).regs; got != regs {
		t.Errorf("registers changed while paused: %+v, want %+v", got, regs)
	}
	select {
	case l := <-s.lines:
		t.Errorf("output while paused: %q", l)
	default:
	}
	// Pauses nest.
	s.k.Pause()
	s.k.Unpause()
	if !s.k.Paused() {
		t.Errorf("Paused() after Pause, Pause, Unpause = false")
	}
	s.k.Unpause()
	if s.k.Paused() {
		t.Errorf("Paused() after the last Unpause = true")
	}
	if l := s.next(t); !strings.HasPrefix(l, "spin ") {
		t.Errorf("output after Unpause = %q, want spin N", l)
	}
	if err := s.k.SignalInit(int(unix.SIGTERM)); err != nil {
		t.Fatalf("SignalInit(TERM) = %v", err)
	}
	if st := s.k.Wait(); st != (ExitStatus{Signal: int(unix.SIGTERM)}) {
		t.Errorf("Wait() after SIGTERM = %v, want killed by 15", st)
	}
	// Pause of an exited kernel returns at once.
	s.k.Pause()
	s.k.Unpause()
	if err := s.k.SignalInit(int(unix.SIGTERM)); !errors.Is(err, ErrNoInit) {
		t.Errorf("SignalInit after exit = %v, want ErrNoInit", err)
	}
}

func TestPauseInNanosleep(t *testing.T) {
	s := startPauseSandbox(t, "sleep")
	for i := 1; i <= 3; i++ {
		s.next(t)
		task := pauseInSyscall(t, s.k, unix.SYS_NANOSLEEP, unix.SYS_CLOCK_NANOSLEEP)
		// Parked inside nanosleep: the restart is pending with the
		// deadline kept, to be rewound when the task runs again.
		if int64(task.regs.Rax) != -int64(errRestartRestartBlock) || task.restart.Kind != restartNanosleep {
			t.Errorf("pause %d: rax = %d, restart = %+v, want -%d and a nanosleep restart block",
				i, int64(task.regs.Rax), task.restart, errRestartRestartBlock)
		}
		time.Sleep(80 * time.Millisecond)
		s.k.Unpause()
	}
	for i := 0; i < 3; i++ {
		if l := s.next(t); !strings.HasPrefix(l, "slept ") {
			t.Fatalf("output after pauses in nanosleep = %q, want slept N (no SHORT SLEEP)", l)
		}
	}
}

func TestPauseInRead(t *testing.T) {
	s := startPauseSandbox(t, "echo")
	if _, err := s.stdin.WriteString("one\n"); err != nil {
		t.Fatal(err)
	}
	if l := s.next(t); l != "one" {
		t.Fatalf("echo = %q, want one", l)
	}
	for i := 0; i < 3; i++ {
		task := pauseInSyscall(t, s.k, unix.SYS_READ)
		switch e := unix.Errno(-int64(task.regs.Rax)); e {
		case errRestartSys, errRestartNoIntr, errRestartNoHand:
		default:
			t.Errorf("read interrupted by Pause returned %d, want a restart errno", int64(task.regs.Rax))
		}
		s.k.Unpause()
	}
	if _, err := s.stdin.WriteString("two\n"); err != nil {
		t.Fatal(err)
	}
	if l := s.next(t); l != "two" {
		t.Errorf("echo after pauses in read = %q, want two", l)
	}
	s.stdin.Close()
	if st := s.k.Wait(); st != (ExitStatus{}) {
		t.Errorf("Wait() after EOF = %v, want exit 0", st)
	}
}

func TestPauseContextCancelled(t *testing.T) {
	s := startPauseSandbox(t, "spin")
	s.next(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if err := s.k.PauseContext(ctx); err != nil {
		t.Errorf("PauseContext() = %v", err)
	} else if !s.k.Paused() {
		t.Errorf("Paused() after PauseContext = false")
	} else {
		s.k.Unpause()
	}
	cancel()
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	// Either every task stopped before the check or the stop is withdrawn;
	// in both cases the kernel must run again afterwards.
	if err := s.k.PauseContext(ctx); err == nil {
		s.k.Unpause()
	} else if !errors.Is(err, context.Canceled) {
		t.Errorf("PauseContext(cancelled) = %v, want nil or context.Canceled", err)
	}
	if s.k.Paused() {
		t.Errorf("Paused() after a withdrawn pause = true")
	}
	for len(s.lines) > 0 {
		<-s.lines
	}
	if l := s.next(t); !strings.HasPrefix(l, "spin ") {
		t.Errorf("output after withdrawn pause = %q", l)
	}
}

// TestPauseAfterExec: a pause never finds the memory of an image that an
// execve replaced still waiting to be given back (the task starts that
// before it parks; a save would otherwise wait for it for ever), and the
// program goes on execing after each pause.
func TestPauseAfterExec(t *testing.T) {
	s := startPauseSandbox(t, "reexec")
	s.next(t)
	for i := 0; i < 60; i++ {
		s.k.Pause()
		s.k.mf.mu.Lock()
		freeing := s.k.mf.freeing
		s.k.mf.mu.Unlock()
		s.k.Unpause()
		if freeing != 0 {
			t.Fatalf("pause %d: memory file freeing = %d, want 0", i, freeing)
		}
		time.Sleep(time.Millisecond)
	}
	first := s.next(t)
	if got := s.next(t); got == first || !strings.HasPrefix(got, "exec ") {
		t.Errorf("after the pauses: lines %q then %q, want the program execing on", first, got)
	}
}
