package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
)

func TestStartErrorStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("/x: %w", unix.ENOENT), 127},
		{fmt.Errorf("/x: %w", unix.ENOTDIR), 127},
		{fmt.Errorf("/x: %w", unix.EACCES), 126},
		{fmt.Errorf("/x: %w", kernel.ErrNoExec), 126},
		{fmt.Errorf("%w /x: %w", kernel.ErrBadCwd, unix.ENOENT), 1},
	}
	for _, tc := range tests {
		var ex *exitError
		err := startError("/x", tc.err)
		if tc.want == 1 {
			if errors.As(err, &ex) || !errors.Is(err, kernel.ErrBadCwd) {
				t.Errorf("startError(%v) = %v, want a usage error wrapping ErrBadCwd", tc.err, err)
			}
			continue
		}
		if !errors.As(err, &ex) || ex.code != tc.want {
			t.Errorf("startError(%v) = %v, want exit status %d", tc.err, err, tc.want)
		}
	}
}

func TestInitialCwd(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rootfs, cwd, want string
	}{
		{"/some/rootfs", "", "/"},
		{"/some/rootfs", "sub/dir", "/sub/dir"},
		{"/some/rootfs", "/a/../b", "/b"},
		{"/", "", wd},
		{"/", "sub", filepath.Join(wd, "sub")},
		{"/", "/tmp", "/tmp"},
	}
	for _, tc := range tests {
		if got := initialCwd(tc.rootfs, tc.cwd); got != tc.want {
			t.Errorf("initialCwd(%q, %q) = %q, want %q", tc.rootfs, tc.cwd, got, tc.want)
		}
	}
}
