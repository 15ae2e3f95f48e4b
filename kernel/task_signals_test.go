package kernel

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSignalFrameLayout(t *testing.T) {
	regs := registers{
		R8: 8, R9: 9, R10: 10, R11: 11, R12: 12, R13: 13, R14: 14, R15: 15,
		Rdi: 0xd1, Rsi: 0x51, Rbp: 0xb9, Rbx: 0xb8, Rdx: 0xd8, Rax: 0xa8, Rcx: 0xc8,
		Rsp: 0x7fff_0000_1003, Rip: 0x401234, Eflags: 0x246, Cs: userCS, Ss: userSS,
	}
	info := sigInfo{Signo: int32(unix.SIGSEGV), Code: segvMaperr, Addr: 0x8}
	noAlt := taskSignals{AltFlags: ssDisable}
	alt := taskSignals{AltSP: 0x10000, AltSize: 0x4000}
	tests := []struct {
		name    string
		alt     taskSignals
		onstack bool
		fpLen   int
		top     uint64 // the highest address the frame may reach
	}{
		{"main stack", noAlt, false, 2688, regs.Rsp - redZone},
		{"main stack no fp", noAlt, false, 0, regs.Rsp - redZone},
		{"SA_ONSTACK without altstack", noAlt, true, 2688, regs.Rsp - redZone},
		{"altstack", alt, true, 832, alt.AltSP + alt.AltSize},
	}
	for _, tc := range tests {
		frame, sp, fpAddr := buildSignalFrame(&regs, tc.fpLen, info, 0xabc, tc.alt, tc.onstack)
		if len(frame) != 440 {
			t.Errorf("%s: len(frame) = %d, want 440", tc.name, len(frame))
		}
		if (sp+8)%16 != 0 {
			t.Errorf("%s: sp = %#x, want (sp+8) %% 16 == 0", tc.name, sp)
		}
		if tc.fpLen > 0 && (fpAddr%64 != 0 || fpAddr < sp+frameLen || fpAddr+uint64(tc.fpLen) > tc.top) {
			t.Errorf("%s: fpAddr = %#x (sp %#x), want 64-aligned between the frame and %#x", tc.name, fpAddr, sp, tc.top)
		}
		if tc.fpLen == 0 && fpAddr != 0 {
			t.Errorf("%s: fpAddr = %#x, want 0 without an XSAVE area", tc.name, fpAddr)
		}
		if sp+frameLen > tc.top {
			t.Errorf("%s: frame [%#x, %#x) above %#x", tc.name, sp, sp+frameLen, tc.top)
		}
		le := binary.LittleEndian
		sc := frame[frameUcOff+ucMcontextOff:]
		for _, f := range []struct {
			name string
			off  int
			want uint64
		}{
			{"r8", 0, 8}, {"r15", 56, 15}, {"rdi", 64, 0xd1}, {"rsi", 72, 0x51}, {"rbp", 80, 0xb9},
			{"rbx", 88, 0xb8}, {"rdx", 96, 0xd8}, {"rax", 104, 0xa8}, {"rcx", 112, 0xc8},
			{"rsp", 120, regs.Rsp}, {"rip", 128, regs.Rip}, {"eflags", 136, 0x246},
			{"trapno", 160, 14}, {"oldmask", 168, 0xabc}, {"cr2", 176, 8}, {"fpstate", 184, fpAddr},
		} {
			if got := le.Uint64(sc[f.off:]); got != f.want {
				t.Errorf("%s: sigcontext.%s = %#x, want %#x", tc.name, f.name, got, f.want)
			}
		}
		if got := le.Uint16(sc[144:]); got != userCS {
			t.Errorf("%s: sigcontext.cs = %#x, want %#x", tc.name, got, userCS)
		}
		if got := le.Uint64(frame[frameUcOff+296:]); got != 0xabc {
			t.Errorf("%s: uc_sigmask = %#x, want 0xabc", tc.name, got)
		}
		si := frame[312:]
		if signo, code, addr := le.Uint32(si), le.Uint32(si[8:]), le.Uint64(si[16:]); signo != 11 || code != segvMaperr || addr != 8 {
			t.Errorf("%s: siginfo = (%d, %d, %#x), want (11, %d, 0x8)", tc.name, signo, code, addr, segvMaperr)
		}
		if got := le.Uint64(frame[frameUcOff+ucStackOff:]); got != tc.alt.AltSP {
			t.Errorf("%s: uc_stack.ss_sp = %#x, want %#x", tc.name, got, tc.alt.AltSP)
		}
	}
}

func TestSigPendingQueue(t *testing.T) {
	usr1, rt := int32(unix.SIGUSR1), int32(sigRTMin+2)
	var p sigPending
	p.enqueue(sigInfo{Signo: usr1, Pid: 1})
	p.enqueue(sigInfo{Signo: usr1, Pid: 2}) // coalesced
	p.enqueue(sigInfo{Signo: rt, Value: 1})
	p.enqueue(sigInfo{Signo: rt, Value: 2}) // queued
	if len(p.Queue) != 3 {
		t.Fatalf("len(Queue) = %d, want 3", len(p.Queue))
	}
	tests := []struct {
		signo    int32
		wantPid  int32
		wantVal  uint64
		stillSet bool
	}{
		{usr1, 1, 0, false},
		{rt, 0, 1, true},
		{rt, 0, 2, false},
	}
	for _, tc := range tests {
		got := p.dequeue(int(tc.signo))
		if got.Pid != tc.wantPid || got.Value != tc.wantVal {
			t.Errorf("dequeue(%d) = pid %d value %d, want pid %d value %d", tc.signo, got.Pid, got.Value, tc.wantPid, tc.wantVal)
		}
		if set := p.Set&sigBit(int(tc.signo)) != 0; set != tc.stillSet {
			t.Errorf("after dequeue(%d): pending = %v, want %v", tc.signo, set, tc.stillSet)
		}
	}
	p.enqueue(sigInfo{Signo: usr1})
	p.discard(sigBit(int(usr1)))
	if p.Set != 0 || len(p.Queue) != 0 {
		t.Errorf("after discard: Set %#x, %d queued, want empty", p.Set, len(p.Queue))
	}
}

func TestDequeueSignalOrder(t *testing.T) {
	tg := &ThreadGroup{}
	task := &Task{tg: tg}
	tg.tasks = []*Task{task}
	for _, s := range []unix.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGSEGV, unix.SIGUSR1} {
		tg.sigs.Pending.enqueue(sigInfo{Signo: int32(s)})
	}
	task.sig.Mask = sigBit(int(unix.SIGINT))
	// Synchronous signals first, then the lowest unblocked; SIGINT stays.
	for _, want := range []unix.Signal{unix.SIGSEGV, unix.SIGUSR1, unix.SIGTERM} {
		got, ok := task.dequeueSignalLocked()
		if !ok || got.Signo != int32(want) {
			t.Errorf("dequeueSignalLocked() = %d, %v, want %d, true", got.Signo, ok, want)
		}
	}
	if got, ok := task.dequeueSignalLocked(); ok {
		t.Errorf("dequeueSignalLocked() with only SIGINT pending and blocked = %d, want none", got.Signo)
	}
}

func TestDefaultActions(t *testing.T) {
	tests := []struct {
		sig  unix.Signal
		want defaultAction
	}{
		{unix.SIGTERM, actTerminate}, {unix.SIGALRM, actTerminate}, {unix.Signal(sigRTMin + 1), actTerminate},
		{unix.SIGABRT, actCore}, {unix.SIGSEGV, actCore}, {unix.SIGCHLD, actIgnore},
		{unix.SIGWINCH, actIgnore}, {unix.SIGTSTP, actStop}, {unix.SIGCONT, actContinue},
	}
	for _, tc := range tests {
		if got := defaultActionOf(int(tc.sig)); got != tc.want {
			t.Errorf("defaultActionOf(%d) = %d, want %d", tc.sig, got, tc.want)
		}
	}
}

// sigRestartProgram checks SA_RESTART against EINTR for a read that a
// timer signal interrupts, and a stop until SIGCONT.
const sigRestartProgram = `#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t ticks;
static void on_alarm(int sig) { (void)sig; ticks++; }

static void arm(int restart)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 0}, {0, 50000}};
	setitimer(ITIMER_REAL, &it, NULL);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	for (int restart = 0; restart <= 1; restart++) {
		int p[2];
		pipe(p);
		pid_t c = fork();
		if (c == 0) {
			struct timespec ts = {0, 300000000};
			nanosleep(&ts, NULL);
			write(p[1], "x", 1);
			_exit(0);
		}
		ticks = 0;
		arm(restart);
		char b;
		ssize_t n = read(p[0], &b, 1);
		printf("SA_RESTART %d: read %zd (%s), handler ran: %s\n", restart, n, n < 0 ? strerror(errno) : "data",
		       ticks == 1 ? "yes" : "no");
		waitpid(c, NULL, 0);
		close(p[0]);
		close(p[1]);
	}
	pid_t c = fork();
	if (c == 0) {
		raise(SIGSTOP);
		printf("child continued\n");
		_exit(7);
	}
	struct timespec ts = {0, 200000000};
	nanosleep(&ts, NULL);
	int st;
	printf("stopped child still running: %s\n", waitpid(c, &st, WNOHANG) == 0 ? "yes" : "no");
	kill(c, SIGCONT);
	waitpid(c, &st, 0);
	printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return 0;
}
`

func init() { pausePrograms["sigrestart"] = sigRestartProgram }

func TestSignalRestartAndStop(t *testing.T) {
	s := startPauseSandbox(t, "sigrestart")
	want := []string{
		"SA_RESTART 0: read -1 (Interrupted system call), handler ran: yes",
		"SA_RESTART 1: read 1 (data), handler ran: yes",
		"stopped child still running: yes",
		"child continued",
		"child exit 7",
	}
	for i, w := range want {
		if got := s.next(t); got != w {
			t.Errorf("line %d = %q, want %q", i+1, got, w)
		}
	}
	if st := s.k.Wait(); st != (ExitStatus{}) {
		t.Errorf("Wait() = %v, want exit 0", st)
	}
}

// sigTimedwaitProgram takes signals synchronously with sigtimedwait: a
// timeout, a pending signal, and a timer signal that arrives while waiting.
const sigTimedwaitProgram = `#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
int main(void){
	setvbuf(stdout, NULL, _IONBF, 0);
	sigset_t s; sigemptyset(&s); sigaddset(&s, SIGUSR1); sigaddset(&s, SIGALRM);
	sigprocmask(SIG_BLOCK, &s, NULL);
	struct timespec ts = {0, 50000000};
	int r = sigtimedwait(&s, NULL, &ts);
	printf("timeout: %d %s\n", r, r < 0 ? strerror(errno) : "");
	raise(SIGUSR1);
	siginfo_t si; r = sigtimedwait(&s, &si, &ts);
	printf("pending: %d code %d\n", r, si.si_code);
	struct itimerval it = {{0,0},{0,30000}}; setitimer(ITIMER_REAL, &it, NULL);
	r = sigwaitinfo(&s, &si);
	printf("waited: %d\n", r);
	return 0;
}
`

func init() { pausePrograms["sigtimedwait"] = sigTimedwaitProgram }

func TestSigtimedwait(t *testing.T) {
	s := startPauseSandbox(t, "sigtimedwait")
	want := []string{
		"timeout: -1 Resource temporarily unavailable",
		"pending: 10 code 0",
		"waited: 14",
	}
	for i, w := range want {
		if got := s.next(t); got != w {
			t.Errorf("line %d = %q, want %q", i+1, got, w)
		}
	}
	if st := s.k.Wait(); st != (ExitStatus{}) {
		t.Errorf("Wait() = %v, want exit 0", st)
	}
}
