package kernel

import (
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	// spawn: for each line "N PATH" read from stdin, runs PATH N times
	// (fork, execl, waitpid) and prints how many runs exited with 0.
	pausePrograms["spawn"] = `#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
	char path[4096];
	int n;
	while (scanf("%d %4095s", &n, path) == 2) {
		int ok = 0;
		for (int i = 0; i < n; i++) {
			pid_t p = fork();
			if (p == 0) { execl(path, path, (char *)0); _exit(127); }
			int st;
			if (waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0) ok++;
		}
		printf("ran %d\n", ok); fflush(stdout);
	}
	return 0;
}`
	// true: exits with 0.
	pausePrograms["true"] = `int main(void) { return 0; }`
}

// cacheReads returns the file cache misses and bytes read of k's run
// (Kernel.Counts).
func cacheReads(k *Kernel) (misses, bytes uint64) {
	for _, c := range k.Counts() {
		switch c.Name {
		case "file-cache-misses":
			misses = c.Value
		case "file-cache-bytes-read":
			bytes = c.Value
		}
	}
	return misses, bytes
}

// spawnRuns has the spawn program run path n times and checks that every
// run succeeded.
func spawnRuns(t *testing.T, stdin *os.File, next func() string, path string, n int) {
	t.Helper()
	if _, err := fmt.Fprintf(stdin, "%d %s\n", n, path); err != nil {
		t.Fatal(err)
	}
	if got, want := next(), fmt.Sprintf("ran %d", n); got != want {
		t.Fatalf("spawn %d: %q, want %q", n, got, want)
	}
}

// retainedState returns the file cache's retained bytes, and how many
// cached files hold no page for a vma or have a source file.
func retainedState(k *Kernel) (retained uint64, unheld, withSrc int) {
	c := &k.mf.files
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cf := range c.files {
		if cf.Held == 0 {
			unheld++
		}
		if cf.Src != nil {
			withSrc++
		}
	}
	return c.retainedBytes, unheld, withSrc
}

// TestFileCacheExecLoop runs a program that runs another one (its own
// executable, not mapped by anyone else between runs) once and then five
// times: the five runs read nothing from the host, as the file cache
// retains the pages of the first. A save gives the retained pages back
// first; the restored sandbox reads the program once more, on demand, and
// then retains it again.
func TestFileCacheExecLoop(t *testing.T) {
	child := buildPauseProgram(t, "true")
	s := startPauseSandbox(t, "spawn")
	next := func() string { return s.next(t) }
	m0, _ := cacheReads(s.k)
	spawnRuns(t, s.stdin, next, child, 1)
	m1, b1 := cacheReads(s.k)
	if m1 == m0 {
		t.Fatalf("the first run read nothing into the file cache (%d misses before and after)", m0)
	}
	spawnRuns(t, s.stdin, next, child, 5)
	if m2, b2 := cacheReads(s.k); m2 != m1 || b2 != b1 {
		t.Errorf("five more runs: file cache misses %d -> %d, bytes read %d -> %d; want no change", m1, m2, b1, b2)
	}

	// The children's memory is given back after the parent's waitpid may
	// return: wait for their pages to be retained.
	deadline := time.Now().Add(30 * time.Second)
	for r, _, _ := retainedState(s.k); r == 0; r, _, _ = retainedState(s.k) {
		if time.Now().After(deadline) {
			t.Fatalf("no file cache page retained after the runs")
		}
		time.Sleep(time.Millisecond)
	}
	pauseInSyscall(t, s.k, unix.SYS_READ)
	t.Cleanup(s.k.Unpause)
	if r, unheld, _ := retainedState(s.k); r != 0 || unheld != 0 {
		t.Fatalf("paused: %d bytes retained, %d files cached for no vma; want none", r, unheld)
	}
	ranges, state := savePaused(t, s.k)

	k, stdin, stdout := restoreWithPipes(t, state, RestoreOptions{
		MemorySize: s.k.mf.Size(),
		LoadMemory: func(w *MemoryLoader) error { return w.WriteRuns(runsOf(ranges)) },
	})
	if r, unheld, withSrc := retainedState(k); r != 0 || unheld != 0 || withSrc != 0 {
		t.Errorf("restored: %d bytes retained, %d files cached for no vma, %d with a source file; want none", r, unheld, withSrc)
	}
	k.Resume()
	lines := scanLines(stdout, 16)
	rnext := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("restored program's output ended")
			}
			return l
		case <-time.After(60 * time.Second):
			t.Fatalf("no output from the restored program in 60 s")
		}
		return ""
	}
	spawnRuns(t, stdin, rnext, child, 2)
	r1, rb1 := cacheReads(k)
	if r1 == 0 {
		t.Errorf("restored: the runs read nothing into the file cache; want the program read again")
	}
	spawnRuns(t, stdin, rnext, child, 3)
	if r2, rb2 := cacheReads(k); r2 != r1 || rb2 != rb1 {
		t.Errorf("restored, three more runs: file cache misses %d -> %d, bytes read %d -> %d; want no change", r1, r2, rb1, rb2)
	}
}
