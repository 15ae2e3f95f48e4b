package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/kernel"
)

func TestRender(t *testing.T) {
	rows := []kernel.SyscallInfo{
		{Number: 0, Name: "read", Level: "full"},
		{Number: 13, Name: "rt_sigaction", Level: "partial", Note: "a | b"},
		{Number: 101, Name: "ptrace", Level: "unsupported", Errno: "EPERM", Note: "no tracing"},
	}
	doc := string(render(rows))
	for _, want := range []string{
		"3 calls: 1 full, 1 partial, 1 unsupported.",
		"| 0 | `read` | full |  |  |",
		"| 13 | `rt_sigaction` | partial |  | a \\| b |",
		"| 101 | `ptrace` | unsupported | EPERM | no tracing |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("render(%d rows) lacks %q:\n%s", len(rows), want, doc)
		}
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "SYSCALLS.md")
	tests := []struct {
		name    string
		prepare func()
		check   bool
		status  int
	}{
		{"missing file is stale", func() {}, true, 1},
		{"write", func() {}, false, 0},
		{"fresh file passes", func() {}, true, 0},
		{"edited file is stale", func() { os.WriteFile(path, []byte("# edited\n"), 0o644) }, true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.prepare()
			var stderr bytes.Buffer
			if got := run(path, tc.check, &stderr); got != tc.status {
				t.Errorf("run(%s, check=%v) = %d, want %d (stderr %q)", path, tc.check, got, tc.status, stderr.String())
			}
		})
	}
}
