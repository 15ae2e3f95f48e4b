package stateify_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"

	"snapshotter/stateify"
	"snapshotter/stateify/internal/statetest"
)

const pkgPath = "snapshotter/stateify/internal/statetest."

// refram recomputes the checksum of a stream whose payload a test edited,
// so that the decoder sees the edit rather than a checksum error.
func reframe(stream []byte) []byte {
	out := append([]byte(nil), stream...)
	body := out[:len(out)-4]
	binary.BigEndian.PutUint64(body[16:24], uint64(len(body)-24))
	crc := crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(out[len(out)-4:], crc)
	return out
}

// rename replaces every occurrence of one type name with another of the
// same length and fixes the checksum.
func rename(t *testing.T, stream []byte, from, to string) []byte {
	t.Helper()
	if len(from) != len(to) {
		t.Fatalf("rename %q -> %q: lengths differ", from, to)
	}
	if !bytes.Contains(stream, []byte(from)) {
		t.Fatalf("rename: %q not in stream", from)
	}
	return reframe(bytes.ReplaceAll(stream, []byte(from), []byte(to)))
}

func evolveA() *statetest.EvolveA {
	return &statetest.EvolveA{
		Keep:    -77,
		Removed: []string{"x", "y"},
		Name:    "kept",
		Gone:    map[int32]*statetest.Node{1: {Name: "only via removed field"}},
		Ptr:     &statetest.Node{ID: 5, Name: "ptr"},
	}
}

func TestEvolutionAddedRemovedReordered(t *testing.T) {
	stream := rename(t, save(t, evolveA()), pkgPath+"EvolveA", pkgPath+"EvolveB")
	var got statetest.EvolveB
	if err := stateify.Load(context.Background(), bytes.NewReader(stream), &got); err != nil {
		t.Fatalf("Load(EvolveA stream as EvolveB) = %v, want nil", err)
	}
	if got.Keep != -77 || got.Name != "kept" || got.Added != 0 || got.Ptr == nil || got.Ptr.ID != 5 || got.Ptr.Name != "ptr" {
		t.Errorf("Load(EvolveA as EvolveB) = %+v (Ptr %+v), want {Keep: -77, Name: kept, Added: 0, Ptr: {ID: 5}}", got, got.Ptr)
	}
}

func TestEvolutionErrors(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
		load     any
		want     error
		wantText []string
	}{
		{"changed field type", "EvolveA", "EvolveC", &statetest.EvolveC{}, stateify.ErrSchema,
			[]string{pkgPath + "EvolveC.Keep", "int64", "string"}},
		{"unknown root type", "EvolveA", "EvolveZ", &statetest.EvolveA{}, stateify.ErrSchema,
			[]string{pkgPath + "EvolveZ", "not registered"}},
		{"unknown field type", "statetest.Node", "statetest.Nod9", &statetest.EvolveA{}, stateify.ErrSchema,
			[]string{pkgPath + "Nod9", "EvolveA.Gone"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream := rename(t, save(t, evolveA()), tc.from, tc.to)
			err := stateify.Load(context.Background(), bytes.NewReader(stream), tc.load)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Load = %v, want %v", err, tc.want)
			}
			for _, s := range tc.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Load error %q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	good := save(t, &statetest.Node{ID: 1})
	tests := []struct {
		name         string
		major, minor uint16
		want         error
	}{
		{"same", stateify.MajorVersion, stateify.MinorVersion, nil},
		{"newer minor", stateify.MajorVersion, stateify.MinorVersion + 1, stateify.ErrVersion},
		{"newer major", stateify.MajorVersion + 1, 0, stateify.ErrVersion},
		{"older major", stateify.MajorVersion - 1, 0, stateify.ErrVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := append([]byte(nil), good...)
			binary.BigEndian.PutUint16(s[8:], tc.major)
			binary.BigEndian.PutUint16(s[10:], tc.minor)
			var n statetest.Node
			err := stateify.Load(context.Background(), bytes.NewReader(reframe(s)), &n)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("Load(version %d.%d) = %v, want %v", tc.major, tc.minor, err, tc.want)
			}
		})
	}
}

func TestWaitOrder(t *testing.T) {
	log := &statetest.Log{}
	w := map[string]*statetest.Waiter{}
	for _, n := range []string{"root", "a", "b", "c", "free"} {
		w[n] = &statetest.Waiter{Name: n, Log: log}
	}
	// root waits on a, a on b and c; b waits on c. "free" waits on nobody
	// and is reached first (through Peers), so plain object order would run
	// root's hook first.
	w["root"].Peers = []*statetest.Waiter{w["free"]}
	w["root"].Deps = []*statetest.Waiter{w["a"]}
	w["a"].Deps = []*statetest.Waiter{w["b"], w["c"]}
	w["b"].Deps = []*statetest.Waiter{w["c"]}
	stream := save(t, w["root"])
	var got statetest.Waiter
	if err := stateify.Load(context.Background(), bytes.NewReader(stream), &got); err != nil {
		t.Fatalf("Load = %v", err)
	}
	order := got.Log.Entries
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	if len(order) != 5 {
		t.Fatalf("afterLoad ran for %v, want 5 objects", order)
	}
	for _, dep := range [][2]string{{"c", "b"}, {"c", "a"}, {"b", "a"}, {"a", "root"}} {
		if pos[dep[0]] > pos[dep[1]] {
			t.Errorf("afterLoad order %v: %s ran after %s, which waits on it", order, dep[0], dep[1])
		}
	}
	var walk func(*statetest.Waiter)
	seen := map[*statetest.Waiter]bool{}
	walk = func(x *statetest.Waiter) {
		if seen[x] {
			return
		}
		seen[x] = true
		if len(x.Early) > 0 {
			t.Errorf("%s.afterLoad ran before its deps %v", x.Name, x.Early)
		}
		for _, d := range append(x.Deps, x.Peers...) {
			walk(d)
		}
	}
	walk(&got)
}

func TestWaitCycle(t *testing.T) {
	log := &statetest.Log{}
	a := &statetest.Waiter{Name: "a", Log: log}
	b := &statetest.Waiter{Name: "b", Log: log}
	a.Deps = []*statetest.Waiter{b}
	b.Deps = []*statetest.Waiter{a}
	stream := save(t, a)
	var got statetest.Waiter
	err := stateify.Load(context.Background(), bytes.NewReader(stream), &got)
	if !errors.Is(err, stateify.ErrWaitCycle) {
		t.Fatalf("Load(wait cycle) = %v, want ErrWaitCycle", err)
	}
	if want := pkgPath + "Waiter waits on " + pkgPath + "Waiter"; !strings.Contains(err.Error(), want) {
		t.Errorf("Load(wait cycle) = %q, want it to name the types (%q)", err, want)
	}
}

func TestInteriorPointer(t *testing.T) {
	outer := &statetest.Outer{Pad: 1, In: statetest.Inner{V: 2}}
	outer.P = &outer.In
	first := &statetest.First{In: statetest.Inner{V: 3}}
	first.P = &first.In
	separate := &statetest.Outer{P: &statetest.Inner{V: 4}}
	arr := &statetest.ArrayOuter{}
	arr.P = &arr.Arr[1]
	// A pointer into a struct that is not itself saved is just an object.
	shared := &statetest.Outer{Pad: 5}
	later := &statetest.ArrayOuter{P: &shared.In}
	tests := []struct {
		name string
		root any
		want error
	}{
		{"pointer into the middle", outer, stateify.ErrNotSavable},
		{"pointer to the first field", first, stateify.ErrNotSavable},
		{"separate object", separate, nil},
		{"pointer into an array element", arr, stateify.ErrNotSavable},
		{"pointer into a struct reached only through it", later, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := stateify.Save(context.Background(), &bytes.Buffer{}, tc.root)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("Save = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestLocksInContainers(t *testing.T) {
	in := &statetest.LockHolder{Map: map[int32]statetest.Locked{1: {N: 1}, 2: {N: 2}}, Slice: make([]statetest.Locked, 3)}
	in.Slice[2].N = 5
	in.Arr[1].N = 7
	var got statetest.LockHolder
	if err := stateify.Load(context.Background(), bytes.NewReader(save(t, in)), &got); err != nil {
		t.Fatalf("Load = %v", err)
	}
	if len(got.Map) != 2 || got.Map[2].N != 2 || len(got.Slice) != 3 || got.Slice[2].N != 5 || got.Arr[1].N != 7 {
		t.Errorf("Load(LockHolder) = map %v slice len %d arr[1] %d, want N values 1,2 / 3 / 7", len(got.Map), len(got.Slice), got.Arr[1].N)
	}
}

func TestRoundTripMisc(t *testing.T) {
	n1, n2 := &statetest.Node{ID: 1}, &statetest.Node{ID: 2}
	in := &statetest.Misc{
		Base:   &statetest.Base{Version: 3},
		Flags:  []statetest.Flag{1, 255},
		List:   statetest.NodeList{n1, nil, n2},
		Index:  statetest.NodeIndex{"one": n1, "two": n2},
		Anys:   []any{n1, nil, &statetest.RunApp{Steps: 4}},
		AnyMap: map[int16]any{-1: n2},
		Wait:   n1,
		Grid:   [2][3]int8{{1, 2, 3}, {-4, -5, -6}},
		Floats: map[string]float64{"pi": 3.14159, "neg": -0.5},
	}
	in.SetConv(42, "conv")
	var got statetest.Misc
	if err := stateify.Load(context.Background(), bytes.NewReader(save(t, in)), &got); err != nil {
		t.Fatalf("Load = %v", err)
	}
	if p, s := got.Conv(); p != 42 || s != "conv" {
		t.Errorf("Conv() = %d, %q, want 42, conv", p, s)
	}
	if got.Base == nil || got.Version != 3 {
		t.Errorf("embedded *Base = %+v, want Version 3", got.Base)
	}
	g1 := got.List[0]
	if got.Index["one"] != g1 || got.Anys[0] != any(g1) || got.Wait != any(g1) || got.AnyMap[-1] != any(got.List[2]) || got.List[1] != nil {
		t.Errorf("pointer identity lost across named containers and interfaces: %+v", got)
	}
	in.SetConv(0, "")
	got.SetConv(0, "")
	if !reflect.DeepEqual(in, &got) {
		t.Errorf("Load(Save(Misc)) = %+v, want %+v", &got, in)
	}
}

func TestRoundTripAliases(t *testing.T) {
	n := &statetest.Node{ID: 9}
	in := &statetest.Aliased{Ptr: n, Val: statetest.Item{Key: "k", Owner: n}, Items: map[string]statetest.ItemAlias{"a": {Value: 1}}}
	var got statetest.Aliased
	if err := stateify.Load(context.Background(), bytes.NewReader(save(t, in)), &got); err != nil {
		t.Fatalf("Load = %v", err)
	}
	if got.Ptr == nil || got.Ptr != got.Val.Owner || got.Ptr.ID != 9 || got.Items["a"].Value != 1 {
		t.Errorf("Load(Aliased) = %+v, want Ptr == Val.Owner with ID 9 and Items[a].Value 1", got)
	}
}
