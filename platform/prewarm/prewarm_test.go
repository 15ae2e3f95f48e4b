package prewarm_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/internal/prereq"
	"snapshotter/platform"
	"snapshotter/platform/prewarm"
	_ "snapshotter/platform/ptrace"
)

// TestStartTake checks what Take hands out after Start: the platform and
// memfd for the same name (once), nothing for another name (and what was
// made is released), nothing without a Start or for an unknown platform.
func TestStartTake(t *testing.T) {
	tests := []struct {
		name      string
		start     string // "" for no Start
		take      string
		wantTaken bool
	}{
		{name: "same platform", start: "ptrace", take: "ptrace", wantTaken: true},
		{name: "other platform", start: "ptrace", take: "other", wantTaken: false},
		{name: "no start", take: "ptrace", wantTaken: false},
		{name: "unknown platform", start: "no-such-platform", take: "no-such-platform", wantTaken: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var made platform.Platform
			if tc.start != "" {
				prewarm.Start(tc.start)
				prewarm.Start(tc.start) // pending: does nothing
				made = prewarm.Peek()
				if tc.start == "ptrace" && made == nil {
					prereq.Missing(t, "the ptrace platform could not be made here")
				}
			}
			fd, p := prewarm.Take(tc.take)
			if taken := p != nil; taken != tc.wantTaken {
				t.Fatalf("Take(%q) after Start(%q) = %v, want taken %v", tc.take, tc.start, p, tc.wantTaken)
			}
			if prewarm.Pending() {
				t.Errorf("after Take(%q), something is still pending", tc.take)
			}
			if p == nil {
				if fd != -1 {
					t.Errorf("Take(%q) = fd %d without a platform, want -1", tc.take, fd)
				}
				if made != nil {
					if as, err := made.NewAddressSpace(); err == nil {
						as.Release()
						t.Errorf("the platform made for %q and not taken was not released", tc.start)
					}
				}
				return
			}
			defer p.Release()
			defer unix.Close(fd)
			if p != made {
				t.Errorf("Take(%q) = %p, want the platform Start made (%p)", tc.take, p, made)
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Size != 0 {
				t.Errorf("Take(%q) = fd %d (fstat %v, size %d), want an empty memfd", tc.take, fd, err, st.Size)
			}
			as, err := p.NewAddressSpace()
			if err != nil {
				t.Fatalf("the taken platform makes no address space: %v", err)
			}
			as.Release()
		})
	}
}
