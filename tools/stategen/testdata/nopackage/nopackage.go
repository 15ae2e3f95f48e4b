// Package nopackage has an annotated type but no +stateify package line.
package nopackage

//go:generate go run snapshotter/tools/stategen

// T is savable.
//
// +stateify savable
type T struct {
	N int
}
