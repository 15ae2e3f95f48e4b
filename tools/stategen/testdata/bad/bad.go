// Package bad holds types that stategen must reject. Each rejected line
// carries a comment `want "text"` naming the expected error.
package bad

// +stateify package=snapshotter/tools/stategen/testdata/bad

import (
	"context"
	"sync"
	"time"
	"unsafe"
)

type plain struct{ a int }

// Generic is rejected: generic types cannot be annotated.
//
// +stateify savable
type Generic[T any] struct { // want "generic types cannot be +stateify savable"
	v T
}

// NotStruct is rejected: only structs can be annotated.
//
// +stateify savable
type NotStruct int // want "only struct types can be +stateify savable"

// Fields has one unsavable field per line.
//
// +stateify savable
type Fields struct {
	mu      sync.Mutex      // want "sync.Mutex cannot be saved; tag it state:\"nosave\""
	rw      sync.RWMutex    // want "sync.RWMutex cannot be saved"
	ch      chan int        // want "channels cannot be saved"
	fn      func()          // want "functions cannot be saved"
	up      unsafe.Pointer  // want "unsafe.Pointer cannot be saved"
	when    time.Time       // want "time.Time cannot be saved; save it through state:\".(int64)\""
	pi      *int            // want "pointer to int: only pointers to +stateify savable structs are supported"
	anon    struct{ x int } // want "anonymous struct types are not supported"
	pl      plain           // want "struct type plain is not +stateify savable"
	key     map[[2]int]int  // want "map key type [2]int: only integer and string keys"
	c       complex128      // want "complex numbers are not supported"
	tagged  int             `state:"sometimes"` // want "unknown tag state:\"sometimes\""
	conv    plain           `state:".(int64)"`  // want "needs methods func (*Fields) saveConv() int64"
	elems   []chan int      // want "slice element: channels cannot be saved"
	ok      int             `state:"nosave"`
	okMu    sync.Mutex      `state:"nosave"`
	okWait  *Fields         `state:"wait"`
	okValue []byte          `state:"zerovalue"`
}

// Hooks has an afterLoad with the wrong signature.
//
// +stateify savable
type Hooks struct {
	n int
}

func (h *Hooks) afterLoad() {} // want "method Hooks.afterLoad has signature func(), stateify needs func(context.Context)"

// Tree contains itself by value through a slice.
//
// +stateify savable
type Tree struct { // want "type Tree contains itself by value (Tree.Kids[]): decoding it would recurse"
	Kids []Tree
}

// Forest contains itself through a map of another savable type.
//
// +stateify savable
type Forest struct { // want "type Forest contains itself by value (Forest.Groves[].Forests[])"
	Groves map[string]Grove
}

// Grove is part of Forest's cycle (reported on Forest and on Grove).
//
// +stateify savable
type Grove struct { // want "type Grove contains itself by value"
	Forests []Forest
}

// PtrTree is fine: the recursion goes through a pointer.
//
// +stateify savable
type PtrTree struct {
	Kids []*PtrTree
}

// Renamed is saved under the name PtrTree already has.
//
// +stateify savable name=snapshotter/tools/stategen/testdata/bad.PtrTree
type Renamed struct { // want "type Renamed: saved name \"snapshotter/tools/stategen/testdata/bad.PtrTree\" is already the saved name of PtrTree (testdata/bad/bad.go:"
	N int
}

// BadOption has an option stategen does not know.
//
// +stateify savable nmae=bad.BadOption
type BadOption struct { // want "unknown option \"nmae=bad.BadOption\""
	N int
}

// BadName has a saved name without a package part.
//
// +stateify savable name=BadName
type BadName struct { // want "saved name \"BadName\" is not PKG.Type"
	N int
}

// UsesBadName refers to a type whose saved name is wrong.
//
// +stateify savable
type UsesBadName struct {
	P *BadName // want "type BadName has no saved name"
}

var _ = context.Background
