// Package moved holds types that live in another Go package than the
// statetest and other types they were saved as, with different Go names for
// some, to show that a type's saved name, not its Go package path, decides
// what an image loads into. Its package line claims statetest's saved
// package name, so its types are saved as statetest's types of the same Go
// name; Gadget carries the full saved name of other.Thing instead.
//
// This package and statetest are never linked into one program: their
// saved names collide on purpose.
package moved

//go:generate go run snapshotter/tools/stategen
// +stateify package=snapshotter/stateify/internal/statetest

// Item is statetest.Item, moved.
//
// +stateify savable
type Item struct {
	Key   string
	Value int64
	Owner *Node
}

// Node is statetest.Node, moved, without its Parent field (a removed field
// is skipped on load).
//
// +stateify savable
type Node struct {
	ID       int32
	Name     string
	Peer     *Node
	Children []*Node
	Thing    *Gadget
}

// Gadget is other.Thing, moved and renamed.
//
// +stateify savable name=snapshotter/stateify/internal/statetest/other.Thing
type Gadget struct {
	Label  string
	Count  int64
	hidden uint32
}

// Hidden returns the unexported field.
func (g *Gadget) Hidden() uint32 { return g.hidden }
