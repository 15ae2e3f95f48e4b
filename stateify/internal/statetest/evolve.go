package statetest

import (
	"context"
	"sync"
)

// EvolveA, EvolveB and EvolveC are three versions of one type for the
// schema evolution tests, which rename the type in a saved stream: B drops
// Removed and Gone and adds Added; C changes the type of Keep.
//
// +stateify savable
type EvolveA struct {
	Keep    int64
	Removed []string
	Name    string
	Gone    map[int32]*Node
	Ptr     *Node
}

// EvolveB is EvolveA with fields added, removed and reordered.
//
// +stateify savable
type EvolveB struct {
	Ptr   *Node
	Added uint32
	Name  string
	Keep  int64
}

// EvolveC is EvolveA with a field whose type changed.
//
// +stateify savable
type EvolveC struct {
	Keep string
}

// Log records afterLoad calls.
//
// +stateify savable
type Log struct {
	Entries []string `state:"nosave"`
}

// Waiter's afterLoad runs after those of its Deps (state:"wait").
//
// +stateify savable
type Waiter struct {
	Name  string
	Log   *Log
	Deps  []*Waiter `state:"wait"`
	Peers []*Waiter
	// Ready is set by afterLoad; a Waiter checks that its Deps are ready.
	Ready bool `state:"nosave"`
	// Early lists Deps that were not ready when afterLoad ran.
	Early []string `state:"nosave"`
}

func (w *Waiter) afterLoad(context.Context) {
	for _, d := range w.Deps {
		if !d.Ready {
			w.Early = append(w.Early, d.Name)
		}
	}
	w.Ready = true
	w.Log.Entries = append(w.Log.Entries, w.Name)
}

// Inner is pointed into by Outer.P in the interior-pointer tests.
//
// +stateify savable
type Inner struct {
	V int64
}

// Outer holds an Inner by value.
//
// +stateify savable
type Outer struct {
	Pad int64
	In  Inner
	P   *Inner
}

// First holds an Inner at offset 0.
//
// +stateify savable
type First struct {
	In Inner
	P  *Inner
}

// Locked holds a mutex; it is stored by value in maps, slices and arrays to
// check that generated code never copies a lock (go vet copylocks).
//
// +stateify savable
type Locked struct {
	mu sync.Mutex `state:"nosave"`
	N  int
}

// Add increments N under mu.
func (l *Locked) Add(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.N += n
}

// LockHolder stores Locked values in every container.
//
// +stateify savable
type LockHolder struct {
	Map   map[int32]Locked
	Slice []Locked
	Arr   [2]Locked
}

// ArrayOuter holds Inner values in an array; P may point at one of them.
//
// +stateify savable
type ArrayOuter struct {
	Arr [3]Inner
	P   *Inner
}
