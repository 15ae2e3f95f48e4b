package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/internal/ctest"
)

// moduleRoot is the repository root, relative to this package's directory
// (the working directory of its tests).
const moduleRoot = ".."

// cSourceDir holds the C test programs.
const cSourceDir = moduleRoot + "/testdata/c"

var (
	// workDir is a temporary directory for this run: the snap binary, the
	// compiled programs and the per-test files. Removed when the run ends.
	workDir string
	// snapBin is the snap binary built by TestMain, valid if snapErr is nil.
	snapBin string
	snapErr error
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "snap-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	workDir = dir
	defer ctest.Cleanup()
	snapBin, snapErr = buildSnap(dir)
	return m.Run()
}

// buildSnap builds the snap command into dir. It also stats every Go source
// of the module and every C test program so that `go test` knows this
// package's results depend on them and does not reuse a cached result after
// the kernel or a program changed.
func buildSnap(dir string) (string, error) {
	if err := statModuleSources(); err != nil {
		return "", err
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("find the go command to build snap: %w", err)
	}
	bin := filepath.Join(dir, "snap")
	cmd := exec.Command(gobin, "build", "-ldflags=-E=_rt0_snap", "-o", bin, "snapshotter/cmd/snapshotter")
	cmd.Dir = moduleRoot
	// As the Makefile builds it: a static binary without cgo starts without
	// the dynamic loader, so the benchmarks measure what users run; its
	// entry point is snap's own (cmd/snapshotter/internal/fasttake).
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build snapshotter/cmd/snapshotter: %w\n%s", err, out)
	}
	return bin, nil
}

func statModuleSources() error {
	srcs, err := filepath.Glob(filepath.Join(cSourceDir, "*.c"))
	if err != nil {
		return err
	}
	for _, src := range srcs {
		if _, err := os.Stat(src); err != nil {
			return err
		}
	}
	return filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != moduleRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "e2e") {
			return filepath.SkipDir
		}
		// vdso.so is embedded in snap (kernel/vdso); the .s and .syso
		// files are its entry code (cmd/snapshotter/internal/fasttake).
		if !d.IsDir() && (strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".s") || strings.HasSuffix(path, ".syso") || d.Name() == "go.mod" || d.Name() == "go.sum" || d.Name() == "vdso.so") {
			_, err := os.Stat(path)
			return err
		}
		return nil
	})
}

// snap returns the snap binary or fails t if it could not be built.
func snap(t testing.TB) string {
	t.Helper()
	if snapErr != nil {
		t.Fatalf("snap was not built: %v", snapErr)
	}
	return snapBin
}

// libcs are the C libraries every program is built with.
var libcs = ctest.Libcs

// program returns testdata/c/<prog>.c compiled statically by lc's compiler
// (once per run, by internal/ctest). A missing compiler is a missing
// prerequisite; a compilation error fails t.
func program(t testing.TB, lc ctest.Libc, prog string) string {
	t.Helper()
	return ctest.Program(t, lc, prog)
}
