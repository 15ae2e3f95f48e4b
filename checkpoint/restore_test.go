package checkpoint

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/internal/ctest"
)

// TestRestoreForeground restores in the foreground: the program's output
// is snap's stdout, and snap exits with the program's status when it ends.
func TestRestoreForeground(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sleeper"), "6")
	uri, last := e.saveAfter(id, out, 2)
	n := number(t, last)
	r := e.snap("restore", uri)
	if r.code != 0 {
		t.Fatalf("snap restore (foreground) = exit %d, stderr %q", r.code, r.stderr)
	}
	var want []string
	for k := n + 1; k <= 6; k++ {
		want = append(want, fmt.Sprintf("slept %d", k))
	}
	if got := strings.TrimSpace(r.stdout); got != strings.Join(want, "\n") {
		t.Errorf("foreground restore printed %q, want %q", got, strings.Join(want, "\n"))
	}
}

// holdFile opens the file named by argv[1], reads its first line, and
// prints it every 50 ms while keeping the file open.
const holdFile = `#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) { perror("open"); return 2; }
	struct timespec ts = {0, 50000000};
	for (int k = 1;; k++) {
		char buf[64] = {0};
		if (pread(fd, buf, sizeof buf - 1, 0) < 0) { perror("pread"); return 3; }
		buf[strcspn(buf, "\n")] = 0;
		printf("read %d %s\n", k, buf); fflush(stdout);
		nanosleep(&ts, 0);
	}
}`

// TestHostFileChanged: a host file open at the save is reopened and checked
// at restore; unchanged it works, changed the restore fails with a clear
// error.
func TestHostFileChanged(t *testing.T) {
	e := newEnv(t)
	program(t, "sleeper") // checks gcc and the snap build
	bin := ctest.Source(t, "gcc", "hold", holdFile, "-static", "-O2")
	data := filepath.Join(e.dir, "data.txt")
	os.WriteFile(data, []byte("version-1\n"), 0o644)
	id, out := e.runDetached("", bin, data)
	uri, last := e.saveAfter(id, out, 2)

	_, rout := e.restoreDetached(uri, "")
	ls := waitLines(t, rout, 1)
	if want := fmt.Sprintf("read %d version-1", number(t, last)+1); ls[0] != want {
		t.Errorf("restored with the file unchanged: first line %q, want %q", ls[0], want)
	}

	os.WriteFile(data, []byte("version-2, longer\n"), 0o644)
	msg := e.mustFail("restore", uri)
	if !strings.Contains(msg, "data.txt") || !strings.Contains(msg, "changed") {
		t.Errorf("restore after the host file changed: %q, want an error naming the file and saying it changed", msg)
	}
}
