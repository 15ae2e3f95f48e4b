package stateify_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"snapshotter/stateify"
	"snapshotter/stateify/internal/benchdata"
	"snapshotter/stateify/internal/statetest"
	"snapshotter/stateify/internal/statetest/other"
)

// newGraph builds a graph with every construct: shared and cyclic pointers,
// maps, slices, arrays, interfaces, embedded and cross-package structs.
func newGraph() *statetest.Graph {
	g := &statetest.Graph{}
	g.Version = 7
	g.Basics = statetest.Basics{
		B: true, I: -1 << 40, I8: -128, I16: -300, I32: math.MinInt32, I64: math.MinInt64,
		U: 1 << 63, U8: 255, U16: 65535, U32: math.MaxUint32, U64: math.MaxUint64, UP: 0xdeadbeef,
		F32: 1.5, F64: -math.MaxFloat64, S: "héllo, world", Bytes: []byte{0, 1, 2}, Blob: statetest.Blob("blob"),
		Arr: [3]int32{-1, 0, 1}, ByteArr: [4]byte{9, 8, 7, 6}, ID: 42, Flags: 0x8001, Name: "init",
		Sigs: statetest.SigSet{1 << 9, 1 << 63}, Dur: 1500000000,
	}
	thing := other.NewThing("shared", 3, 0xabcdef)
	for i := range 20 {
		n := &statetest.Node{ID: statetest.ID(i + 1), Name: string(rune('a' + i)), Parent: g, Thing: thing}
		g.Nodes = append(g.Nodes, n)
	}
	g.ByID = map[statetest.ID]*statetest.Node{}
	g.ByName = map[string]*statetest.Node{}
	for i, n := range g.Nodes {
		n.Peer = g.Nodes[(i+1)%len(g.Nodes)]
		g.ByID[n.ID] = n
		g.ByName[n.Name] = n
		if i > 0 {
			g.Nodes[0].Children = append(g.Nodes[0].Children, n)
		}
	}
	g.Nodes[5].Children = []*statetest.Node{}
	g.Root = g.Nodes[0]
	g.State = statetest.NewRunApp(3)
	g.TypedNil = statetest.TypedNilState()
	g.Any = g.Nodes[2]
	g.Items = [2]statetest.Item{{Key: "a", Value: 1, Owner: g.Nodes[1]}, {Key: "b", Value: -2}}
	g.ItemSlice = []statetest.Item{{Key: "s", Value: 3, Owner: g.Nodes[3]}}
	g.ItemMap = map[int64]statetest.Item{-5: {Key: "m", Owner: g.Nodes[4]}, 9: {Key: "n"}}
	g.Nested = map[string][]int32{"x": {1, 2}, "y": nil, "z": {}}
	g.Matrix = [][]uint16{{1}, nil, {2, 3}}
	g.Things = map[uint8]other.Thing{1: *other.NewThing("one", 1, 1)}
	g.OtherVal = *other.NewThing("val", -1, 2)
	g.SetHidden(-99, true, 12345, 0x401000, 0x7ffe0000)
	g.SetHostOnly(1234)
	return g
}

func save(t *testing.T, root any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, root); err != nil {
		t.Fatalf("Save(%T) = %v, want nil", root, err)
	}
	return buf.Bytes()
}

func TestRoundTripGraph(t *testing.T) {
	g := newGraph()
	stream := save(t, g)
	if _, _, saves, _ := g.HostOnly(); saves != 1 {
		t.Errorf("beforeSave calls = %d, want 1", saves)
	}
	var got statetest.Graph
	if err := stateify.Load(context.Background(), bytes.NewReader(stream), &got); err != nil {
		t.Fatalf("Load = %v, want nil", err)
	}

	events, cached, _, loaded := got.HostOnly()
	if !loaded || events == nil || cached != len(got.Nodes) {
		t.Errorf("afterLoad effects = (loaded %v, events %v, cached %d), want (true, non-nil, %d)", loaded, events != nil, cached, len(got.Nodes))
	}
	// Pointer identity: every path to one object leads to one object.
	identity := []struct {
		name string
		a, b any
	}{
		{"Root == Nodes[0]", got.Root, got.Nodes[0]},
		{"ByID[1] == Nodes[0]", got.ByID[1], got.Nodes[0]},
		{"ByName[c] == Nodes[2]", got.ByName["c"], got.Nodes[2]},
		{"Nodes[19].Peer == Nodes[0]", got.Nodes[19].Peer, got.Nodes[0]},
		{"Nodes[0].Children[0] == Nodes[1]", got.Nodes[0].Children[0], got.Nodes[1]},
		{"Items[0].Owner == Nodes[1]", got.Items[0].Owner, got.Nodes[1]},
		{"ItemMap[-5].Owner == Nodes[4]", got.ItemMap[-5].Owner, got.Nodes[4]},
		{"Any == Nodes[2]", got.Any, got.Nodes[2]},
		{"Nodes[3].Thing == Nodes[7].Thing", got.Nodes[3].Thing, got.Nodes[7].Thing},
	}
	for _, c := range identity {
		if c.a != c.b {
			t.Errorf("%s: got distinct objects", c.name)
		}
	}
	if got.Nodes[0].Parent != &got {
		t.Errorf("Nodes[0].Parent = %p, want the loaded root %p", got.Nodes[0].Parent, &got)
	}
	if got.Nodes[3].Thing.Hidden() != 0xabcdef {
		t.Errorf("other.Thing.hidden = %#x, want 0xabcdef", got.Nodes[3].Thing.Hidden())
	}
	if next, ok := got.Run().(*statetest.RunExit); !ok || next.Code != 3 {
		t.Errorf("State.execute() = %#v, want &RunExit{Code: 3}", got.Run())
	}
	if p, ok := got.TypedNil.(*statetest.RunExit); !ok || p != nil {
		t.Errorf("TypedNil = %#v, want (*RunExit)(nil)", got.TypedNil)
	}
	if got.NilState != nil || got.NilNode != nil || got.NilMap != nil || got.Basics.NilBytes != nil {
		t.Errorf("nil fields loaded as non-nil: %v %v %v %v", got.NilState, got.NilNode, got.NilMap, got.Basics.NilBytes)
	}
	if got.Nested["y"] != nil || got.Nested["z"] == nil || got.Nodes[5].Children == nil {
		t.Errorf("nil/empty slices not preserved: y=%#v z=%#v children=%#v", got.Nested["y"], got.Nested["z"], got.Nodes[5].Children)
	}
	if c, f, u, ip, sp := got.Hidden(); c != -99 || !f || u != 12345 || ip != 0x401000 || sp != 0x7ffe0000 {
		t.Errorf("Hidden() = %d %v %d %#x %#x, want -99 true 12345 0x401000 0x7ffe0000", c, f, u, ip, sp)
	}
	g.ClearHostOnly()
	got.ClearHostOnly()
	if !reflect.DeepEqual(g, &got) {
		t.Errorf("loaded graph differs from the saved one:\n got %+v\nwant %+v", got.Basics, g.Basics)
	}
}

func TestRoundTripBasics(t *testing.T) {
	tests := []struct {
		name string
		in   statetest.Basics
	}{
		{"zero", statetest.Basics{}},
		{"max", statetest.Basics{I: math.MaxInt64, I8: math.MaxInt8, I16: math.MaxInt16, I32: math.MaxInt32, I64: math.MaxInt64,
			U: math.MaxUint64, U8: math.MaxUint8, U16: math.MaxUint16, U32: math.MaxUint32, U64: math.MaxUint64, UP: math.MaxUint64,
			F32: math.MaxFloat32, F64: math.Inf(1)}},
		{"min", statetest.Basics{I: math.MinInt64, I8: math.MinInt8, I16: math.MinInt16, I32: math.MinInt32, I64: math.MinInt64,
			F32: -math.SmallestNonzeroFloat32, F64: math.Inf(-1)}},
		{"boundaries", statetest.Basics{I: -33, I8: -32, I16: 128, I32: 65536, I64: -129, U16: 256, U32: 1 << 16, U64: 1 << 32}},
		{"long strings", statetest.Basics{S: string(bytes.Repeat([]byte("x"), 70000)), Bytes: bytes.Repeat([]byte{1}, 300), Name: "abcdefghijklmnopqrstuvwxyz0123456789"}},
		{"empty not nil", statetest.Basics{Bytes: []byte{}, Blob: statetest.Blob{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			stream := save(t, &in)
			var got statetest.Basics
			if err := stateify.Load(context.Background(), bytes.NewReader(stream), &got); err != nil {
				t.Fatalf("Load = %v, want nil", err)
			}
			if !reflect.DeepEqual(got, tc.in) {
				t.Errorf("Load(Save(%+v)) = %+v", tc.in, got)
			}
		})
	}
}

func TestLoadOverwritesRoot(t *testing.T) {
	stream := save(t, &statetest.Node{ID: 1})
	got := statetest.Node{Name: "stale", ID: 9}
	if err := stateify.Load(context.Background(), bytes.NewReader(stream), &got); err != nil {
		t.Fatalf("Load = %v", err)
	}
	if got.Name != "" || got.ID != 1 {
		t.Errorf("Load into a used root = %+v, want {ID: 1}", got)
	}
}

func TestSaveDeterministic(t *testing.T) {
	a, b := save(t, newGraph()), save(t, newGraph())
	if !bytes.Equal(a, b) {
		t.Errorf("two saves of equal graphs differ (%d and %d bytes)", len(a), len(b))
	}
}

// TestStreamIsMsgpack checks that the payload is a sequence of valid
// msgpack values as read by an independent implementation.
func TestStreamIsMsgpack(t *testing.T) {
	stream := save(t, newGraph())
	payload := stream[24 : len(stream)-4]
	dec := msgpack.NewDecoder(bytes.NewReader(payload))
	dec.SetMapDecoder(func(d *msgpack.Decoder) (any, error) { return d.DecodeUntypedMap() })
	var values int
	for {
		_, err := dec.DecodeInterface()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("msgpack value %d: %v", values, err)
		}
		values++
	}
	// type table + object count + one value per object.
	if values < 3 {
		t.Errorf("payload holds %d msgpack values, want at least 3", values)
	}
}

func TestSaveErrors(t *testing.T) {
	tests := []struct {
		name string
		root func() any
		want error
	}{
		{"not savable", func() any { return 5 }, stateify.ErrNotSavable},
		{"nil root", func() any { return (*statetest.Graph)(nil) }, stateify.ErrNotSavable},
		{"value not pointer", func() any { return statetest.Node{} }, stateify.ErrNotSavable},
		{"interface holds unregistered type", func() any { g := newGraph(); g.Any = 5; return g }, stateify.ErrNotSavable},
		{"zerovalue field set", func() any { g := newGraph(); g.SetScratch([]byte{1}); return g }, stateify.ErrNotSavable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := stateify.Save(context.Background(), io.Discard, tc.root())
			if !errors.Is(err, tc.want) {
				t.Errorf("Save = %v, want %v", err, tc.want)
			}
			if tc.name == "interface holds unregistered type" && !strings.Contains(err.Error(), "object #1 (snapshotter/stateify/internal/statetest.Graph): interface holds int") {
				t.Errorf("Save = %q, want it to name the object and the dynamic type", err)
			}
		})
	}
}

func TestLoadWrongRoot(t *testing.T) {
	stream := save(t, newGraph())
	var n statetest.Node
	err := stateify.Load(context.Background(), bytes.NewReader(stream), &n)
	if !errors.Is(err, stateify.ErrSchema) {
		t.Errorf("Load(Graph stream into *Node) = %v, want ErrSchema", err)
	}
}

// TestConcurrent saves and loads independent graphs from several goroutines
// (run under -race by make test).
func TestConcurrent(t *testing.T) {
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var buf bytes.Buffer
			if err := stateify.Save(context.Background(), &buf, newGraph()); err != nil {
				errs <- err
				return
			}
			var g statetest.Graph
			errs <- stateify.Load(context.Background(), &buf, &g)
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Save/Load = %v, want nil", err)
		}
	}
}

// TestGoldenV1 loads a stream written by format 1.0 (testdata/golden) and
// checks that it still decodes to the graph it was made from. Old golden
// files must keep loading in later builds, or fail with ErrVersion.
func TestGoldenV1(t *testing.T) {
	f, err := os.Open("testdata/golden/v1.0-graph.state")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got statetest.Graph
	if err := stateify.Load(context.Background(), f, &got); err != nil {
		var dump strings.Builder
		if _, serr := f.Seek(0, io.SeekStart); serr == nil {
			_ = stateify.Dump(&dump, f)
		}
		t.Fatalf("Load(golden 1.0) = %v\n%s", err, dump.String())
	}
	want := newGraph()
	want.ClearHostOnly()
	got.ClearHostOnly()
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("Load(golden 1.0) differs from newGraph()")
	}
}

// TestResaveIdentical checks that saving a loaded graph gives the same
// bytes as the original save: nothing is lost or reordered by a round trip.
func TestResaveIdentical(t *testing.T) {
	misc := &statetest.Misc{Base: &statetest.Base{Version: 1}, List: statetest.NodeList{{ID: 1}}, Anys: []any{&statetest.RunExit{Code: 2}}}
	misc.SetConv(5, "s")
	tests := []struct {
		name  string
		root  any
		fresh func() any
	}{
		{"graph", newGraph(), func() any { return &statetest.Graph{} }},
		{"misc", misc, func() any { return &statetest.Misc{} }},
		{"bench kernel", benchdata.New(100, 10, 4), func() any { return &benchdata.Kernel{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first := save(t, tc.root)
			loaded := tc.fresh()
			if err := stateify.Load(context.Background(), bytes.NewReader(first), loaded); err != nil {
				t.Fatalf("Load = %v", err)
			}
			if second := save(t, loaded); !bytes.Equal(first, second) {
				var a, b strings.Builder
				_ = stateify.Dump(&a, bytes.NewReader(first))
				_ = stateify.Dump(&b, bytes.NewReader(second))
				t.Errorf("Save(Load(Save(x))) differs from Save(x)\nfirst:\n%s\nsecond:\n%s", a.String(), b.String())
			}
		})
	}
}
