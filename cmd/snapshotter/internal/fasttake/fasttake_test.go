package fasttake

import (
	"bytes"
	"os"
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
		{"pool take p -p 8080:80", command{}, false}, // the full command publishes
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

// TestRequestFrames checks the hand-made requests against the protocol's
// decoder.
func TestRequestFrames(t *testing.T) {
	tests := []struct {
		frame []byte
		want  runner.Request
	}{
		{takeFrame(), runner.Request{ID: 1, Type: runner.ReqTake}},
		{request(2, "wait", 0), runner.Request{ID: 2, Type: runner.ReqWait}},
		{request(9, "kill", 15), runner.Request{ID: 9, Type: runner.ReqKill, Signal: 15}},
	}
	for _, tc := range tests {
		var req runner.Request
		if err := runner.ReadFrame(bytes.NewReader(tc.frame), &req); err != nil {
			t.Fatalf("frame of %s: %v", tc.want.Type, err)
		}
		tc.want.Version = runner.ProtocolVersion
		if req.Version != tc.want.Version || req.ID != tc.want.ID || req.Type != tc.want.Type || req.Signal != tc.want.Signal {
			t.Errorf("frame decodes to %+v, want %+v", req, tc.want)
		}
	}
}

// TestExitStatus reads a wait answer as the sentry encodes it.
func TestExitStatus(t *testing.T) {
	tests := []runner.ExitStatus{{Code: 0}, {Code: 3}, {Code: 255}, {Signal: 9}, {Signal: 64}}
	for _, st := range tests {
		b, err := msgpack.Marshal(runner.Response{ID: 2, Kind: runner.KindResult, Exit: &st})
		if err != nil {
			t.Fatal(err)
		}
		id, _ := mapInt(b, "id")
		exit, ok := mapValue(b, "exit")
		code, _ := mapInt(exit, "code")
		sig, _ := mapInt(exit, "signal")
		if id != 2 || !ok || code != st.Code || sig != st.Signal {
			t.Errorf("answer of %v read as id %d, exit %v, code %d, signal %d", st, id, ok, code, sig)
		}
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

// TestPrimedFirst: the member the pool's primed link names goes first;
// a link to a member not waiting, an invalid name or no link leave the
// order as listed.
func TestPrimedFirst(t *testing.T) {
	tests := []struct {
		name, link string
		ids, want  []string
	}{
		{"primed last", "c", []string{"a", "b", "c"}, []string{"c", "a", "b"}},
		{"primed in the middle", "b", []string{"a", "b", "c"}, []string{"b", "a", "c"}},
		{"primed first", "a", []string{"a", "b"}, []string{"a", "b"}},
		{"primed taken", "z", []string{"a", "b"}, []string{"a", "b"}},
		{"invalid name", ".a", []string{"a", ".a"}, []string{"a", ".a"}},
		{"no link", "", []string{"a", "b"}, []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pool := t.TempDir()
			if tc.link != "" {
				if err := os.Symlink(tc.link, pool+"/primed"); err != nil {
					t.Fatal(err)
				}
			}
			got := primedFirst(pool, append([]string(nil), tc.ids...))
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("primedFirst(%q) with link %q = %q, want %q", tc.ids, tc.link, got, tc.want)
			}
		})
	}
}
