package storage_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"

	"snapshotter/storage"
	"snapshotter/storage/storetest"
)

func fileRoot(s storage.Store) string { return strings.TrimPrefix(s.URI(), "file://") }

// fileObjects lists every file under the store, and every empty directory
// (with a trailing slash), relative to the store root.
func fileObjects(t *testing.T, s storage.Store) []string {
	t.Helper()
	root := fileRoot(s)
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if ents, _ := os.ReadDir(p); len(ents) == 0 && p != root {
				out = append(out, rel+"/")
			}
			return nil
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	sort.Strings(out)
	return out
}

func fileHarness() storetest.Harness {
	return storetest.Harness{
		New: func(t *testing.T) storage.Store {
			s, err := storage.NewFileStore(filepath.Join(t.TempDir(), "images"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Objects: fileObjects,
		Rewrite: func(t *testing.T, s storage.Store, name, key string, f func([]byte) []byte) {
			p := filepath.Join(fileRoot(s), name, key)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f(b), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		Chunk: func(sum string) (string, string) { return ".chunks", sum[:2] + "/" + sum },
		Remove: func(t *testing.T, s storage.Store, name, key string) {
			if err := os.Remove(filepath.Join(fileRoot(s), name, key)); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func TestFileStore(t *testing.T) {
	storetest.Run(t, fileHarness())
}

// TestWriterBoundedMemory writes 512 MiB of non-zero memory: the heap must
// stay within a fixed bound (the in-flight chunk buffers), whatever the
// image size.
func TestWriterBoundedMemory(t *testing.T) {
	s, err := storage.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Create(context.Background(), "big", storage.CreateOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	buf := make([]byte, 4<<20)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	for off := uint64(0); off < 512<<20; off += uint64(len(buf)) {
		for p := 0; p < len(buf); p += storage.PageSize {
			n := (off + uint64(p)) / storage.PageSize
			storetest.FillPage(buf[p:p+storage.PageSize], storetest.KindHeap, n)
		}
		if err := w.WriteMemory(off, buf); err != nil {
			t.Fatal(err)
		}
		if off%(64<<20) == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	t.Logf("heap grew by %d MiB", (peak-base)>>20)
	// 2×workers+2 = 6 chunks of 1 MiB raw + compressed, encoder state.
	const bound = 64 << 20
	if peak > base+bound {
		t.Errorf("heap grew by %d MiB writing 512 MiB, want at most %d MiB", (peak-base)>>20, bound>>20)
	}
}

// TestFileStoreModes: an image holds the sandbox's memory and environment,
// so the store directory it creates, the image directories and every file
// are its owner's only (0700 and 0600), even under a umask of 0.
func TestFileStoreModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "new", "images")
	s, err := storage.NewFileStore(root)
	if err != nil {
		t.Fatal(err)
	}
	writeSmallImage(t, s, "img")
	writeSmallImage(t, s, "img2")
	want := map[string]os.FileMode{
		"":               fs.ModeDir | 0o700,
		"img":            fs.ModeDir | 0o700,
		"img/manifest":   0o600,
		"img/state.zst":  0o600,
		"img/memory.idx": 0o600,
		"img2":           fs.ModeDir | 0o700,
		"img2/manifest":  0o600,
		"..":             fs.ModeDir | 0o700, // the parent it created
	}
	chunks, _ := filepath.Glob(filepath.Join(root, ".chunks", "*", "*"))
	if len(chunks) == 0 {
		t.Fatalf("no chunk in %s", root)
	}
	for _, c := range chunks {
		rel, _ := filepath.Rel(root, c)
		want[rel] = 0o600
		want[filepath.Dir(rel)] = fs.ModeDir | 0o700
	}
	want[".chunks"] = fs.ModeDir | 0o700
	for rel, mode := range want {
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("stat %s: %v", rel, err)
			continue
		}
		if fi.Mode() != mode {
			t.Errorf("mode of %q = %v, want %v", rel, fi.Mode(), mode)
		}
	}
}
