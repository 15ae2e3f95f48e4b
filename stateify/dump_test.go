package stateify_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"snapshotter/stateify"
	"snapshotter/stateify/internal/statetest"
)

func TestDump(t *testing.T) {
	n := &statetest.Node{ID: 7, Name: "seven", Children: []*statetest.Node{{ID: 8}}}
	var out strings.Builder
	if err := stateify.Dump(&out, bytes.NewReader(save(t, n))); err != nil {
		t.Fatalf("Dump = %v", err)
	}
	for _, want := range []string{
		"stateify stream 1.0",
		"[0] snapshotter/stateify/internal/statetest.Node",
		"Children []*snapshotter/stateify/internal/statetest.Node",
		"objects (2):",
		"#1 snapshotter/stateify/internal/statetest.Node {",
		`Name: "seven"`,
		"ID: 7",
		"Children: [#2]",
		"Peer: nil",
		"#2 snapshotter/stateify/internal/statetest.Node {",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("Dump output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDumpCorrupt(t *testing.T) {
	stream := save(t, newGraph())
	stream[len(stream)/2] ^= 0x40
	if err := stateify.Dump(&strings.Builder{}, bytes.NewReader(stream)); !errors.Is(err, stateify.ErrCorrupt) {
		t.Errorf("Dump(corrupt) = %v, want ErrCorrupt", err)
	}
}

// TestDumpEveryByte runs Dump over re-checksummed flips: it must not panic.
func TestDumpEveryByte(t *testing.T) {
	stream := save(t, &statetest.Node{ID: 1, Name: "n", Peer: &statetest.Node{ID: 2}})
	for i := 24; i < len(stream)-4; i++ {
		s := append([]byte(nil), stream...)
		s[i] ^= 0xff
		err := stateify.Dump(&strings.Builder{}, bytes.NewReader(reframe(s)))
		if err != nil && !errors.Is(err, stateify.ErrCorrupt) {
			t.Fatalf("Dump(byte %d flipped) = %v, want nil or ErrCorrupt", i, err)
		}
	}
}
