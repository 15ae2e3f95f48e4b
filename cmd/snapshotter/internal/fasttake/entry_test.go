package fasttake

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"snapshotter/internal/prereq"
	"snapshotter/runner"
)

const object = "take_linux_amd64.syso"

// TestEntryObject checks the committed entry object: the SHA-256s of its
// sources are the ones gen.sh recorded beside it; it has no relocations
// (Go's internal linker would not apply them), no undefined symbols and
// one global, snap_fast_take; and, where gcc of the recorded version is
// installed, gen.sh builds the same bytes again. With another gcc the
// source sums and the object's shape are what is checked: a rebuild would
// differ for the compiler's sake alone.
func TestEntryObject(t *testing.T) {
	sum, err := os.ReadFile(object + ".sum")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(sum)), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "gcc ") {
		t.Fatalf("%s.sum = %q, want a gcc line and source sums", object, sum)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("%s.sum line %q: want SUM FILE", object, l)
		}
		b, err := os.ReadFile(f[1])
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != f[0] {
			t.Errorf("%s changed since %s was built: run go generate ./cmd/snapshotter/internal/fasttake (make generate)", f[1], object)
		}
	}

	committed, err := os.ReadFile(object)
	if err != nil {
		t.Fatal(err)
	}
	checkShape(t, committed)

	gcc := prereq.Binary(t, "gcc")
	ver, err := exec.Command(gcc, "-dumpfullversion").Output()
	if err != nil {
		t.Fatalf("gcc -dumpfullversion: %v", err)
	}
	if want := strings.TrimPrefix(lines[0], "gcc "); strings.TrimSpace(string(ver)) != want {
		t.Logf("gcc %s here, %s was built with gcc %s: not rebuilt", strings.TrimSpace(string(ver)), object, want)
		return
	}
	out := filepath.Join(t.TempDir(), object)
	if b, err := exec.Command("./gen.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, b)
	}
	rebuilt, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rebuilt, committed) {
		t.Errorf("gen.sh builds a %s (%d bytes) that differs from the committed one (%d bytes): run go generate ./cmd/snapshotter/internal/fasttake", object, len(rebuilt), len(committed))
	}
}

// checkShape fails t unless b is an x86-64 relocatable object without
// relocations or undefined symbols whose one global is snap_fast_take.
func checkShape(t *testing.T, b []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse %s: %v", object, err)
	}
	if f.Type != elf.ET_REL || f.Machine != elf.EM_X86_64 {
		t.Errorf("%s: type, machine = %v, %v, want ET_REL, EM_X86_64", object, f.Type, f.Machine)
	}
	for _, s := range f.Sections {
		if s.Type == elf.SHT_REL || s.Type == elf.SHT_RELA {
			t.Errorf("%s has relocation section %s: Go's internal linker would leave them unapplied", object, s.Name)
		}
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var globals []string
	for _, s := range syms {
		if s.Section == elf.SHN_UNDEF && s.Name != "" {
			t.Errorf("%s: undefined symbol %s", object, s.Name)
		}
		if elf.ST_BIND(s.Info) != elf.STB_LOCAL && s.Section != elf.SHN_UNDEF {
			globals = append(globals, s.Name)
		}
	}
	if strings.Join(globals, " ") != "snap_fast_take" {
		t.Errorf("%s: global symbols %q, want snap_fast_take only", object, globals)
	}
}

var (
	harnessOnce sync.Once
	harnessBin  string
	harnessErr  error
)

// harness returns testdata/harness.c built with gcc: the entry code's
// functions one at a time, with the address and undefined-behaviour
// sanitizers.
func harness(t *testing.T) string {
	t.Helper()
	gcc := prereq.Binary(t, "gcc")
	harnessOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fasttake-harness")
		if err != nil {
			harnessErr = err
			return
		}
		harnessBin = filepath.Join(dir, "harness")
		out, err := exec.Command(gcc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
			"-fsanitize=address,undefined", "-fno-sanitize-recover=all",
			"-o", harnessBin, "testdata/harness.c").CombinedOutput()
		if err != nil {
			harnessErr = err
			harnessBin = string(out)
		}
	})
	if harnessErr != nil {
		t.Fatalf("build the harness: %v\n%s", harnessErr, harnessBin)
	}
	return harnessBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if harnessBin != "" && harnessErr == nil {
		os.RemoveAll(filepath.Dir(harnessBin))
	}
	os.Exit(code)
}

// run runs the harness with args, stdin and env added, and returns its
// stdout.
func run(t *testing.T, stdin []byte, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(harness(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("harness %.80q: %v\n%s", args, err, stderr.String())
	}
	return out
}

// TestParse: the command lines the entry code takes, as "STATE-DIR NAME
// DETACH STDIN STDOUT STDERR" ("-" for a flag not given), and those it
// leaves to Go.
func TestParse(t *testing.T) {
	long := strings.Repeat("n", 65)
	tests := []struct {
		args []string
		want string
	}{
		{strings.Fields("pool take p"), "- p 0 - - -"},
		{strings.Fields("--state-dir /x pool take p -d"), "/x p 1 - - -"},
		{strings.Fields("--state-dir=/x --store s pool take p --wait"), "/x p 0 - - -"},
		{strings.Fields("pool take --stdin i --stdout=o --stderr e p"), "- p 0 i o e"},
		{strings.Fields("pool take p --detach --stdout="), "- p 1 -  -"}, // "": not given
		{[]string{"pool", "take", "p", "--stdout", ""}, "- p 0 -  -"},
		{[]string{"pool", "take", "p", "--stdout", "-x"}, "- p 0 - -x -"},
		{strings.Fields("pool take p --state-dir /y"), "/y p 0 - - -"},
		{strings.Fields("pool take a.B_c-9"), "- a.B_c-9 0 - - -"},
		{[]string{"pool", "take", long[:64]}, "- " + long[:64] + " 0 - - -"},
		{[]string{"pool", "take", long}, "no"},
		{[]string{"pool", "take", "p", "--stdin" + long}, "no"},
		{strings.Fields("pool take"), "no"},
		{strings.Fields("pool take p q"), "no"},
		{strings.Fields("pool take .p"), "no"},
		{strings.Fields("pool take p/q"), "no"},
		{[]string{"pool", "take", ""}, "no"},
		{strings.Fields("pool take p --stdin"), "no"},
		{strings.Fields("pool take p --unknown"), "no"},
		{strings.Fields("pool take p -p 8080:80"), "no"}, // Go publishes
		{strings.Fields("pool take p -d=true"), "no"},
		{strings.Fields("pool take p --wait=1"), "no"},
		{strings.Fields("pool take p -dd"), "no"},
		{strings.Fields("pool take p -- q"), "no"},
		{strings.Fields("pool -d take p"), "no"},
		{strings.Fields("--stdin f pool take p"), "no"},
		{strings.Fields("pool ls"), "no"},
		{strings.Fields("pool create p"), "no"},
		{strings.Fields("run -- pool take p"), "no"},
		{strings.Fields("sentry --id x --pool p --restore file:///i"), "no"},
		{strings.Fields("take p"), "no"},
		{nil, "no"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got := strings.TrimSpace(string(run(t, nil, nil, append([]string{"parse"}, tc.args...)...)))
			if got != tc.want {
				t.Errorf("parse(%q) = %q, want %q", tc.args, got, tc.want)
			}
		})
	}
}

// TestStateDir: the state directory as snap's root command defaults it.
func TestStateDir(t *testing.T) {
	uid := os.Getuid()
	long := "/" + strings.Repeat("d", 1100)
	tests := []struct {
		name string
		env  []string
		args string
		want string
	}{
		{"flag", []string{"SNAP_STATE_DIR=/e"}, "--state-dir /f pool take p", "/f 1"},
		{"SNAP_STATE_DIR", []string{"SNAP_STATE_DIR=/e", "XDG_RUNTIME_DIR=/r"}, "pool take p", "/e 1"},
		{"XDG_RUNTIME_DIR", []string{"SNAP_STATE_DIR=", "XDG_RUNTIME_DIR=/r"}, "pool take p", "/r/snap 1"},
		{"TMPDIR", []string{"SNAP_STATE_DIR=", "XDG_RUNTIME_DIR=", "TMPDIR=/t"}, "pool take p", "/t/snap-" + strconv.Itoa(uid) + " 1"},
		{"tmp", []string{"SNAP_STATE_DIR=", "XDG_RUNTIME_DIR=", "TMPDIR="}, "pool take p", "/tmp/snap-" + strconv.Itoa(uid) + " 1"},
		{"too long", []string{"SNAP_STATE_DIR=" + long}, "pool take p", "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.TrimSpace(string(run(t, nil, tc.env, append([]string{"statedir"}, strings.Fields(tc.args)...)...)))
			if tc.name == "too long" {
				got = got[strings.LastIndexByte(got, ' ')+1:]
			}
			if got != tc.want {
				t.Errorf("state directory with %q = %q, want %q", tc.env, got, tc.want)
			}
		})
	}
}

// TestSocketFits: a member's socket path, DIR/ID/control.sock, is taken
// only if it fits sockaddr_un's 107 bytes and NUL.
func TestSocketFits(t *testing.T) {
	id := strings.Repeat("i", 12)
	tests := []struct {
		dirLen int
		want   string
	}{
		{1, "1"},
		{107 - 1 - 12 - len("/control.sock"), "1"},
		{107 - 12 - len("/control.sock"), "0"},
		{1000, "0"},
	}
	for _, tc := range tests {
		dir := "/" + strings.Repeat("d", tc.dirLen-1)
		if got := strings.TrimSpace(string(run(t, nil, nil, "sockfits", dir, id))); got != tc.want {
			t.Errorf("sock_fits(dir of %d bytes, %s) = %s, want %s", tc.dirLen, id, got, tc.want)
		}
	}
}

// TestRequestFrames checks the entry code's requests against the
// protocol's decoder.
func TestRequestFrames(t *testing.T) {
	tests := []struct {
		id, typ, sig string
		want         runner.Request
	}{
		{"1", "take", "0", runner.Request{ID: 1, Type: runner.ReqTake}},
		{"2", "wait", "0", runner.Request{ID: 2, Type: runner.ReqWait}},
		{"9", "kill", "15", runner.Request{ID: 9, Type: runner.ReqKill, Signal: 15}},
		{"127", "kill", "64", runner.Request{ID: 127, Type: runner.ReqKill, Signal: 64}},
	}
	for _, tc := range tests {
		frame := run(t, nil, nil, "request", tc.id, tc.typ, tc.sig)
		var req runner.Request
		if err := runner.ReadFrame(bytes.NewReader(frame), &req); err != nil {
			t.Fatalf("frame of %s: %v", tc.want.Type, err)
		}
		tc.want.Version = runner.ProtocolVersion
		if req.Version != tc.want.Version || req.ID != tc.want.ID || req.Type != tc.want.Type || req.Signal != tc.want.Signal {
			t.Errorf("frame decodes to %+v, want %+v", req, tc.want)
		}
	}
}

// TestAnswers reads answers as the sentry encodes them: the kind, the
// ID and the exit status (128+N for a signal), with every kind of value
// before them.
func TestAnswers(t *testing.T) {
	now := time.Now()
	exit := func(code, sig int) *runner.ExitStatus { return &runner.ExitStatus{Code: code, Signal: sig} }
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"exit 0", runner.Response{ID: 2, Kind: runner.KindResult, Exit: exit(0, 0)}, "result 1 id 2 exit 1 code 0"},
		{"exit 3", runner.Response{ID: 2, Kind: runner.KindResult, Exit: exit(3, 0)}, "result 1 id 2 exit 1 code 3"},
		{"exit 255", runner.Response{ID: 2, Kind: runner.KindResult, Exit: exit(255, 0)}, "result 1 id 2 exit 1 code 255"},
		{"signal 9", runner.Response{ID: 2, Kind: runner.KindResult, Exit: exit(0, 9)}, "result 1 id 2 exit 1 code 137"},
		{"signal 64", runner.Response{ID: 2, Kind: runner.KindResult, Exit: exit(0, 64)}, "result 1 id 2 exit 1 code 192"},
		{"take", runner.Response{ID: 1, Kind: runner.KindResult}, "result 1 id 1 exit 0 code -1"},
		{"error", runner.Response{ID: 1 << 40, Kind: runner.KindError, Error: &runner.WireError{Code: "not_waiting", Message: strings.Repeat("m", 300)}}, "result 0 id -1 exit 0 code -1"},
		{"info", runner.Response{ID: 7, Info: &runner.Metadata{ID: "x", Created: now, Taken: &now, Argv: []string{"a", "b"}, PIDStart: 1 << 33}, Kind: "result"}, "result 1 id 7 exit 0 code -1"},
		{"mixed", map[string]any{"a": -5, "b": 1.5, "c": []byte{1, 2}, "d": nil, "e": true, "f": []any{map[string]any{"g": int64(-1 << 40)}}, "kind": "result", "id": 2, "exit": map[string]any{"x": float32(1), "code": int64(-1)}}, "result 1 id 2 exit 1 code -1"},
		{"kind not a string", map[string]any{"kind": 1, "id": 2}, "result 0 id 2 exit 0 code -1"},
		{"absent", map[string]any{"id": 300}, "result 0 id 300 exit 0 code -1"},
		{"not a map", []int{1}, "result 0 id -1 exit 0 code -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := msgpack.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(run(t, b, nil, "answer"))); got != tc.want {
				t.Errorf("answer %s = %q, want %q", tc.name, got, tc.want)
			}
			// Every prefix: read as absent, never past its end (the
			// harness runs under the address sanitizer).
			run(t, b, nil, "truncated")
		})
	}
}
