// Package prereq lets tests declare what they need from the machine (a
// compiler, ptrace, a MinIO binary). Locally a missing prerequisite skips
// the test; with SNAP_REQUIRE_ALL=1 (set by .ci/run) it fails it, so CI
// cannot pass by skipping.
package prereq

import (
	"os"
	"os/exec"
	"testing"
)

// RequireAll reports whether missing prerequisites are failures.
func RequireAll() bool { return os.Getenv("SNAP_REQUIRE_ALL") == "1" }

// Missing skips t, or fails it under SNAP_REQUIRE_ALL=1, saying what is missing.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if RequireAll() {
		t.Fatalf("prerequisite missing (SNAP_REQUIRE_ALL=1): "+format, args...)
	}
	t.Skipf("prerequisite missing: "+format, args...)
}

// Binary returns the path of the named executable on PATH, or calls Missing.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not on PATH: %v", name, err)
	}
	return p
}
