package stateify_test

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"snapshotter/stateify/internal/statetest"
	"snapshotter/stateify/internal/statetest/other"
)

var updateMoved = flag.Bool("update-moved", false, "rewrite testdata/golden/v1.0-moved.state")

// movedGolden is the stream statetest's types write for TestMovedGolden;
// package statetest/moved loads it into types of another package that
// carry the same saved names.
const movedGolden = "testdata/golden/v1.0-moved.state"

// TestMovedGolden checks that statetest's types still write exactly the
// committed stream that statetest/moved's TestLoadMoved loads, so that the
// move test loads what the original types save today.
func TestMovedGolden(t *testing.T) {
	thing := other.NewThing("gadget", -3, 9)
	owner := &statetest.Node{ID: 7, Name: "owner", Thing: thing}
	owner.Peer = owner
	owner.Children = []*statetest.Node{owner, {Name: "child", Thing: thing}}
	got := save(t, &statetest.Item{Key: "moved", Value: 42, Owner: owner})
	if *updateMoved {
		if err := os.WriteFile(movedGolden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(movedGolden)
	if err != nil {
		t.Fatalf("%v (run go test ./stateify -run TestMovedGolden -update-moved)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Save(statetest.Item) differs from %s: a saved name or field changed; old images would no longer load", movedGolden)
	}
}
