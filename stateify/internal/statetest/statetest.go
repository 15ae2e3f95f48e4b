// Package statetest holds savable types covering every construct stateify
// supports. The stateify tests round-trip them; tools/stategen's golden test
// checks that statetest_state_autogen.go is what the generator emits.
package statetest

//go:generate go run snapshotter/tools/stategen
// +stateify package=snapshotter/stateify/internal/statetest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"snapshotter/stateify/internal/statetest/other"
)

// ID is a named integer type.
type ID int32

// Flags is a named unsigned type.
type Flags uint16

// Name is a named string type.
type Name string

// SigSet is a named array type.
type SigSet [2]uint64

// Blob is a named byte slice type.
type Blob []byte

// Basics has a field of every basic kind.
//
// +stateify savable
type Basics struct {
	B        bool
	I        int
	I8       int8
	I16      int16
	I32      int32
	I64      int64
	U        uint
	U8       uint8
	U16      uint16
	U32      uint32
	U64      uint64
	UP       uintptr
	F32      float32
	F64      float64
	S        string
	Bytes    []byte
	NilBytes []byte
	Blob     Blob
	Arr      [3]int32
	ByteArr  [4]byte
	ID       ID
	Flags    Flags
	Name     Name
	Sigs     SigSet
	Dur      time.Duration
}

// Item is stored by value in arrays, slices and maps.
//
// +stateify savable
type Item struct {
	Key   string
	Value int64
	Owner *Node
}

// Base is embedded in Graph.
//
// +stateify savable
type Base struct {
	Version uint32
}

// Node is a graph vertex: nodes point at each other and at their graph, so
// the graph has cycles and shared pointers.
//
// +stateify savable
type Node struct {
	ID       ID
	Name     string
	Peer     *Node
	Parent   *Graph
	Children []*Node
	Thing    *other.Thing
}

// runState is an interface holding registered types, like the kernel's
// task run states.
type runState interface {
	execute(g *Graph) runState
}

// RunApp is a run state.
//
// +stateify savable
type RunApp struct {
	Steps int
}

func (r *RunApp) execute(*Graph) runState { return &RunExit{Code: r.Steps} }

// RunExit is a run state.
//
// +stateify savable
type RunExit struct {
	Code int
}

func (r *RunExit) execute(*Graph) runState { return nil }

// hostRegs is not savable: Graph saves it through savedRegs.
type hostRegs struct {
	ip, sp uint64
}

// savedRegs is the saved form of hostRegs.
//
// +stateify savable
type savedRegs struct {
	IP, SP uint64
}

// Graph is the root of the round-trip tests.
//
// +stateify savable
type Graph struct {
	Base
	Basics    Basics
	Nodes     []*Node
	ByID      map[ID]*Node
	ByName    map[string]*Node
	Root      *Node
	NilNode   *Node
	State     runState
	NilState  runState
	TypedNil  runState
	Any       any
	Items     [2]Item
	ItemSlice []Item
	ItemMap   map[int64]Item
	Nested    map[string][]int32
	Matrix    [][]uint16
	NilMap    map[int]string
	Things    map[uint8]other.Thing
	OtherVal  other.Thing
	count     atomic.Int64
	flag      atomic.Bool
	u32       atomic.Uint32

	// mu is host-only: never saved.
	mu sync.Mutex `state:"nosave"`
	// events is rebuilt by afterLoad.
	events chan int `state:"nosave"`
	// cached is recomputed by afterLoad.
	cached int `state:"nosave"`
	// regs is saved through savedRegs.
	regs hostRegs `state:".(savedRegs)"`
	// scratch must be empty at save time.
	scratch []byte `state:"zerovalue"`
	// saves counts beforeSave calls; it is not saved.
	saves int `state:"nosave"`
	// loaded is set by afterLoad.
	loaded bool `state:"nosave"`
}

func (g *Graph) beforeSave() { g.saves++ }

func (g *Graph) afterLoad(context.Context) {
	g.loaded = true
	g.events = make(chan int, 1)
	g.cached = len(g.Nodes)
}

func (g *Graph) saveRegs() savedRegs { return savedRegs{IP: g.regs.ip, SP: g.regs.sp} }

func (g *Graph) loadRegs(_ context.Context, r savedRegs) { g.regs = hostRegs{ip: r.IP, sp: r.SP} }
