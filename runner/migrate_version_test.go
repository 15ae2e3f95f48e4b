package runner

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"snapshotter/internal/ctest"
	"snapshotter/migration"
	_ "snapshotter/platform/ptrace"
)

// TestMigrateVersions moves dirtycount, in this process, between a source
// and a target that announce different protocol versions. Minors differ:
// both speak the lower one (no Sync to a 2.1 target, no questions with
// 2.0) and the sandbox moves, every checksum holding. Majors differ: the
// source refuses before it sends anything, with one line naming both
// versions, and the sandbox runs on at the source.
func TestMigrateVersions(t *testing.T) {
	prog := ctest.Program(t, ctest.Glibc, "dirtycount")
	cur := migration.Current()
	for _, tc := range []struct {
		name           string
		source, target migration.Version
		wantErr        bool
	}{
		{name: "current-to-2.1", target: migration.Version{Major: cur.Major, Minor: 1}},
		{name: "current-to-2.0", target: migration.Version{Major: cur.Major, Minor: 0}},
		{name: "2.1-to-current", source: migration.Version{Major: cur.Major, Minor: 1}},
		{name: "2.0-to-current", source: migration.Version{Major: cur.Major, Minor: 0}},
		{name: "current-to-newer-minor", target: migration.Version{Major: cur.Major, Minor: cur.Minor + 1}},
		{name: "current-to-1.0", target: migration.Version{Major: 1, Minor: 0}, wantErr: true},
		{name: "3.0-to-current", source: migration.Version{Major: cur.Major + 1, Minor: 0}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srcOut, src := startDirtycount(t, prog, filepath.Join(dir, "source-out"))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			tgtPath := filepath.Join(dir, "target-out")
			tgtOut, err := os.Create(tgtPath)
			if err != nil {
				t.Fatal(err)
			}
			defer tgtOut.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			type received struct {
				sb  *KernelSandbox
				err error
			}
			got := make(chan received, 1)
			go func() {
				sb, _, err := Receive(ctx, ReceiveOptions{Listener: ln, Token: []byte("tok"), Version: tc.target,
					Kernel: KernelOptions{ID: "v", Stdout: tgtOut, Stderr: tgtOut}})
				got <- received{sb, err}
			}()
			before := len(outputLines(srcOut))
			uri, err := src.Save(ctx, SaveRequest{Migrate: "tcp://" + ln.Addr().String(), Token: []byte("tok"),
				MigrateVersion: tc.source}, nil)
			if tc.wantErr {
				if !errors.Is(err, migration.ErrIncompatibleVersion) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("migrate = %q, %v; want one line of ErrIncompatibleVersion", uri, err)
				}
				// The sandbox runs on here, its checksums holding.
				checkDirtyLines(t, "source", waitOutputLines(t, srcOut, before+3)[before:])
				cancel()
				if r := <-got; r.err == nil {
					r.sb.Kill(9)
					r.sb.Wait()
					r.sb.Release()
					t.Fatalf("the target received a sandbox from a source of another major version")
				}
				return
			}
			if err != nil {
				t.Fatalf("migrate = %v, want success", err)
			}
			r := <-got
			if r.err != nil {
				t.Fatalf("receive = %v", r.err)
			}
			defer func() {
				r.sb.Kill(9)
				r.sb.Wait()
				r.sb.Release()
			}()
			checkDirtyLines(t, "target", waitOutputLines(t, tgtPath, 2))
		})
	}
}

// startDirtycount runs dirtycount (24 MiB, rewriting 2 MiB a second: its
// first round is sealed on workers) in this process with its output in
// path, once it printed a line; the sandbox is killed and released when
// the test ends.
func startDirtycount(t *testing.T, prog, path string) (string, *KernelSandbox) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	sb, err := StartKernel(KernelOptions{ID: "v", Argv: []string{prog, "24", "2048"}, Stdout: f, Stderr: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sb.Kill(9)
		sb.Wait()
		sb.Release()
	})
	waitOutputLines(t, path, 1)
	return path, sb
}

// outputLines returns the complete lines in the file at path.
func outputLines(path string) []string {
	b, _ := os.ReadFile(path)
	s := string(b)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// waitOutputLines waits until the file at path has n complete lines.
func waitOutputLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if l := outputLines(path); len(l) >= n {
			return l
		} else if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines after a minute, want %d: %q", path, len(l), n, l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkDirtyLines fails unless every line is one of dirtycount's checks
// that held.
func checkDirtyLines(t *testing.T, side string, lines []string) {
	t.Helper()
	for _, l := range lines {
		if !strings.HasPrefix(l, "count ") || !strings.HasSuffix(l, "sum OK") {
			t.Errorf("%s printed %q, want count K sum OK", side, l)
		}
	}
}
