package vfs

import (
	"errors"
	"testing"
)

// fakeProc has one process, 7, whose root is /jail and cwd /jail/w.
type fakeProc struct{ emptyProc }

func (fakeProc) ProcMagicLink(full string) (string, bool) {
	switch full {
	case "/proc/7/root":
		return "/jail", true
	case "/proc/7/cwd":
		return "/jail/w", true
	}
	return "", false
}

func TestProcWalk(t *testing.T) {
	tests := []struct {
		name, rest string
		follow     bool
		want       string // the clean path, or "-> " and where a walk continues
	}{
		{"root", "", true, "/proc"},
		{"file", "7/status", true, "/proc/7/status"},
		{"dot-dot inside", "7/fd/..", true, "/proc/7"},
		{"dot-dot out", "../etc/passwd", true, "-> /etc/passwd"},
		{"dot-dot out to /", "..", true, "-> /"},
		{"through root", "7/root/etc/x", false, "-> /jail/etc/x"},
		{"dot-dot after root", "7/root/../outside", false, "-> /jail/../outside"},
		{"final link followed", "7/cwd", true, "-> /jail/w"},
		{"final link not followed", "7/cwd", false, "/proc/7/cwd"},
		{"trailing slash follows", "7/root/", false, "-> /jail/"},
		{"not a magic link", "7/stat/x", true, "/proc/7/stat/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := procWalk(fakeProc{}, tc.rest, tc.follow)
			var c *crossing
			if errors.As(err, &c) {
				got = "-> " + c.full
			} else if err != nil {
				t.Fatalf("procWalk(%q) error %v", tc.rest, err)
			}
			if got != tc.want {
				t.Errorf("procWalk(%q, %v) = %q, want %q", tc.rest, tc.follow, got, tc.want)
			}
		})
	}
}
