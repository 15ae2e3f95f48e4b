package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"snapshotter/storage"
)

func TestParseURI(t *testing.T) {
	wd, _ := os.Getwd()
	tests := []struct {
		in   string
		want storage.Location
		err  error
	}{
		{"file:///var/snap/img1", storage.Location{Scheme: "file", Dir: "/var/snap", Name: "img1"}, nil},
		{"/abs/dir/name", storage.Location{Scheme: "file", Dir: "/abs/dir", Name: "name"}, nil},
		{"./rel", storage.Location{Scheme: "file", Dir: wd, Name: "rel"}, nil},
		{"sub/x.y", storage.Location{Scheme: "file", Dir: filepath.Join(wd, "sub"), Name: "x.y"}, nil},
		{"s3://bucket/pre/fix/name", storage.Location{Scheme: "s3", Bucket: "bucket", Prefix: "pre/fix", Name: "name"}, nil},
		{"s3://bucket/name", storage.Location{Scheme: "s3", Bucket: "bucket", Name: "name"}, nil},
		{"bare-name", storage.Location{Name: "bare-name"}, nil},
		{"", storage.Location{}, storage.ErrInvalidArgument},
		{"s3://bucket", storage.Location{}, storage.ErrInvalidArgument},
		{"s3://bucket/", storage.Location{}, storage.ErrInvalidArgument},
		{"s3://bucket/a/../b", storage.Location{}, storage.ErrInvalidArgument},
		{"file://host/x", storage.Location{}, storage.ErrInvalidArgument},
		{"file:relative", storage.Location{}, storage.ErrInvalidArgument},
		{"http://x/y", storage.Location{}, storage.ErrInvalidArgument},
		{"/dir/.hidden", storage.Location{}, storage.ErrInvalidArgument},
		{"bad name", storage.Location{}, storage.ErrInvalidArgument},
	}
	for _, tc := range tests {
		got, err := storage.ParseURI(tc.in)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("ParseURI(%q) error = %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("ParseURI(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseStoreURI(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/xdg")
	wd, _ := os.Getwd()
	tests := []struct {
		in   string
		want storage.Location
		err  error
	}{
		{"", storage.Location{Scheme: "file", Dir: "/xdg/snap/images"}, nil},
		{"file:///srv/images", storage.Location{Scheme: "file", Dir: "/srv/images"}, nil},
		{"rel/dir", storage.Location{Scheme: "file", Dir: filepath.Join(wd, "rel/dir")}, nil},
		{"s3://b", storage.Location{Scheme: "s3", Bucket: "b"}, nil},
		{"s3://b/p/q/", storage.Location{Scheme: "s3", Bucket: "b", Prefix: "p/q"}, nil},
		{"ftp://x", storage.Location{}, storage.ErrInvalidArgument},
	}
	for _, tc := range tests {
		got, err := storage.ParseStoreURI(tc.in)
		if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) || err == nil && got != tc.want {
			t.Errorf("ParseStoreURI(%q) = %+v, %v; want %+v, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestDefaultStoreDir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got, err := storage.DefaultStoreDir(); err != nil || got != "/home/u/.local/share/snap/images" {
		t.Errorf("DefaultStoreDir() = %q, %v; want /home/u/.local/share/snap/images", got, err)
	}
	t.Setenv("XDG_DATA_HOME", "/data")
	if got, err := storage.DefaultStoreDir(); err != nil || got != "/data/snap/images" {
		t.Errorf("DefaultStoreDir() = %q, %v; want /data/snap/images", got, err)
	}
}

// TestLocate: a bare name lands in the --store store; a path names its own.
func TestLocate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "xdg"))
	tests := []struct {
		uri, store string
		wantURI    string
	}{
		{"img", "", "file://" + filepath.Join(dir, "xdg/snap/images/img")},
		{"img", filepath.Join(dir, "other"), "file://" + filepath.Join(dir, "other/img")},
		{filepath.Join(dir, "p/img"), filepath.Join(dir, "other"), "file://" + filepath.Join(dir, "p/img")},
		{"file://" + filepath.Join(dir, "q/img"), "", "file://" + filepath.Join(dir, "q/img")},
	}
	for _, tc := range tests {
		s, name, err := storage.Locate(ctx, tc.uri, tc.store)
		if err != nil {
			t.Fatalf("Locate(%q, %q) = %v", tc.uri, tc.store, err)
		}
		if got := s.ImageURI(name); got != tc.wantURI {
			t.Errorf("Locate(%q, %q) = %s, want %s", tc.uri, tc.store, got, tc.wantURI)
		}
	}
	w, err := storage.CreateImage(ctx, "viaenv", "", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	img, err := storage.OpenImage(ctx, "file://"+filepath.Join(dir, "xdg/snap/images/viaenv"), "/elsewhere")
	if err != nil {
		t.Fatalf("OpenImage = %v", err)
	}
	img.Close()
}

// TestFilePrune: a writer that never finished (a crashed process) leaves a
// staging directory that Prune removes once old enough.
func TestFilePrune(t *testing.T) {
	ctx := context.Background()
	s, _ := storage.NewFileStore(t.TempDir())
	w, err := s.Create(ctx, "crashed", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	page := make([]byte, storage.PageSize)
	page[9] = 1
	w.WriteMemory(0, page)
	if got, err := s.Prune(ctx, time.Hour); err != nil || len(got) != 0 {
		t.Errorf("Prune(1h) = %q, %v; want nothing, nil (the writer is young)", got, err)
	}
	if got, err := s.Prune(ctx, 0); err != nil || len(got) != 1 || !strings.Contains(got[0], "/.tmp-crashed-") {
		t.Errorf("Prune(0) = %q, %v; want the staging directory of crashed, nil", got, err)
	}
	w.Abort()
	if objs := fileObjects(t, s); len(objs) != 0 {
		t.Errorf("after Prune the store holds %v", objs)
	}
}

// TestFileCreatePrunesStale: a write first removes the staging and
// deleting directories of its store that are older than a day (a killed
// sentry's), and leaves younger ones and every published image alone.
func TestFileCreatePrunesStale(t *testing.T) {
	root := t.TempDir()
	s, _ := storage.NewFileStore(root)
	writeSmallImage(t, s, "kept")
	old := time.Now().Add(-25 * time.Hour)
	for _, d := range []string{".tmp-dead-0011", ".del-dead-0022", ".tmp-young-0033"} {
		p := filepath.Join(root, d)
		must(t, os.Mkdir(p, 0o700))
		must(t, os.WriteFile(filepath.Join(p, "memory.bin"), []byte("leftover"), 0o600))
		if strings.Contains(d, "dead") {
			must(t, os.Chtimes(p, old, old))
		}
	}
	// An old published image is not a leftover.
	must(t, os.Chtimes(filepath.Join(root, "kept"), old, old))
	writeSmallImage(t, s, "next")
	got := fileObjects(t, s)
	var want []string
	for _, o := range got {
		if strings.HasPrefix(o, ".chunks/") {
			want = append(want, o) // the images' shared chunk
		}
	}
	want = append(want, ".tmp-young-0033/memory.bin", "kept/manifest", "kept/memory.idx", "kept/state.zst",
		"next/manifest", "next/memory.idx", "next/state.zst")
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("store after a write = %q, want %q", got, want)
	}
}
