package vfs

import "testing"

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
