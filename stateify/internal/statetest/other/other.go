// Package other holds a savable type from a second package, so that the
// stateify tests cover cross-package fields.
package other

//go:generate go run snapshotter/tools/stategen
// +stateify package=snapshotter/stateify/internal/statetest/other

// Thing is saved from another package.
//
// +stateify savable
type Thing struct {
	Label  string
	Count  int64
	hidden uint32
}

// NewThing returns a Thing whose unexported field is set.
func NewThing(label string, count int64, hidden uint32) *Thing {
	return &Thing{Label: label, Count: count, hidden: hidden}
}

// Hidden returns the unexported field.
func (t *Thing) Hidden() uint32 { return t.hidden }
