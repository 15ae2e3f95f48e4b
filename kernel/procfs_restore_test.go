package kernel

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	// procself: renames itself (argv[0] shortened in place, comm set by
	// prctl), prints "ready", then for each byte read from stdin prints
	// its /proc/self/cmdline (NULs as '|') and /proc/self/comm.
	pausePrograms["procself"] = `#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
static void show(const char *path) {
	char b[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, b, sizeof b);
	if (fd >= 0) close(fd);
	printf("%s ", path);
	for (ssize_t i = 0; i < n; i++) putchar(b[i] == 0 ? '|' : b[i] == '\n' ? '$' : b[i]);
	printf("\n");
}
int main(int argc, char **argv) {
	(void)argc;
	strcpy(argv[0], "renamed");
	prctl(PR_SET_NAME, "before-save", 0, 0, 0);
	printf("ready\n"); fflush(stdout);
	char c;
	while (read(0, &c, 1) == 1) {
		show("/proc/self/cmdline");
		show("/proc/self/comm");
		fflush(stdout);
	}
	return 0;
}`
}

// TestProcSelfAfterRestore saves a program that renamed itself and checks
// that the restored program's /proc/self/cmdline and /proc/self/comm show
// what it set before the save (the MM's argument area and the thread name
// are saved).
func TestProcSelfAfterRestore(t *testing.T) {
	s := startPauseSandbox(t, "procself")
	if l := s.next(t); l != "ready" {
		t.Fatalf("first line = %q, want ready", l)
	}
	pauseInSyscall(t, s.k, unix.SYS_READ)
	bin := initTask(s.k).tg.exe
	ranges, err := s.k.MemoryRanges()
	if err != nil {
		s.k.Unpause()
		t.Fatalf("MemoryRanges() = %v", err)
	}
	var state bytes.Buffer
	err = s.k.SaveState(context.Background(), &state)
	s.k.Unpause()
	if err != nil {
		t.Fatalf("SaveState() = %v", err)
	}
	if len(bin) < len("renamed") {
		t.Fatalf("program path %q shorter than the new name", bin)
	}
	want := []string{
		"/proc/self/cmdline " + strings.ReplaceAll("renamed\x00"+bin[len("renamed\x00"):]+"\x00", "\x00", "|"),
		"/proc/self/comm before-save$",
	}

	k, inW, outR := restoreWithPipes(t, state.Bytes(), RestoreOptions{
		LoadMemory: func(w *MemoryLoader) error {
			return w.WriteRuns(runsOf(ranges))
		},
	})
	k.Resume()
	if _, err := inW.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(outR)
	for i, w := range want {
		if !sc.Scan() {
			t.Fatalf("restored program's output ended before line %d: %v", i+1, sc.Err())
		}
		if got := sc.Text(); got != w {
			t.Errorf("restored program's line %d = %q, want %q", i+1, got, w)
		}
	}
}
