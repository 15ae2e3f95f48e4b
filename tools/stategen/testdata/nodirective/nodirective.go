// Package nodirective has an annotated type but no go:generate line.
package nodirective

// +stateify package=snapshotter/tools/stategen/testdata/nodirective

// T is savable.
//
// +stateify savable
type T struct {
	N int
}
