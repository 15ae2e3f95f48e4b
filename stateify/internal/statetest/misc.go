package statetest

import "context"

// Flag is a named byte: slices of it are arrays, not bin.
type Flag uint8

// Key is a named string map key.
type Key string

// NodeList is a named slice of pointers.
type NodeList []*Node

// NodeIndex is a named map type.
type NodeIndex map[Key]*Node

// Misc covers the remaining constructs: an embedded pointer, named
// containers, interfaces inside containers, a waited-on interface and
// conversions to pointer and slice types.
//
// +stateify savable
type Misc struct {
	*Base
	Flags  []Flag
	List   NodeList
	Index  NodeIndex
	Anys   []any
	AnyMap map[int16]any
	Wait   any `state:"wait"`
	Grid   [2][3]int8
	Floats map[string]float64

	// ptrConv is saved through a pointer type.
	ptrConv int64 `state:".(*Node)"`
	// sliceConv is saved through a slice type.
	sliceConv string `state:".([]string)"`
}

func (m *Misc) savePtrConv() *Node { return &Node{ID: ID(m.ptrConv)} }

func (m *Misc) loadPtrConv(_ context.Context, n *Node) { m.ptrConv = int64(n.ID) }

func (m *Misc) saveSliceConv() []string { return []string{m.sliceConv, m.sliceConv} }

func (m *Misc) loadSliceConv(_ context.Context, s []string) {
	if len(s) == 2 {
		m.sliceConv = s[0]
	}
}

// SetConv sets the converted fields.
func (m *Misc) SetConv(p int64, s string) { m.ptrConv, m.sliceConv = p, s }

// Conv returns the converted fields.
func (m *Misc) Conv() (int64, string) { return m.ptrConv, m.sliceConv }

// NodeAlias and ItemAlias are type aliases.
type (
	NodeAlias = Node
	ItemAlias = Item
)

// Aliased has fields whose types are spelled with aliases.
//
// +stateify savable
type Aliased struct {
	Ptr   *NodeAlias
	Val   ItemAlias
	Items map[string]ItemAlias
}
