//go:build linux && amd64

package ptrace

import (
	"os"
	"testing"

	"snapshotter/internal/ctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	ctest.Cleanup()
	os.Exit(code)
}
