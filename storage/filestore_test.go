package storage_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
