package kernel

import (
	"errors"
	"runtime/debug"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"64M", 64 << 20, false},
		{"64MiB", 64 << 20, false},
		{"2g", 2 << 30, false},
		{"4096", 4096, false},
		{"8K", 8 << 10, false},
		{"unlimited", MaxMemory, false},
		{"64G", 64 << 30, false},
		{"65G", 0, true},
		{"1T", 0, true},
		{"0", 0, true},
		{"100", 0, true},
		{"", 0, true},
		{"M", 0, true},
		{"12Q", 0, true},
		{"-1G", 0, true},
		{"99999999999999999999", 0, true},
		{"18014398509481984K", 0, true}, // overflows when shifted
	} {
		got, err := ParseMemoryLimit(tc.in)
		if tc.wantErr {
			if !errors.Is(err, ErrBadLimit) {
				t.Errorf("ParseMemoryLimit(%q) = %d, %v; want ErrBadLimit", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMemoryLimit(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestLimitsOverride(t *testing.T) {
	saved := Limits{Tasks: 20, Memory: 64 << 20}
	for _, tc := range []struct {
		name string
		o    Limits
		want Limits
	}{
		{"none", Limits{}, saved},
		{"tasks", Limits{Tasks: 30}, Limits{Tasks: 30, Memory: 64 << 20}},
		{"memory", Limits{Memory: MaxMemory}, Limits{Tasks: 20, Memory: MaxMemory}},
	} {
		if got := saved.withDefaults().override(tc.o); got != tc.want {
			t.Errorf("%s: override = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if got, want := (Limits{}).withDefaults(), (Limits{Tasks: DefaultTasks, Memory: MaxMemory}); got != want {
		t.Errorf("zero Limits with defaults = %+v, want %+v", got, want)
	}
}

// TestMemoryFileLimit: an allocation that would pass the limit fails with
// ErrNoMemory; freeing makes room again.
func TestMemoryFileLimit(t *testing.T) {
	mf, err := NewMemoryFile("limit-test")
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Release()
	mf.setLimit(16 << 20)
	a, err := mf.Allocate(12 << 20)
	if err != nil {
		t.Fatalf("Allocate(12 MiB) under a 16 MiB limit = %v", err)
	}
	if _, err := mf.Allocate(8 << 20); !errors.Is(err, ErrNoMemory) {
		t.Fatalf("Allocate(8 MiB) with 12 of 16 MiB in use = %v, want ErrNoMemory", err)
	}
	mf.Free(a)
	if _, err := mf.Allocate(16 << 20); err != nil {
		t.Errorf("Allocate(16 MiB) after Free = %v, want success", err)
	}
}

// TestApplyLimitsThreads: the Go runtime's thread limit ends above what the
// task limit allows, so the sentry reaches EAGAIN before the runtime's
// limit could kill it.
func TestApplyLimitsThreads(t *testing.T) {
	mf, err := NewMemoryFile("threads-test")
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Release()
	k := &Kernel{mf: mf, limits: Limits{Tasks: MaxTasks}.withDefaults()}
	k.applyLimits()
	got := debug.SetMaxThreads(1 << 20)
	debug.SetMaxThreads(got)
	if want := 4*MaxTasks + 1000; got < want {
		t.Errorf("thread limit after applyLimits with %d tasks = %d, want at least %d", MaxTasks, got, want)
	}
}
