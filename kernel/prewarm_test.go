package kernel

import (
	"errors"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/internal/prereq"
	"snapshotter/platform"
	"snapshotter/platform/prewarm"
)

// registerOtherOnce registers the ptrace constructor under a second name,
// so that a test can ask New for a platform other than the prewarmed one.
var registerOtherOnce sync.Once

const otherPlatform = "ptrace-prewarm-test"

// waitPrewarmed waits for the pending Prewarm and returns the platform it
// made.
func waitPrewarmed(t *testing.T) platform.Platform {
	t.Helper()
	if !prewarm.Pending() {
		t.Fatal("Prewarm left nothing to take")
	}
	p := prewarm.Peek()
	if p == nil {
		prereq.Missing(t, "the ptrace platform could not be made here")
	}
	return p
}

// released reports whether p was released: it makes no address space.
func released(p platform.Platform) bool {
	as, err := p.NewAddressSpace()
	if err == nil {
		as.Release()
	}
	return err != nil
}

// TestPrewarm checks that New takes the platform Prewarm made for the same
// platform, and releases it when New fails or wants another platform.
func TestPrewarm(t *testing.T) {
	registerOtherOnce.Do(func() {
		ctor, err := platform.Lookup("ptrace")
		if err != nil {
			t.Fatal(err)
		}
		platform.Register(otherPlatform, ctor)
	})
	tests := []struct {
		name     string
		cfg      Config
		wantErr  error
		wantUsed bool
	}{
		{name: "same platform", cfg: Config{}, wantUsed: true},
		{name: "same platform by name", cfg: Config{Platform: "ptrace"}, wantUsed: true},
		{name: "other platform", cfg: Config{Platform: otherPlatform}},
		{name: "bad root", cfg: Config{Root: "/nonexistent-snap-root"}, wantErr: unix.ENOENT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Prewarm("ptrace")
			Prewarm("ptrace") // pending: does nothing
			pw := waitPrewarmed(t)
			k, err := New(tc.cfg)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("New(%+v) = %v, want %v", tc.cfg, err, tc.wantErr)
			}
			if k != nil {
				defer k.Release()
			}
			if used := k != nil && k.platform == pw; used != tc.wantUsed {
				t.Errorf("New(%+v) took the prewarmed platform = %v, want %v", tc.cfg, used, tc.wantUsed)
			}
			if !tc.wantUsed && !released(pw) {
				t.Errorf("New(%+v) left the prewarmed platform unreleased", tc.cfg)
			}
			if prewarm.Pending() {
				t.Errorf("after New(%+v), a prewarmed platform is still pending", tc.cfg)
			}
		})
	}
}
