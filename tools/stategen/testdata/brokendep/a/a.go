// Package a uses a savable type of package b.
package a

// +stateify package=snapshotter/tools/stategen/testdata/brokendep/a

import "snapshotter/tools/stategen/testdata/brokendep/b"

// Root holds b.Leaf by value and by pointer.
//
// +stateify savable
type Root struct {
	Leaf b.Leaf
	Ptr  *b.Leaf
}
