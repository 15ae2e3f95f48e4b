package vfs

import (
	"slices"
	"strings"
	"testing"
)

// TestRoute checks which mount a guest path goes to and the rest of the
// path that mount's filesystem gets: the first walked mount point the
// path reaches lexically, else the sentry's directory or the root with the
// whole path.
func TestRoute(t *testing.T) {
	_, fs := overlayTree(t)
	mt := fs.Root().Mounts()
	if err := mt.MountTmpfs("/data", 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		full, point, rest string
	}{
		{"/data/x/y", "/data", "x/y"},
		{"/data", "/data", ""},
		{"/data/", "/data", ""},
		{"//data//x", "/data", "/x"},
		{"/data/../data/x", "/data", "../data/x"},
		{"/a/../data/x", "/", "data/x"},
		{"/a/./data/x", "/", "/a/./data/x"},
		{"/dev/shm/f", "/dev/shm", "f"},
		{"/dev/null", "/dev", "/dev/null"},
		{"/proc/self/fd", "/proc", "self/fd"},
		{"/run", "/run", ""},
		{"/tmp/a", "/", "/tmp/a"},
		{"/", "/", "/"},
		{"/datax/y", "/", "/datax/y"},
	} {
		m, rest := mt.route(tc.full)
		if m.point != tc.point || rest != tc.rest {
			t.Errorf("route(%q) = %s, %q, want %s, %q", tc.full, m.point, rest, tc.point, tc.rest)
		}
	}
}

// TestJoinIn checks that joinIn is joinGuest, taken from the walked path
// when that path holds it.
func TestJoinIn(t *testing.T) {
	for _, tc := range []struct{ full, dir, name string }{
		{"/tmp/a", "/", "tmp"},
		{"/tmp/a", "/tmp", "a"},
		{"/tmp/a/", "/tmp", "a"},
		{"/tmp//a", "/tmp", "a"},
		{"/tmpx/a", "/", "tmp"},
		{"/a/../b", "/", "b"},
		{"/tm", "/", "tmp"},
		{"", "/", "x"},
		{"/x", "/tmp", "x"},
	} {
		if got, want := joinIn(tc.full, tc.dir, tc.name), joinGuest(tc.dir, tc.name); got != want {
			t.Errorf("joinIn(%q, %q, %q) = %q, want %q", tc.full, tc.dir, tc.name, got, want)
		}
	}
}

// TestSplitComponents checks splitComponents against strings.FieldsFunc.
func TestSplitComponents(t *testing.T) {
	for _, p := range []string{"", "/", "//", "/a", "a/b", "/a//b/", "/./../x", strings.Repeat("/c", 40)} {
		want := strings.FieldsFunc(p, func(c rune) bool { return c == '/' })
		if got := splitComponents(p, nil); !slices.Equal(got, want) {
			t.Errorf("splitComponents(%q) = %q, want %q", p, got, want)
		}
	}
}
