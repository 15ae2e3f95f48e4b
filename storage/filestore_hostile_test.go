package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"snapshotter/storage"
)

// writeSmallImage writes image name into s: a short state and two pages
// of memory.
func writeSmallImage(t *testing.T, s storage.Store, name string) {
	t.Helper()
	w, err := s.Create(context.Background(), name, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.StateWriter().Write([]byte("state of " + name)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMemory(0, bytes.Repeat([]byte{9}, 2*storage.PageSize)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestFileStoreHostileEntries: entries of a file store that snap did not
// write (a FIFO, a symbolic link to a FIFO or to a file outside the image,
// a symbolically linked directory in a two-part key) are refused with
// ErrCorrupt naming the entry, without hanging and without reading what a
// link points to; List reports them next to the good images.
func TestFileStoreHostileEntries(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "images")
	s, err := storage.NewFileStore(root)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(base, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A writer holding the FIFO open would make a blocking open return;
	// nobody does, so only a non-blocking open returns.
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	writeSmallImage(t, s, "good")
	// A file outside the image that would pass every check: the good
	// image's own index, copied out.
	idx, err := os.ReadFile(filepath.Join(root, "good", "memory.idx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "memory.idx"), idx, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		spoil func(dir string)
		want  string // in the error
	}{
		{"manifest-link-to-fifo", func(dir string) {
			os.Remove(filepath.Join(dir, "manifest"))
			must(t, os.Symlink(fifo, filepath.Join(dir, "manifest")))
		}, "manifest: a symbolic link"},
		{"manifest-is-fifo", func(dir string) {
			os.Remove(filepath.Join(dir, "manifest"))
			must(t, syscall.Mkfifo(filepath.Join(dir, "manifest"), 0o600))
		}, "manifest: a FIFO"},
		{"state-link-to-fifo", func(dir string) {
			os.Remove(filepath.Join(dir, "state.zst"))
			must(t, os.Symlink(fifo, filepath.Join(dir, "state.zst")))
		}, "state.zst: a symbolic link"},
		{"chunk-is-fifo", func(dir string) {
			// Content-addressed chunks live in the store's .chunks.
			matches, _ := filepath.Glob(filepath.Join(dir, "..", ".chunks", "*", "*"))
			if len(matches) != 1 {
				t.Fatalf("chunks of the store = %v, want the one of the small image", matches)
			}
			os.Remove(matches[0])
			must(t, syscall.Mkfifo(matches[0], 0o600))
		}, ": a FIFO"},
		{"index-link-outside", func(dir string) {
			os.Remove(filepath.Join(dir, "memory.idx"))
			must(t, os.Symlink(filepath.Join(outside, "memory.idx"), filepath.Join(dir, "memory.idx")))
		}, "memory.idx: a symbolic link"},
		{"image-dir-link", func(dir string) {
			// The image directory itself links to a copy outside.
			must(t, os.Rename(dir, filepath.Join(outside, "image")))
			must(t, os.Symlink(filepath.Join(outside, "image"), dir))
		}, "image-dir-link: a symbolic link"},
		{"index-in-linked-dir", func(dir string) {
			// The manifest names g-x/memory.idx, and g-x links outside.
			must(t, os.Symlink(outside, filepath.Join(dir, "g-x")))
			editManifest(t, dir, func(m *storage.Manifest) { m.Index.Key = "g-x/memory.idx" })
		}, "g-x/memory.idx: a symbolic link"},
	}
	for _, tc := range tests {
		writeSmallImage(t, s, tc.name)
		tc.spoil(filepath.Join(root, tc.name))
	}

	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				img *storage.Image
				err error
			}
			var r result
			within(t, "Open", func() {
				r.img, r.err = s.Open(ctx, tc.name)
				if r.err == nil {
					// Reading must fail too; Verify reads every blob.
					r.err = r.img.Verify(ctx)
				}
			})
			if r.img != nil {
				r.img.Close()
			}
			if !errors.Is(r.err, storage.ErrCorrupt) || !strings.Contains(r.err.Error(), tc.want) {
				t.Errorf("Open+Verify(%s) = %v, want ErrCorrupt saying %q", tc.name, r.err, tc.want)
			}
		})
	}

	var ents []storage.Entry
	within(t, "List", func() {
		if ents, err = s.List(ctx); err != nil {
			t.Errorf("List = %v, want the images and their errors", err)
		}
	})
	seen := map[string]error{}
	for _, e := range ents {
		seen[e.Name] = e.Err
	}
	if err, ok := seen["good"]; !ok || err != nil {
		t.Errorf("List: good = %v (listed %v), want listed without error", err, ok)
	}
	for _, bad := range []string{"manifest-link-to-fifo", "manifest-is-fifo", "image-dir-link"} {
		if err := seen[bad]; !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("List: %s has error %v, want ErrCorrupt", bad, err)
		}
	}
}

// TestFileStoreRootFIFO: a store path that names a FIFO is refused at
// once by every operation instead of blocking it.
func TestFileStoreRootFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "store")
	must(t, syscall.Mkfifo(fifo, 0o600))
	s, err := storage.NewFileStore(fifo)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	within(t, "List", func() {
		if _, err := s.List(ctx); err == nil {
			t.Errorf("List(FIFO store) = nil error")
		}
	})
	within(t, "Open", func() {
		if _, err := s.Open(ctx, "img"); err == nil {
			t.Errorf("Open(FIFO store) = nil error")
		}
	})
	within(t, "Prune", func() {
		if _, err := s.Prune(ctx, 0); err == nil {
			t.Errorf("Prune(FIFO store) = nil error")
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// editManifest rewrites the manifest of the image in dir through f, with a
// valid checksum and no signature block.
func editManifest(t *testing.T, dir string, f func(m *storage.Manifest)) {
	t.Helper()
	editSigned(t, dir, f, false)
}
