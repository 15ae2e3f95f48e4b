// Package b's Leaf has the saved name that package a's Leaf takes too.
package b

//go:generate go run snapshotter/tools/stategen
// +stateify package=dup

// Leaf is saved as dup.Leaf.
//
// +stateify savable
type Leaf struct {
	N int
}
