package kernel_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
)

// TestStartScriptErrors: Start follows "#!" lines and fails as execve(2)
// does on Linux when a script cannot run (checked natively on 6.18).
func TestStartScriptErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := write("missing-interp", "#!"+filepath.Join(dir, "nowhere")+"\n", 0o755)
	text := write("text", "plain text\n", 0o755)
	textInterp := write("text-interp", "#!"+text+"\n", 0o755)
	noexecInterp := write("noexec-interp", "#!"+write("noexec", "#!/bin/sh\n", 0o644)+"\n", 0o755)
	dirInterp := write("dir-interp", "#!"+dir+"\n", 0o755)
	empty := write("empty-interp", "#!", 0o755)
	blank := write("blank-interp", "#!  \n", 0o755)
	// A loop: each script names the other.
	loopA, loopB := filepath.Join(dir, "loop-a"), filepath.Join(dir, "loop-b")
	write("loop-a", "#!"+loopB+"\n", 0o755)
	write("loop-b", "#!"+loopA+"\n", 0o755)

	k, err := kernel.New(kernel.Config{})
	if err != nil {
		t.Fatalf("kernel.New: %v", err)
	}
	defer k.Release()
	tests := []struct {
		name string
		path string
		want error
	}{
		{"missing interpreter", missing, unix.ENOENT},
		{"interpreter not ELF", textInterp, kernel.ErrNoExec},
		{"interpreter not executable", noexecInterp, unix.EACCES},
		{"interpreter a directory", dirInterp, unix.EACCES},
		{"empty interpreter", empty, unix.EACCES},
		{"blank interpreter", blank, kernel.ErrNoExec},
		{"loop", loopA, unix.ELOOP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := k.Start(kernel.StartOptions{Argv: []string{tc.path}}); !errors.Is(err, tc.want) {
				t.Errorf("Start(%q) = %v, want %v", tc.path, err, tc.want)
			}
		})
	}
}
