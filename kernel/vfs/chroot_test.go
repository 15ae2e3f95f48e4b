package vfs

import "testing"

func TestConfine(t *testing.T) {
	tests := []struct {
		name, full, root, want string
	}{
		{"inside", "/jail/a/b", "/jail", "/jail/a/b"},
		{"dot-dot stops at the root", "/jail/../../etc", "/jail", "/jail/etc"},
		{"dot-dot below the root", "/jail/a/../b", "/jail", "/jail/b"},
		{"dots and slashes", "/jail/./a//b/.", "/jail", "/jail/a/b"},
		{"trailing slash kept", "/jail/a/", "/jail", "/jail/a/"},
		{"outside climbs to /", "/out/a/../../..", "/jail", "/"},
		{"outside passing through the root", "/jail/../x", "/jail/sub", "/x"},
		{"root itself", "/jail/..", "/jail", "/jail"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := confine(tc.full, tc.root); got != tc.want {
				t.Errorf("confine(%q, %q) = %q, want %q", tc.full, tc.root, got, tc.want)
			}
		})
	}
}

func TestFSView(t *testing.T) {
	fs := &FS{cwd: "/", chroot: "/jail"}
	tests := []struct {
		p, view, cwd string
	}{
		{"/jail", "/", "/"},
		{"/jail/a", "/a", "/a"},
		{"/jailx", "/jailx", "(unreachable)/jailx"},
		{"/", "/", "(unreachable)/"},
	}
	for _, tc := range tests {
		fs.cwd = tc.p
		if got := fs.View(tc.p); got != tc.view {
			t.Errorf("View(%q) = %q, want %q", tc.p, got, tc.view)
		}
		if got := fs.Getcwd(); got != tc.cwd {
			t.Errorf("Getcwd() with cwd %q = %q, want %q", tc.p, got, tc.cwd)
		}
	}
}
