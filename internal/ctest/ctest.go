// Package ctest compiles the C programs that tests run: the programs of
// testdata/c, with gcc (glibc) and musl-gcc (musl), and C sources that a
// test carries inline. Each distinct compilation (compiler, flags, source
// text) happens once per test binary run, however many tests ask for it,
// and its output is cached under a temporary directory keyed by a hash of
// all three. A test binary that uses ctest calls Cleanup at the end of its
// TestMain, which removes that directory.
//
// A missing compiler is a missing prerequisite (internal/prereq): the test
// skips, or fails under SNAP_REQUIRE_ALL=1. A compilation error fails the
// test.
package ctest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"snapshotter/internal/prereq"
)

// A Libc is a C compiler that links against one C library.
type Libc struct {
	// Name is used in test names and case keys: "gcc" (glibc) or "musl".
	Name string
	// CC is the compiler command.
	CC string
}

// The two C libraries every program of testdata/c is built with.
var (
	Glibc = Libc{Name: "gcc", CC: "gcc"}
	Musl  = Libc{Name: "musl", CC: "musl-gcc"}
	Libcs = []Libc{Glibc, Musl}
)

// StrictFlags are the flags testdata/c programs are compiled with, besides
// the link mode: a warning is an error.
var StrictFlags = []string{"-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror"}

// Program returns testdata/c/NAME.c compiled statically by lc with
// StrictFlags.
func Program(t testing.TB, lc Libc, name string) string {
	t.Helper()
	dir, err := SourceDir()
	if err != nil {
		t.Fatalf("find testdata/c: %v", err)
	}
	return File(t, lc.CC, filepath.Join(dir, name+".c"), append([]string{"-static"}, StrictFlags...)...)
}

// File returns the C file at src compiled by the compiler cc with flags
// (all of them: link mode, optimization, warnings).
func File(t testing.TB, cc, src string, flags ...string) string {
	t.Helper()
	text, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("read %s: %v", src, err)
	}
	name := filepath.Base(src)
	return build(t, cc, name[:len(name)-len(filepath.Ext(name))], text, flags)
}

// Source returns the C program text compiled by cc with flags; name names
// the binary.
func Source(t testing.TB, cc, name, text string, flags ...string) string {
	t.Helper()
	return build(t, cc, name, []byte(text), flags)
}

// TrySource is Source that returns a compilation error instead of failing
// t, for a test that treats some failures (a link mode the toolchain
// lacks) as a missing prerequisite.
func TrySource(t testing.TB, cc, name, text string, flags ...string) (string, error) {
	t.Helper()
	return tryBuild(t, cc, name, []byte(text), flags)
}

// SourceDir returns the directory of the C test programs, testdata/c at
// the module's root (found from the working directory, which is a
// package's directory when tests run).
func SourceDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "c"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Cleanup removes the compiled programs of this run. TestMain calls it
// after m.Run.
func Cleanup() {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if cacheDir != "" {
		os.RemoveAll(cacheDir)
		cacheDir = ""
	}
}

var (
	cacheMu sync.Mutex
	// cacheDir holds this run's binaries; made on first use. Protected by
	// cacheMu.
	cacheDir string
	// builds maps a compilation's hash to its *result.
	builds sync.Map
)

type result struct {
	once sync.Once
	path string
	err  error
}

func build(t testing.TB, compiler, name string, text []byte, flags []string) string {
	t.Helper()
	path, err := tryBuild(t, compiler, name, text, flags)
	if err != nil {
		t.Fatalf("compile %s with %s: %v", name, compiler, err)
	}
	return path
}

func tryBuild(t testing.TB, compiler, name string, text []byte, flags []string) (string, error) {
	t.Helper()
	cc := prereq.Binary(t, compiler)
	h := sha256.New()
	for _, s := range append([]string{cc}, flags...) {
		fmt.Fprintf(h, "%q\n", s)
	}
	h.Write(text)
	key := hex.EncodeToString(h.Sum(nil))[:16]
	v, _ := builds.LoadOrStore(key, &result{})
	r := v.(*result)
	r.once.Do(func() { r.path, r.err = compile(cc, key, name, text, flags) })
	return r.path, r.err
}

// compile writes text to KEY/NAME.c in the cache directory and compiles it
// to KEY/NAME there (the binary keeps the program's name: it shows in
// argv[0], /proc/self/comm and messages).
func compile(cc, key, name string, text []byte, flags []string) (string, error) {
	cache, err := dir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, key)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(dir, name+".c")
	if err := os.WriteFile(src, text, 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	args := append(append([]string(nil), flags...), "-o", out, src)
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s %v: %w\n%s", cc, args, err, b)
	}
	return out, nil
}

func dir() (string, error) {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if cacheDir == "" {
		d, err := os.MkdirTemp("", "snap-ctest-")
		if err != nil {
			return "", err
		}
		cacheDir = d
	}
	return cacheDir, nil
}
