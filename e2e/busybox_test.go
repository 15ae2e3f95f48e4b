package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"snapshotter/internal/prereq"
)

// busyboxPath is where Debian's busybox-static package installs busybox.
const busyboxPath = "/bin/busybox"

// A busyboxCase runs one busybox applet. Its knownBroken key is
// "busybox/<name>".
type busyboxCase struct {
	name string
	spec spec // spec.args start with the applet name
	// setup, if set, creates files in dir and completes the spec.
	setup func(t *testing.T, dir string, s *spec)
}

var busyboxCases = []busyboxCase{
	{name: "echo", spec: spec{args: []string{"echo", "hello", "from", "busybox"}, want: []string{"hello from busybox"}}},
	{name: "cat", setup: func(t *testing.T, dir string, s *spec) {
		p := writeFile(t, dir, "poem.txt", "line one\nline two\n\nline four\n")
		s.args = []string{"cat", p}
		s.want = []string{"line one", "line four"}
	}},
	{name: "cat-large", setup: func(t *testing.T, dir string, s *spec) {
		// 1 MiB of binary data through a pipe: partial writes and back-pressure.
		s.args = []string{"cat", writeFile(t, dir, "data.bin", string(hostFileData()))}
	}},
	{name: "cat-stdin", spec: spec{args: []string{"cat"}, stdin: "from stdin\nsecond\n", want: []string{"from stdin", "second"}}},
	{name: "cat-dev-stdin", spec: spec{args: []string{"cat", "/dev/stdin"}, stdin: "through /dev/stdin\n", want: []string{"through /dev/stdin"}}},
	{name: "cat-proc-self-fd", spec: spec{args: []string{"cat", "/proc/self/fd/0", "/dev/fd/0"}, stdin: "through fd 0\n", want: []string{"through fd 0"}}},
	{name: "sha256sum", setup: func(t *testing.T, dir string, s *spec) {
		data := hostFileData()
		p := writeFile(t, dir, "data.bin", string(data))
		sum := sha256.Sum256(data)
		s.args = []string{"sha256sum", p}
		s.want = []string{hex.EncodeToString(sum[:]) + "  " + p}
	}},
	{name: "wc", setup: func(t *testing.T, dir string, s *spec) {
		p := writeFile(t, dir, "words.txt", "one two three\nfour five\nsix\n")
		s.args = []string{"wc", p}
	}},
	{name: "wc-stdin", spec: spec{args: []string{"wc", "-l"}, stdin: "a\nb\nc\n", want: []string{"3"}}},
	{name: "ls", setup: func(t *testing.T, dir string, s *spec) {
		d := filepath.Join(dir, "listing")
		for _, name := range []string{"gamma.txt", "alpha", "beta"} {
			writeFile(t, d, name, name+"\n")
		}
		if err := os.Mkdir(filepath.Join(d, "delta"), 0o755); err != nil {
			t.Fatal(err)
		}
		s.args = []string{"ls", "-1", d}
		s.want = []string{"alpha", "beta", "delta", "gamma.txt"}
	}},
	{name: "ls-l", setup: func(t *testing.T, dir string, s *spec) {
		d := filepath.Join(dir, "listing")
		writeFile(t, d, "file", "12345\n")
		if err := os.Symlink("file", filepath.Join(d, "link")); err != nil {
			t.Fatal(err)
		}
		s.args = []string{"ls", "-ln", d}
	}},
	{name: "seq", spec: spec{args: []string{"seq", "1", "3", "100"}, want: []string{"1", "4", "100"}}},
	{name: "expr", spec: spec{args: []string{"expr", "6", "*", "7"}, want: []string{"42"}}},
	{name: "expr-false", spec: spec{args: []string{"expr", "1", "=", "2"}, status: 1, want: []string{"0"}}},
	{name: "sleep", spec: spec{args: []string{"sleep", "0.2"}}},
	{name: "uname", spec: spec{args: []string{"uname", "-s", "-m"}, want: []string{"Linux x86_64"}}},
}

// TestBusybox runs busybox-static applets natively and under snap and
// requires the same stdout, stderr and exit status.
func TestBusybox(t *testing.T) {
	if _, err := os.Stat(busyboxPath); err != nil {
		prereq.Missing(t, "busybox-static (%s): %v", busyboxPath, err)
	}
	for _, c := range busyboxCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := c.spec
			s.zdtm.skip = true // not a testdata/c program
			if c.setup != nil {
				c.setup(t, t.TempDir(), &s)
			}
			compare(t, "busybox/"+c.name, append([]string{busyboxPath}, s.args...), s)
		})
	}
}

// writeFile creates dir (if needed) and dir/name holding content, and
// returns the file's path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
