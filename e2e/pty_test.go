package e2e

import (
	"os"
	"regexp"
	"testing"

	"snapshotter/internal/prereq"
)

// scriptPath is util-linux's script, from Debian's bsdutils.
const scriptPath = "/usr/bin/script"

// pythonPty drives a child on a pty with CPython's pty module: the child
// checks its controlling terminal and echoes a line the parent types;
// os.openpty gives a slave in canonical mode.
const pythonPty = `import os, pty, sys, termios
pid, fd = pty.fork()
if pid == 0:
    print("child:", os.isatty(0), os.ttyname(0).startswith("/dev/pts/"), os.getsid(0) == os.getpid(), os.tcgetpgrp(0) == os.getpgrp(), flush=True)
    print("got", repr(sys.stdin.readline()), flush=True)
    os._exit(3)
out = b""
while b"\r\n" not in out:
    out += os.read(fd, 100)
os.write(fd, b"hello there\n")
while True:
    try:
        b = os.read(fd, 100)
    except OSError:
        break
    if not b:
        break
    out += b
print(repr(out), os.waitpid(pid, 0)[1] >> 8)
m, s = os.openpty()
print("openpty:", os.ttyname(s).startswith("/dev/pts/"), termios.tcgetattr(s)[3] & termios.ICANON != 0)
`

// ptsNumber matches the index of a pty's name, which differs natively
// (where other terminals are open) and under snap.
var ptsNumber = regexp.MustCompile(`/dev/pts/[0-9]+`)

// TestPtyPrograms: real programs that make pseudo-terminals (script,
// CPython's pty module) print under snap what they print natively, the
// slave's index aside.
func TestPtyPrograms(t *testing.T) {
	cases := []struct {
		name string
		argv []string
		want string
	}{
		{"script", []string{scriptPath, "-qc", "tty; echo hi", "/dev/null"}, "/dev/pts/N\r\nhi\r\n"},
		{"python", []string{pythonPath, "-c", pythonPty},
			"b\"child: True True True True\\r\\nhello there\\r\\ngot 'hello there\\\\n'\\r\\n\" 3\nopenpty: True True\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := os.Stat(tc.argv[0]); err != nil {
				prereq.Missing(t, "%s: %v", tc.argv[0], err)
			}
			dir := t.TempDir()
			for _, argv := range [][]string{tc.argv, append([]string{snap(t), "run", "--"}, tc.argv...)} {
				got := execute(t, argv, spec{}, dir)
				out := ptsNumber.ReplaceAllString(got.stdout, "/dev/pts/N")
				if got.status != 0 || out != tc.want {
					t.Errorf("%q: status %d, stdout %q (stderr %q), want 0 and %q", argv, got.status, out, got.stderr, tc.want)
				}
			}
		})
	}
}
