package kernel

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"snapshotter/stateify"
)

// TestProcCmdline builds an initial stack, changes its argument area as
// programs do, and checks /proc/PID/cmdline against what Linux returns; the
// area must survive fork and a save/load of the MM.
func TestProcCmdline(t *testing.T) {
	argv := []string{"/bin/prog", "two words", "", "last"}
	env := []string{"A=1", "HOME=/root"}
	joined := strings.Join(argv, "\x00") + "\x00"
	tests := []struct {
		name string
		// edit changes the memory at the argument area's start a.
		edit func(t *testing.T, mm *MM, a argArea)
		want string
	}{
		{"as built", nil, joined},
		{"argv[0] shortened in place", func(t *testing.T, mm *MM, a argArea) {
			mustCopyOut(t, mm, a.Start, []byte("x\x00"))
		}, "x\x00" + joined[2:]},
		{"setproctitle over the final NUL", func(t *testing.T, mm *MM, a argArea) {
			mustCopyOut(t, mm, a.Start, bytes.Repeat([]byte("T"), int(a.End-a.Start)))
		}, strings.Repeat("T", len(joined)) + "A=1\x00"},
		{"setproctitle with a NUL inside the arguments", func(t *testing.T, mm *MM, a argArea) {
			mustCopyOut(t, mm, a.End-1, []byte("!"))
		}, "/bin/prog\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mm, _ := newTestMM(t)
			if _, err := mm.setupStack(argv, env, "/bin/prog", [16]byte{}, nil); err != nil {
				t.Fatalf("setupStack: %v", err)
			}
			a := mm.args
			if a.End-a.Start != uint64(len(joined)) || a.EnvEnd-a.End != uint64(len("A=1\x00HOME=/root\x00")) {
				t.Fatalf("args = %+v: %d argument bytes, %d environment bytes, want %d and %d",
					a, a.End-a.Start, a.EnvEnd-a.End, len(joined), len("A=1\x00HOME=/root\x00"))
			}
			if tc.edit != nil {
				tc.edit(t, mm, a)
			}
			if got := string(procCmdline(mm)); got != tc.want {
				t.Errorf("procCmdline = %q, want %q", got, tc.want)
			}

			child, err := mm.fork(newRecordingAS())
			if err != nil {
				t.Fatalf("fork: %v", err)
			}
			defer child.Release()
			if got := string(procCmdline(child)); got != tc.want {
				t.Errorf("procCmdline(forked) = %q, want %q", got, tc.want)
			}

			var buf bytes.Buffer
			if err := stateify.Save(context.Background(), &buf, mm); err != nil {
				t.Fatalf("Save(MM): %v", err)
			}
			var loaded MM
			if err := stateify.Load(context.Background(), &buf, &loaded); err != nil {
				t.Fatalf("Load(MM): %v", err)
			}
			if loaded.args != mm.args {
				t.Errorf("loaded args = %+v, want %+v", loaded.args, mm.args)
			}
		})
	}
	if got := procCmdline(nil); got != nil {
		t.Errorf("procCmdline(nil) = %q, want nil", got)
	}
	var empty MM
	if got := procCmdline(&empty); got != nil {
		t.Errorf("procCmdline(MM without a stack) = %q, want nil", got)
	}
}

func mustCopyOut(t *testing.T, mm *MM, addr uint64, b []byte) {
	t.Helper()
	if err := mm.CopyOut(addr, b); err != nil {
		t.Fatalf("CopyOut(%#x, %d bytes): %v", addr, len(b), err)
	}
}
