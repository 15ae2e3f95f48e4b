package runner

import (
	"runtime"
	"testing"
)

// TestGCCycles: the migration's round log counts the collections that
// finished, as runtime/metrics' /gc/cycles/total did.
func TestGCCycles(t *testing.T) {
	before := gcCycles()
	runtime.GC()
	runtime.GC()
	if got := gcCycles(); got < before+2 {
		t.Errorf("gcCycles() after two runtime.GC() = %d, want at least %d", got, before+2)
	}
}
