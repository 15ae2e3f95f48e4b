package kernel

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"snapshotter/stateify"
)

// TestMMSaveLoad saves an MM with stateify, loads it and rebinds it to a new
// address space: the vmas, the break and the platform mappings must match.
func TestMMSaveLoad(t *testing.T) {
	mm, _ := newTestMM(t)
	mm.setBrkStart(0x600000)
	mm.Brk(0x600000 + 3*pageSize)
	a := mustMMap(t, mm, MMapOpts{Length: 4 * pageSize, Perms: permRead | permWrite, Private: true})
	if err := mm.Mprotect(a+pageSize, pageSize, 0); err != nil {
		t.Fatal(err)
	}
	mustMMap(t, mm, MMapOpts{Length: pageSize, Perms: permRead | permExec, Private: true, Name: "/bin/x"})

	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, mm); err != nil {
		t.Fatalf("Save(MM): %v", err)
	}
	var got MM
	if err := stateify.Load(context.Background(), &buf, &got); err != nil {
		t.Fatalf("Load(MM): %v", err)
	}
	if got.mf == nil || got.mf.fd != -1 || got.mf.mapping != nil {
		t.Fatalf("loaded memory file = %+v, want one waiting for a new memfd", got.mf)
	}
	if got.mf.size != mm.mf.size || !slices.Equal(got.mf.free, mm.mf.free) {
		t.Errorf("loaded allocator = size %d free %v, want size %d free %v", got.mf.size, got.mf.free, mm.mf.size, mm.mf.free)
	}
	got.mf = mm.mf // what a restorer does once the new memfd holds the contents
	as := newRecordingAS()
	if err := got.attachAddressSpace(as); err != nil {
		t.Fatalf("attachAddressSpace: %v", err)
	}
	if !slices.Equal(got.Mappings(), mm.Mappings()) {
		t.Errorf("loaded mappings = %+v, want %+v", got.Mappings(), mm.Mappings())
	}
	if got.brk != mm.brk || got.brkStart != mm.brkStart || got.stackTop != mm.stackTop || got.mmapTop != mm.mmapTop {
		t.Errorf("loaded layout brk %#x/%#x stack %#x mmap %#x, want %#x/%#x %#x %#x",
			got.brkStart, got.brk, got.stackTop, got.mmapTop, mm.brkStart, mm.brk, mm.stackTop, mm.mmapTop)
	}
	checkMirror(t, &got, as)
}
