package stateify

import "testing"

// TestRegisterPackageLazy checks that a package's registrations run at the
// first look-up, once, and before the look-up answers.
func TestRegisterPackageLazy(t *testing.T) {
	calls := 0
	RegisterPackage(func() {
		calls++
		RegisterPackage(func() { calls += 10 }) // recorded while running: runs too
	})
	if calls != 0 {
		t.Fatalf("registrations ran at RegisterPackage: calls = %d, want 0", calls)
	}
	tests := []struct {
		name   string
		lookup func()
	}{
		{"Lookup", func() { Lookup("snapshotter/stateify.none") }},
		{"RegisteredTypes", func() { RegisteredTypes() }},
	}
	for _, tc := range tests {
		tc.lookup()
		if calls != 11 {
			t.Errorf("after %s: calls = %d, want 11", tc.name, calls)
		}
	}
}
