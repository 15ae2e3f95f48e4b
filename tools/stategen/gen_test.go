package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestGolden checks that the committed generated files of the stateify test
// packages (which cover every supported construct) are exactly what the
// generator emits.
func TestGolden(t *testing.T) {
	dirs := []string{"../../stateify/internal/statetest", "../../stateify/internal/statetest/other", "../../stateify/internal/statetest/moved"}
	outs, err := Generate(".", dirs)
	if err != nil {
		t.Fatalf("Generate(%v) = %v", dirs, err)
	}
	if len(outs) != len(dirs) {
		t.Fatalf("Generate(%v) returned %d outputs, want %d", dirs, len(outs), len(dirs))
	}
	for _, o := range outs {
		if o.Content == nil {
			t.Errorf("%s: no content generated", o.Path)
			continue
		}
		want, err := os.ReadFile(o.Path)
		if err != nil {
			t.Fatalf("read golden %s: %v", o.Path, err)
		}
		if !bytes.Equal(o.Content, want) {
			t.Errorf("Generate(%s) differs from the committed file; run go generate ./...\n%s", o.Path, firstDiff(o.Content, want))
		}
		if !bytes.HasPrefix(o.Content, []byte(header)) {
			t.Errorf("%s does not start with %q", o.Path, header)
		}
	}
}

func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) && i < len(w); i++ {
		if g[i] != w[i] {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + g[i] + "\nwant: " + w[i]
		}
	}
	return "lengths differ: got " + strconv.Itoa(len(g)) + " lines, want " + strconv.Itoa(len(w))
}

// TestDeterministic checks that two runs give identical output.
func TestDeterministic(t *testing.T) {
	dir := []string{"../../stateify/internal/statetest"}
	a, err := Generate(".", dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(".", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a[0].Content, b[0].Content) {
		t.Errorf("two runs of Generate(%v) differ", dir)
	}
}

var wantRE = regexp.MustCompile(`// want "((?:[^"\\]|\\.)*)"`)

// TestRejections checks that every unsavable construct in testdata/bad is
// reported with its file:line, and nothing else is.
func TestRejections(t *testing.T) {
	src, err := os.ReadFile("testdata/bad/bad.go")
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{}
	for i, line := range strings.Split(string(src), "\n") {
		if m := wantRE.FindStringSubmatch(line); m != nil {
			s, err := strconv.Unquote(`"` + m[1] + `"`)
			if err != nil {
				t.Fatalf("line %d: bad want %q: %v", i+1, m[1], err)
			}
			want[i+1] = s
		}
	}
	_, err = Generate(".", []string{"./testdata/bad"})
	errs, ok := err.(GenErrors)
	if !ok {
		t.Fatalf("Generate(testdata/bad) = %v (%T), want GenErrors", err, err)
	}
	got := map[int]string{}
	for _, e := range errs {
		if filepath.Base(e.Pos.Filename) != "bad.go" {
			t.Errorf("error in unexpected file: %v", e)
			continue
		}
		got[e.Pos.Line] = e.Msg
		if !strings.Contains(e.Error(), "bad.go:"+strconv.Itoa(e.Pos.Line)+":") {
			t.Errorf("error %q does not name file:line", e.Error())
		}
	}
	for line, w := range want {
		if g, ok := got[line]; !ok {
			t.Errorf("bad.go:%d: no error, want one containing %q", line, w)
		} else if !strings.Contains(g, w) {
			t.Errorf("bad.go:%d: error = %q, want it to contain %q", line, g, w)
		}
	}
	for line, g := range got {
		if _, ok := want[line]; !ok {
			t.Errorf("bad.go:%d: unexpected error %q", line, g)
		}
	}
}

// TestCheck runs the -check mode on an up-to-date and on a stale package.
func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		status   int
		stderr   string
	}{
		{"up to date", []string{"../../stateify/internal/statetest/..."}, 0, ""},
		{"stale", []string{"./testdata/stale"}, 1, "stale_state_autogen.go is stale"},
		{"rejected", []string{"./testdata/bad"}, 1, "bad.go:"},
		{"no go:generate line", []string{"./testdata/nodirective"}, 1, "testdata/nodirective: package has +stateify savable types but no"},
		{"no package line", []string{"./testdata/nopackage"}, 1, "nopackage.go:9:6: package nopackage has +stateify savable types but no \"// +stateify package=NAME\" line"},
		{"one name in two packages", []string{"./testdata/dupnames/..."}, 1, "dupnames/b/b.go:10:6: type snapshotter/tools/stategen/testdata/dupnames/b.Leaf: saved name \"dup.Leaf\" is already the saved name of snapshotter/tools/stategen/testdata/dupnames/a.Leaf (testdata/dupnames/a/a.go:13:6)"},
		// go generate runs stategen on one package: the names of the
		// packages it imports are read from their source.
		{"one name in a package and one it imports", []string{"./testdata/dupnames/a"}, 1, "dupnames/a/a.go:13:6: type snapshotter/tools/stategen/testdata/dupnames/a.Leaf: saved name \"dup.Leaf\" is already the saved name of snapshotter/tools/stategen/testdata/dupnames/b.Leaf (testdata/dupnames/b/b.go:10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := run(tc.patterns, true, &stderr); got != tc.status {
				t.Errorf("run(%v, check) = %d, want %d (stderr %q)", tc.patterns, got, tc.status, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("run(%v, check) stderr = %q, want it to contain %q", tc.patterns, stderr.String(), tc.stderr)
			}
		})
	}
}

// TestBrokenGeneratedDependency generates a package whose dependency has a
// generated file that does not compile: generation reads annotations from
// source and blanks generated files, so it must not depend on them.
func TestBrokenGeneratedDependency(t *testing.T) {
	outs, err := Generate(".", []string{"./testdata/brokendep/a"})
	if err != nil {
		t.Fatalf("Generate(brokendep/a) = %v, want nil", err)
	}
	if len(outs) != 1 || !bytes.Contains(outs[0].Content, []byte("x.Leaf.StateSave(e)")) || !bytes.Contains(outs[0].Content, []byte("stateify.SavePtr(e, x.Ptr)")) {
		t.Errorf("Generate(brokendep/a) = %d outputs, want one with code saving Leaf inline and Ptr by reference", len(outs))
	}
}

// TestOutputStale covers the file comparisons behind -check.
func TestOutputStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p_state_autogen.go")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		content []byte
		want    bool
	}{
		{"same", path, []byte("old"), false},
		{"different", path, []byte("new"), true},
		{"superfluous", path, nil, true},
		{"missing", filepath.Join(dir, "missing.go"), []byte("x"), true},
		{"absent and unwanted", filepath.Join(dir, "missing.go"), nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Output{Path: tc.path, Content: tc.content}.Stale()
			if err != nil || got != tc.want {
				t.Errorf("Stale() = %v, %v, want %v, nil", got, err, tc.want)
			}
		})
	}
}
