package kernel

import (
	"errors"
	"testing"

	"snapshotter/kernel/vfs"
)

func init() {
	pausePrograms["memfdhold"] = `#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
	char line[8];
	int fd = syscall(SYS_memfd_create, "held", 0);
	printf("open %d\n", fd >= 0);
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin)) return 1;
	close(fd);
	printf("closed\n");
	fflush(stdout);
	for (;;) pause();
}`
}

// TestCheckSavableMemfd: a process holding a memfd cannot be saved
// (CheckSavable says why, with vfs.ErrMemfdNotSavable); once it closes
// the memfd it can.
func TestCheckSavableMemfd(t *testing.T) {
	s := startPauseSandbox(t, "memfdhold")
	if l := s.next(t); l != "open 1" {
		t.Fatalf("first line = %q, want \"open 1\"", l)
	}
	if err := s.k.CheckSavable(); !errors.Is(err, vfs.ErrMemfdNotSavable) {
		t.Errorf("CheckSavable() with a memfd open = %v, want ErrMemfdNotSavable", err)
	}
	if _, err := s.stdin.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	if l := s.next(t); l != "closed" {
		t.Fatalf("second line = %q, want \"closed\"", l)
	}
	if err := s.k.CheckSavable(); err != nil {
		t.Errorf("CheckSavable() after close = %v, want nil", err)
	}
}
