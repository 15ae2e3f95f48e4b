// Package b has a generated file that no longer compiles (as after a
// change of the stateify API); generating package a, which imports b, must
// still work.
package b

// +stateify package=snapshotter/tools/stategen/testdata/brokendep/b

// Leaf is savable.
//
// +stateify savable
type Leaf struct {
	N int
}
