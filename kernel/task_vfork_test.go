package kernel

import (
	"fmt"
	"testing"
	"time"
)

func init() {
	// vforkwait: a vfork child writes 42 into the parent's memory, says
	// "child waiting" and reads one byte from stdin: on 'x' it writes 43
	// and _exits, on 'e' it writes 44 and execs this program with "done"
	// (which exits at once). The parent, once vfork returns, prints the
	// word it sees: 43 or 44 only if it waited for the child.
	pausePrograms["vforkwait"] = `#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile int word;
int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "done") == 0) return 0;
	pid_t pid = vfork();
	if (pid == 0) {
		word = 42;
		write(1, "child waiting\n", 14);
		char c = 0;
		read(0, &c, 1);
		if (c == 'e') {
			word = 44;
			char *args[] = {argv[0], "done", 0};
			execv(argv[0], args);
			_exit(127);
		}
		word = 43;
		_exit(0);
	}
	int status;
	int r = waitpid(pid, &status, 0);
	printf("parent resumed: word %d, child exit %d\n", word, r == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}`
}

// vforkParked pauses the vforkwait sandbox while its child waits for
// stdin and checks that the parent is held in runVforkWait on the child,
// sharing its MM. It returns the parent and the child.
func vforkParked(t *testing.T, k *Kernel) (parent, child *Task) {
	t.Helper()
	k.Pause()
	parent = initTask(k)
	w, ok := parent.runState.(*runVforkWait)
	if !ok {
		t.Fatalf("parent run state = %T, want *runVforkWait", parent.runState)
	}
	child = w.Child.leader
	if child == nil || child.tg == parent.tg {
		t.Fatalf("runVforkWait.Child = %v, want the vfork child", w.Child)
	}
	if child.tg.mm != parent.tg.mm {
		t.Errorf("vfork child MM %p, want the parent's %p", child.tg.mm, parent.tg.mm)
	}
	if got := parent.tg.mm.users; got != 2 {
		t.Errorf("MM users = %d, want 2", got)
	}
	return parent, child
}

// vforkWaitCases end the vfork child of the vforkwait program by exit or
// by exec (the byte written to its stdin), and say what the parent prints.
var vforkWaitCases = []struct {
	name string
	in   byte
	want string
}{
	{"exit", 'x', "parent resumed: word 43, child exit 0"},
	{"exec", 'e', "parent resumed: word 44, child exit 0"},
}

// TestVforkWaitAcrossPause pauses and unpauses the kernel while a vfork
// parent waits: the parent still resumes only after the child's exit or
// exec, and sees the child's writes.
func TestVforkWaitAcrossPause(t *testing.T) {
	for _, tc := range vforkWaitCases {
		t.Run(tc.name, func(t *testing.T) {
			s := startPauseSandbox(t, "vforkwait")
			if l := s.next(t); l != "child waiting" {
				t.Fatalf("first line = %q, want child waiting", l)
			}
			for i := 0; i < 3; i++ {
				vforkParked(t, s.k)
				s.k.Unpause()
			}
			if _, err := s.stdin.Write([]byte{tc.in}); err != nil {
				t.Fatal(err)
			}
			if l := s.next(t); l != tc.want {
				t.Errorf("after the child's %s: %q, want %q", tc.name, l, tc.want)
			}
		})
	}
}

// TestVforkWaitAcrossRestore saves the kernel while a vfork parent waits
// for its child, which sleeps in read before exiting or exec'ing, and
// restores it: the restored parent and child share one address space, and
// the parent resumes only after the child's exit or exec, seeing its
// writes.
func TestVforkWaitAcrossRestore(t *testing.T) {
	for _, tc := range vforkWaitCases {
		t.Run(tc.name, func(t *testing.T) {
			s := startPauseSandbox(t, "vforkwait")
			if l := s.next(t); l != "child waiting" {
				t.Fatalf("first line = %q, want child waiting", l)
			}
			vforkParked(t, s.k)
			ranges, state := savePaused(t, s.k)
			// The original stays paused until the end (the ranges alias
			// its memory); its cleanup kills it.
			defer s.k.Unpause()

			k, inW, outR := restoreWithPipes(t, state, RestoreOptions{
				LoadMemory: func(w *MemoryLoader) error { return w.WriteRuns(runsOf(ranges)) },
			})
			// Parked at once: the restored state is checked before it
			// runs (vforkParked pauses it once more).
			k.StopForTest()
			k.Resume()
			vforkParked(t, k)
			k.Unpause()
			k.ResumeForTest()

			lines := scanLines(outR, 4)
			if _, err := inW.Write([]byte{tc.in}); err != nil {
				t.Fatal(err)
			}
			select {
			case l := <-lines:
				if l != tc.want {
					t.Errorf("restored, after the child's %s: %q, want %q", tc.name, l, tc.want)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("restored program printed nothing")
			}
			if st := k.Wait(); st != (ExitStatus{}) {
				t.Errorf("restored program exit status = %v, want 0", st)
			}
		})
	}
}

// TestMMUsers checks the MM user count: Release drops one user and only
// the last frees the vmas.
func TestMMUsers(t *testing.T) {
	tests := []struct {
		extra     int
		releases  int
		wantVMAs  bool
		wantUsers int32
	}{
		{extra: 0, releases: 1, wantVMAs: false, wantUsers: 0},
		{extra: 1, releases: 1, wantVMAs: true, wantUsers: 1},
		{extra: 2, releases: 2, wantVMAs: true, wantUsers: 1},
		{extra: 2, releases: 3, wantVMAs: false, wantUsers: 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("extra%d-release%d", tc.extra, tc.releases), func(t *testing.T) {
			mm, _ := newTestMM(t)
			mustMMap(t, mm, MMapOpts{Length: pageSize, Perms: permRead | permWrite, Private: true})
			for i := 0; i < tc.extra; i++ {
				mm.addUser()
			}
			for i := 0; i < tc.releases; i++ {
				mm.Release()
			}
			if got := len(mm.vmas) > 0; got != tc.wantVMAs {
				t.Errorf("after %d extra users and %d releases: has vmas = %v, want %v", tc.extra, tc.releases, got, tc.wantVMAs)
			}
			if mm.users != tc.wantUsers {
				t.Errorf("after %d extra users and %d releases: users = %d, want %d", tc.extra, tc.releases, mm.users, tc.wantUsers)
			}
		})
	}
}
