package moved_test

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"snapshotter/stateify"
	"snapshotter/stateify/internal/statetest/moved"
)

// TestLoadMoved loads a stream that statetest's types wrote
// (stateify's TestMovedGolden keeps it equal to what they write today)
// into this package's types, which are saved under the same names.
func TestLoadMoved(t *testing.T) {
	f, err := os.Open("../../../testdata/golden/v1.0-moved.state")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got moved.Item
	if err := stateify.Load(context.Background(), f, &got); err != nil {
		t.Fatalf("Load(statetest's stream into moved.Item) = %v, want nil", err)
	}
	if got.Key != "moved" || got.Value != 42 || got.Owner == nil {
		t.Fatalf("Load = %+v, want Key moved, Value 42 and an Owner", got)
	}
	o := got.Owner
	if o.ID != 7 || o.Name != "owner" || o.Peer != o || len(o.Children) != 2 || o.Children[0] != o {
		t.Errorf("Owner = %+v, want ID 7, Name owner, Peer and Children[0] itself, 2 children", o)
	}
	if c := o.Children[1]; c == nil || c.Name != "child" || c.Thing != o.Thing {
		t.Errorf("Children[1] = %+v, want child sharing the owner's Thing", c)
	}
	if th := o.Thing; th == nil || th.Label != "gadget" || th.Count != -3 || th.Hidden() != 9 {
		t.Errorf("Thing = %+v, want gadget, -3, hidden 9", th)
	}
	for _, v := range []any{got, *o, *o.Thing} {
		typ := reflect.TypeOf(v)
		name := reflect.New(typ).Interface().(stateify.Savable).StateTypeName()
		if strings.HasPrefix(name, typ.PkgPath()+".") {
			t.Errorf("%s is saved as %s: the test must load across a package move", typ, name)
		}
	}
}
