package stateify

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

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

// dupA and dupB are two savable types that a program registers under one
// saved name (written by hand: stategen refuses to generate them).
type (
	dupA struct{ N int }
	dupB struct{ S string }
)

func (*dupA) StateTypeName() string               { return "snapshotter/stateify.dup" }
func (*dupA) StateFields() []string               { return []string{"N"} }
func (*dupA) StateTypeInfo() *TypeInfo            { return nil }
func (*dupA) StateSave(*Encoder)                  {}
func (*dupA) StateLoad(context.Context, *Decoder) {}
func (*dupB) StateTypeName() string               { return "snapshotter/stateify.dup" }
func (*dupB) StateFields() []string               { return []string{"S"} }
func (*dupB) StateTypeInfo() *TypeInfo            { return nil }
func (*dupB) StateSave(*Encoder)                  {}
func (*dupB) StateLoad(context.Context, *Decoder) {}

// TestRegisterDuplicateName registers two Go types under one saved name:
// no panic, and Save and Load fail with ErrRegister naming both Go types
// and the name (the registry is put back as it was afterwards).
func TestRegisterDuplicateName(t *testing.T) {
	registerPending()
	registry.mu.Lock()
	byName := maps.Clone(registry.byName)
	all := slices.Clone(registry.all)
	registry.mu.Unlock()
	defer func() {
		registry.mu.Lock()
		registry.byName, registry.all, registry.err = byName, all, nil
		registry.mu.Unlock()
	}()

	const name = "snapshotter/stateify.dup"
	first := Register[dupA](name, []Field{{Name: "N", Type: "int"}})
	RegisterPackage(func() { Register[dupB](name, []Field{{Name: "S", Type: "string"}}) })
	if ti, ok := Lookup(name); !ok || ti != first {
		t.Errorf("Lookup(%q) = %v, %v, want the first registration", name, ti, ok)
	}
	var buf bytes.Buffer
	ops := []struct {
		name string
		op   func() error
	}{
		{"Save", func() error { return Save(context.Background(), &buf, &dupA{}) }},
		{"Load", func() error { return Load(context.Background(), &buf, &dupA{}) }},
	}
	for _, tc := range ops {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			t.Logf("%s() = %v", tc.name, err)
			if !errors.Is(err, ErrRegister) {
				t.Fatalf("%s() = %v, want ErrRegister", tc.name, err)
			}
			for _, want := range []string{`"` + name + `"`, "snapshotter/stateify.dupA", "snapshotter/stateify.dupB"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s() = %q, want it to name %s", tc.name, err, want)
				}
			}
		})
	}
}
