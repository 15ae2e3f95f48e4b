package fasttake

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"snapshotter/runner"
)

func TestParse(t *testing.T) {
	tests := []struct {
		args string
		want command
		ok   bool
	}{
		{"pool take p", command{stateDir: "/s", name: "p"}, true},
		{"--state-dir /x pool take p -d", command{stateDir: "/x", name: "p", detach: true}, true},
		{"--state-dir=/x --store s pool take p --wait", command{stateDir: "/x", name: "p"}, true},
		{"pool take --stdin i --stdout=o --stderr e p", command{stateDir: "/s", name: "p", paths: [3]string{"i", "o", "e"}}, true},
		{"pool take p --detach", command{stateDir: "/s", name: "p", detach: true}, true},
		{"pool take", command{}, false},
		{"pool take p q", command{}, false},
		{"pool take .p", command{}, false},
		{"pool take p --stdin", command{}, false},
		{"pool take p --unknown", command{}, false},
		{"pool take p -d=true", command{}, false},
		{"pool -d take p", command{}, false},
		{"--stdin f pool take p", command{}, false},
		{"pool ls", command{}, false},
		{"pool create p", command{}, false},
		{"run -- pool take p", command{}, false},
		{"take p", command{}, false},
		{"", command{}, false},
	}
	t.Setenv("SNAP_STATE_DIR", "/s")
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			got, ok := parse(strings.Fields(tc.args))
			if ok != tc.ok || ok && got != tc.want {
				t.Errorf("parse(%q) = %+v, %v, want %+v, %v", tc.args, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestTakeFrame checks the hand-made request against the protocol's
// decoder.
func TestTakeFrame(t *testing.T) {
	var req runner.Request
	if err := runner.ReadFrame(bytes.NewReader(takeFrame()), &req); err != nil {
		t.Fatal(err)
	}
	if req.Version != runner.ProtocolVersion || req.ID != 1 || req.Type != runner.ReqTake {
		t.Errorf("take frame decodes to %+v, want version %d, ID 1, type take", req, runner.ProtocolVersion)
	}
}

// TestMapString reads "kind" from responses as the sentry encodes them,
// with every kind of value before it.
func TestMapString(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		v    any
		want string
		ok   bool
	}{
		{"result", runner.Response{ID: 1, Kind: runner.KindResult}, "result", true},
		{"error", runner.Response{ID: 1 << 40, Kind: runner.KindError, Error: &runner.WireError{Code: "not_waiting", Message: strings.Repeat("m", 300)}}, "error", true},
		{"info", runner.Response{ID: 7, Info: &runner.Metadata{ID: "x", Created: now, Taken: &now, Argv: []string{"a", "b"}, PIDStart: 1 << 33}, Kind: "result"}, "result", true},
		{"mixed", map[string]any{"a": -5, "b": 1.5, "c": []byte{1, 2}, "d": nil, "e": true, "f": []any{map[string]any{"g": int64(-1 << 40)}}, "kind": "k"}, "k", true},
		{"absent", map[string]any{"id": 1}, "", false},
		{"not a map", []int{1}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := msgpack.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := mapString(b, "kind")
			if got != tc.want || ok != tc.ok {
				t.Errorf("mapString(%s) = %q, %v, want %q, %v", tc.name, got, ok, tc.want, tc.ok)
			}
			for i := range b {
				mapString(b[:i], "kind") // truncated: no panic
			}
		})
	}
}
