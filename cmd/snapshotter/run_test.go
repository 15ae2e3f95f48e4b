package main

import (
	"errors"
	"fmt"
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
	}
	for _, tc := range tests {
		var ex *exitError
		if err := startError("/x", tc.err); !errors.As(err, &ex) || ex.code != tc.want {
			t.Errorf("startError(%v) = %v, want exit status %d", tc.err, err, tc.want)
		}
	}
}

func TestInitialCwd(t *testing.T) {
	if got := initialCwd("/some/rootfs"); got != "/" {
		t.Errorf("initialCwd(/some/rootfs) = %q, want /", got)
	}
	if got := initialCwd("/"); got == "" || got[0] != '/' {
		t.Errorf("initialCwd(/) = %q, want the absolute working directory", got)
	}
}
