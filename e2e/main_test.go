package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"snapshotter/internal/prereq"
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
	cmd := exec.Command(gobin, "build", "-o", bin, "snapshotter/cmd/snapshotter")
	cmd.Dir = moduleRoot
	// As the Makefile builds it: a static binary without cgo starts without
	// the dynamic loader, so the benchmarks measure what users run.
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
		// vdso.so is embedded in snap (kernel/vdso).
		if !d.IsDir() && (strings.HasSuffix(path, ".go") || d.Name() == "go.mod" || d.Name() == "go.sum" || d.Name() == "vdso.so") {
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

// A libc is a C compiler that makes static binaries with one C library.
type libc struct {
	name string // in test names and knownBroken keys: "gcc" (glibc) or "musl"
	cc   string // the compiler command
}

var libcs = []libc{{"gcc", "gcc"}, {"musl", "musl-gcc"}}

// builds caches one compilation per (compiler, program) for the whole run.
var builds sync.Map // buildKey -> *buildResult

type buildKey struct{ cc, prog string }

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// program returns the path of testdata/c/<prog>.c compiled statically by
// lc's compiler, compiling it on first use. A missing compiler is a missing
// prerequisite; a compilation error fails t.
func program(t testing.TB, lc libc, prog string) string {
	t.Helper()
	cc := prereq.Binary(t, lc.cc)
	v, _ := builds.LoadOrStore(buildKey{lc.cc, prog}, &buildResult{})
	r := v.(*buildResult)
	r.once.Do(func() {
		src := filepath.Join(cSourceDir, prog+".c")
		out := filepath.Join(workDir, "bin", lc.name, prog)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			r.err = err
			return
		}
		cmd := exec.Command(cc, "-static", "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o", out, src)
		if b, err := cmd.CombinedOutput(); err != nil {
			r.err = fmt.Errorf("%s %s: %w\n%s", lc.cc, src, err, b)
			return
		}
		r.path = out
	})
	if r.err != nil {
		t.Fatalf("compile %s with %s: %v", prog, lc.cc, r.err)
	}
	return r.path
}
