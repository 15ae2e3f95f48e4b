package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	root := newRootCmd()
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
		page := bytes.Repeat([]byte{7}, storage.PageSize)
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
	if !r.ChecksumsOK || r.Chunks != 1 || r.MemorySize != 2*storage.PageSize || r.MemoryData != storage.PageSize || r.Format != "1.1" {
		t.Errorf("snap inspect --json = %+v; want verified, 1 chunk, 8 KiB memory with 4 KiB data, format 1.1", r)
	}

	// Damage a chunk: inspect reports it and fails.
	m := filepath.Join(dir, "two", "memory.bin")
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
