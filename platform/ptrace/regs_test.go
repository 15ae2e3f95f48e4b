//go:build linux && amd64

package ptrace

import (
	"testing"

	"snapshotter/platform"
)

// TestRaxOnlyWrite checks when load may write rax alone (PTRACE_POKEUSR)
// instead of every register: when nothing else but orig_rax differs, and
// rax is no code that would make the host restart the call it stopped in.
func TestRaxOnlyWrite(t *testing.T) {
	base := platform.Registers{Rax: 7, OrigRax: 39, Rip: 0x401000, Rsp: 0x7ffc0000, Rcx: 0x401000, R11: 0x246}
	neg := func(e int64) uint64 { return uint64(-e) }
	for _, tc := range []struct {
		name string
		edit func(r *platform.Registers)
		want bool
	}{
		{"result", func(r *platform.Registers) { r.Rax = 42 }, true},
		{"result and orig_rax", func(r *platform.Registers) { r.Rax, r.OrigRax = 42, ^uint64(0) }, true},
		{"error", func(r *platform.Registers) { r.Rax = neg(4) }, true}, // EINTR
		{"same", func(r *platform.Registers) {}, false},
		{"rip too", func(r *platform.Registers) { r.Rax, r.Rip = 42, r.Rip-2 }, false},
		{"rsp only", func(r *platform.Registers) { r.Rsp -= 8 }, false},
		{"ERESTARTSYS", func(r *platform.Registers) { r.Rax = neg(512) }, false},
		{"ERESTARTNOINTR", func(r *platform.Registers) { r.Rax = neg(513) }, false},
		{"ERESTARTNOHAND", func(r *platform.Registers) { r.Rax = neg(514) }, false},
		{"ENOIOCTLCMD", func(r *platform.Registers) { r.Rax = neg(515) }, true},
		{"ERESTART_RESTARTBLOCK", func(r *platform.Registers) { r.Rax = neg(516) }, false},
	} {
		want := base
		tc.edit(&want)
		got := onlyRaxDiffers(&want, &base) && !hostRestarts(want.Rax)
		if got != tc.want {
			t.Errorf("%s: rax alone = %v, want %v", tc.name, got, tc.want)
		}
	}
}
