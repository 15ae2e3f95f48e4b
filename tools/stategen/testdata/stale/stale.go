// Package stale has a committed generated file that no longer matches its
// types (the field Gone was removed), for the -check test.
package stale

//go:generate go run snapshotter/tools/stategen
// +stateify package=snapshotter/tools/stategen/testdata/stale

// T lost a field since stale_state_autogen.go was generated.
//
// +stateify savable
type T struct {
	Kept int
}
