// Package a imports package b, and one of its types is saved under the
// name of one of b's.
package a

//go:generate go run snapshotter/tools/stategen
// +stateify package=snapshotter/tools/stategen/testdata/dupnames/a

import "snapshotter/tools/stategen/testdata/dupnames/b"

// Leaf takes b.Leaf's saved name.
//
// +stateify savable name=dup.Leaf
type Leaf struct {
	Other *b.Leaf
}
