package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"snapshotter/storage"
)

// runSnapImages runs the CLI in-process and returns stdout and the error.
func runSnapImages(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd("")
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestImagesInspectRm(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := storage.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"one", "two"} {
		w, err := s.Create(context.Background(), name, storage.CreateOptions{Metadata: map[string]string{"program": "/bin/" + name}})
		if err != nil {
			t.Fatal(err)
		}
		w.StateWriter().Write([]byte("state"))
		page := bytes.Repeat([]byte{name[0]}, storage.PageSize) // a chunk of its own
		if err := w.WriteMemory(storage.PageSize, page); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}

	out, err := runSnapImages(t, "images", "--store", dir)
	if err != nil || !strings.Contains(out, "one") || !strings.Contains(out, "/bin/two") {
		t.Errorf("snap images = %q, %v; want both images listed", out, err)
	}

	out, err = runSnapImages(t, "inspect", "--store", dir, "one", "--json")
	var r inspectReport
	if err != nil || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("snap inspect --json = %q, %v", out, err)
	}
	if !r.ChecksumsOK || r.Chunks != 1 || r.MemorySize != 2*storage.PageSize || r.MemoryData != storage.PageSize || r.Format != fmt.Sprintf("%d.%d", storage.FormatMajor, storage.FormatMinor) {
		t.Errorf("snap inspect --json = %+v; want verified, 1 chunk, 8 KiB memory with 4 KiB data, format %d.%d", r, storage.FormatMajor, storage.FormatMinor)
	}
	if r.ChunkHash != storage.ChunkHashBLAKE3 {
		t.Errorf("snap inspect --json chunkHash = %q, want %q", r.ChunkHash, storage.ChunkHashBLAKE3)
	}
	if out, err := runSnapImages(t, "inspect", "--store", dir, "one"); err != nil || !strings.Contains(out, "addressed by blake3") {
		t.Errorf("snap inspect = %q, %v; want the chunk hash named", out, err)
	}

	// Damage a chunk: inspect reports it and fails.
	img, err := s.Open(context.Background(), "two")
	if err != nil {
		t.Fatal(err)
	}
	sum := img.Chunks()[0].SumHex()
	img.Close()
	m := filepath.Join(dir, ".chunks", sum[:2], sum)
	b, _ := os.ReadFile(m)
	b[len(b)/2] ^= 1
	os.WriteFile(m, b, 0o644)
	out, err = runSnapImages(t, "inspect", "file://"+filepath.Join(dir, "two"))
	if err == nil || !strings.Contains(out, "FAILED") {
		t.Errorf("snap inspect (corrupt) = %q, %v; want FAILED and an error", out, err)
	}

	if _, err := runSnapImages(t, "rm", "--store", dir, "two"); err != nil {
		t.Fatalf("snap rm = %v", err)
	}
	if _, err := runSnapImages(t, "rm", "--store", dir, "two"); err == nil {
		t.Errorf("snap rm (again) = nil, want an error")
	}
	out, _ = runSnapImages(t, "images", "--store", dir)
	if strings.Contains(out, "two") || !strings.Contains(out, "one") {
		t.Errorf("snap images after rm = %q, want only one", out)
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		in   uint64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1 KiB"}, {1536, "1.5 KiB"}, {3 << 30, "3 GiB"}}
	for _, tc := range tests {
		if got := humanBytes(tc.in); got != tc.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPrune: snap prune removes a dead writer's staging directory older
// than --older-than, prints it, and leaves younger ones and images alone;
// a bad duration is one error.
func TestPrune(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := storage.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Create(context.Background(), "img", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.StateWriter().Write([]byte("state"))
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, d := range []string{".tmp-dead-01", ".tmp-live-02"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.Chtimes(filepath.Join(dir, ".tmp-dead-01"), old, old)
	os.Chtimes(filepath.Join(dir, "img"), old, old)

	out, err := runSnapImages(t, "prune", "--store", dir)
	want := "removed file://" + filepath.Join(dir, ".tmp-dead-01") + "\n"
	if err != nil || out != want {
		t.Errorf("snap prune = %q, %v; want %q", out, err, want)
	}
	for _, d := range []string{".tmp-live-02", "img/manifest"} {
		if _, err := os.Stat(filepath.Join(dir, d)); err != nil {
			t.Errorf("after snap prune: %v", err)
		}
	}
	if out, err := runSnapImages(t, "prune", "--store", dir, "--older-than", "0s"); err != nil || !strings.Contains(out, ".tmp-live-02") {
		t.Errorf("snap prune --older-than 0s = %q, %v; want .tmp-live-02 removed", out, err)
	}
	if _, err := runSnapImages(t, "prune", "--store", dir, "--older-than", "-1h"); err == nil {
		t.Errorf("snap prune --older-than -1h = nil, want an error")
	}
}

// TestImagesHostileEntry: an image whose manifest links to a FIFO does not
// hang snap images, which lists the good image and reports the bad one,
// nor snap inspect, which fails naming the entry.
func TestImagesHostileEntry(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "store")
	s, err := storage.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"good", "bad"} {
		w, err := s.Create(context.Background(), name, storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w.StateWriter().Write([]byte("state"))
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(base, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "bad", "manifest"))
	if err := os.Symlink(fifo, filepath.Join(dir, "bad", "manifest")); err != nil {
		t.Fatal(err)
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 2)
	go func() {
		out, err := runSnapImages(t, "images", "--store", dir)
		done <- result{out, err}
		out, err = runSnapImages(t, "inspect", "--store", dir, "bad")
		done <- result{out, err}
	}()
	for i, check := range []func(r result){
		func(r result) {
			if r.err != nil || !strings.Contains(r.out, "good ") || !strings.Contains(r.out, "bad ") || !strings.Contains(r.out, "symbolic link") {
				t.Errorf("snap images = %q, %v; want good listed and bad reported as a symbolic link", r.out, r.err)
			}
		},
		func(r result) {
			if r.err == nil || !strings.Contains(r.err.Error(), filepath.Join("bad", "manifest")) {
				t.Errorf("snap inspect bad = %v, want an error naming bad/manifest", r.err)
			}
		},
	} {
		select {
		case r := <-done:
			check(r)
		case <-time.After(time.Minute):
			t.Fatalf("command %d hung", i)
		}
	}
}

// TestParentInspectRm: inspect of a child saved against a parent shows
// the parent and what they share; rm refuses to delete the parent unless
// --force, which names the child; the child then still reads whole, with
// its parent shown missing.
func TestParentInspectRm(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := storage.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	mem := make([]byte, 4<<20)
	for i := range mem {
		mem[i] = byte(i / 4096)
	}
	write := func(name string, parent *storage.ParentRef) {
		w, err := s.Create(ctx, name, storage.CreateOptions{Parent: parent, Metadata: map[string]string{"sandbox": "sb"}})
		if err != nil {
			t.Fatal(err)
		}
		w.StateWriter().Write([]byte("state of " + name))
		if err := w.WriteMemory(0, mem); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	write("base", nil)
	ref, _, err := storage.ResolveParent(ctx, "base", dir)
	if err != nil {
		t.Fatal(err)
	}
	mem[(2<<20)+100] ^= 1 // one chunk of four changes
	write("child", ref)

	out, err := runSnapImages(t, "inspect", "--store", dir, "child", "--json")
	var r inspectReport
	if err != nil || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("snap inspect --json = %q, %v", out, err)
	}
	if r.Parent == nil || r.Parent.URI != "file://"+dir+"/base" || r.Parent.Status != "ok" || r.Parent.SharedChunks != 3 || r.Parent.NewChunks != 1 {
		t.Errorf("inspect child: parent = %+v, want base, ok, 3 shared, 1 new", r.Parent)
	}
	out, err = runSnapImages(t, "inspect", "--store", dir, "child")
	if err != nil || !strings.Contains(out, "3 shared with the parent") {
		t.Errorf("snap inspect child = %q, %v; want the shared chunks", out, err)
	}

	out, err = runSnapImages(t, "rm", "--store", dir, "base")
	if err == nil || !strings.Contains(err.Error(), "parent of child") || strings.Contains(err.Error(), "\n") {
		t.Errorf("snap rm base = %q, %v; want a one-line refusal naming child", out, err)
	}
	if _, err := s.Stat(ctx, "base"); err != nil {
		t.Errorf("base after a refused rm: %v", err)
	}
	out, err = runSnapImages(t, "rm", "--store", dir, "--force", "base")
	if err != nil || !strings.Contains(out, "the parent of child") {
		t.Errorf("snap rm --force base = %q, %v; want it deleted, naming child", out, err)
	}
	if _, err := runSnapImages(t, "prune", "--store", dir, "--older-than", "0s"); err != nil {
		t.Fatalf("snap prune: %v", err)
	}
	img, err := s.Open(ctx, "child")
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	got := make([]byte, len(mem))
	if err := img.ReadMemoryTo(ctx, func(off uint64, n int) ([]byte, error) { return got[off : off+uint64(n)], nil }); err != nil || !bytes.Equal(got, mem) {
		t.Errorf("child after its parent was deleted and the store pruned: %v (memory equal %v)", err, bytes.Equal(got, mem))
	}
	if sh := storage.CompareWithParent(ctx, img); !sh.Missing {
		t.Errorf("CompareWithParent after the parent was deleted = %+v, want Missing", sh)
	}
}

// TestSaveParentChecks: a parent that does not exist, changed since the
// child named it, or sits in another store fails the write with one line.
func TestSaveParentChecks(t *testing.T) {
	ctx := context.Background()
	top := t.TempDir()
	dir := filepath.Join(top, "store")
	s, _ := storage.NewFileStore(dir)
	other, _ := storage.NewFileStore(filepath.Join(top, "other"))
	for _, st := range []storage.Store{s, other} {
		w, err := st.Create(ctx, "base", storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w.WriteMemory(0, bytes.Repeat([]byte{1}, storage.PageSize))
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	ref, _, err := storage.ResolveParent(ctx, "base", dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := storage.ResolveParent(ctx, "nothere", dir); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("ResolveParent(missing) = %v, want ErrNotFound", err)
	}
	changed := *ref
	changed.ManifestSHA256 = strings.Repeat("0", 64)
	otherRef, _, _ := storage.ResolveParent(ctx, "base", filepath.Join(top, "other"))
	for _, tc := range []struct {
		name   string
		parent *storage.ParentRef
		want   error
	}{
		{"changed", &changed, storage.ErrParentChanged},
		{"other-store", otherRef, storage.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Create(ctx, "child-"+tc.name, storage.CreateOptions{Parent: tc.parent})
			if !errors.Is(err, tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Create(parent %s) = %v, want one line wrapping %v", tc.name, err, tc.want)
			}
		})
	}
	// Replaced between Create and Commit.
	w, err := s.Create(ctx, "child", storage.CreateOptions{Parent: ref})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w2, _ := s.Create(ctx, "base", storage.CreateOptions{Replace: true})
	w2.WriteMemory(0, bytes.Repeat([]byte{2}, storage.PageSize))
	if _, err := w2.Commit(); err != nil {
		t.Fatal(err)
	}
	w.WriteMemory(0, bytes.Repeat([]byte{3}, storage.PageSize))
	if _, err := w.Commit(); !errors.Is(err, storage.ErrParentChanged) {
		t.Errorf("Commit after the parent was replaced = %v, want ErrParentChanged", err)
	}
	if _, err := s.Stat(ctx, "child"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("child after a failed commit: %v, want ErrNotFound", err)
	}
}
