package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"snapshotter/storage"
	"snapshotter/storage/miniotest"
	"snapshotter/storage/storetest"
)

// noHang bounds operations that must fail rather than wait forever; it is
// far above their normal duration and only catches a hang.
const noHang = 2 * time.Minute

// within runs f and fails the test if it does not return within noHang.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(noHang):
		t.Fatalf("%s did not return within %v", what, noHang)
	}
}

// TestS3HelperBroken: a store whose helper is missing or does not speak the
// protocol fails each operation with ErrUnavailable and a line saying why,
// without reaching any server.
func TestS3HelperBroken(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("#!/bin/sh\nprintf 'not the protocol at all, not at all'\nsleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	exitsAtOnce := filepath.Join(dir, "exits")
	if err := os.WriteFile(exitsAtOnce, []byte("#!/bin/sh\necho 'snap-s3: cannot start: testing' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, helper, path string
		want               []string // substrings of the error
	}{
		{"missing", filepath.Join(dir, "no-such-snap-s3"), os.Getenv("PATH"), []string{"SNAP_S3_HELPER=" + dir, "no such file"}},
		{"not found", "", dir, []string{"helper snap-s3 not found next to " + exe + " or in PATH"}},
		{"exits", exitsAtOnce, os.Getenv("PATH"), []string{"exit status 3", "snap-s3: cannot start: testing"}},
		{"garbage", garbage, os.Getenv("PATH"), []string{"protocol error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(storage.S3HelperEnv, tc.helper)
			t.Setenv("PATH", tc.path)
			s, err := storage.NewS3Store(context.Background(), storage.S3Config{Endpoint: "127.0.0.1:1", Bucket: "b"})
			if err != nil {
				t.Fatalf("NewS3Store = %v", err)
			}
			within(t, "List", func() { _, err = s.List(context.Background()) })
			if !errors.Is(err, storage.ErrUnavailable) {
				t.Fatalf("List with helper %q = %v, want ErrUnavailable", tc.helper, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("List with helper %q = %q, want it to say %q", tc.helper, err, w)
				}
			}
			t.Logf("List with helper %q = %v", tc.helper, err)
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("List with helper %q = %q, want one line", tc.helper, err)
			}
		})
	}
}

// TestS3HelperKilledMidWrite kills the helper in the middle of an upload:
// the write fails with ErrUnavailable instead of hanging, no image appears,
// and the store works again with a new helper.
func TestS3HelperKilledMidWrite(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "killed")
	c := srv.Client(t)
	s := newS3Store(t, srv, "killed", "p")
	ctx := context.Background()
	w, err := s.Create(ctx, "victim", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	pids := storage.S3HelperPIDs()
	if len(pids) == 0 {
		t.Fatal("no S3 helper is running after Create")
	}
	buf := make([]byte, 1<<20)
	var werr, cerr error
	within(t, "the write with the helper killed", func() {
		for i := uint64(0); i < 256 && werr == nil; i++ {
			for p := 0; p < len(buf); p += storage.PageSize {
				storetest.FillPage(buf[p:p+storage.PageSize], storetest.KindRandom, i*256+uint64(p/storage.PageSize))
			}
			if i == 8 {
				for _, pid := range pids {
					if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
						t.Errorf("kill helper %d: %v", pid, err)
					}
				}
			}
			werr = w.WriteMemory(i<<20, buf)
		}
		_, cerr = w.Commit()
		w.Abort()
	})
	err = errors.Join(werr, cerr)
	if werr == nil && cerr == nil {
		t.Fatal("write with the helper killed: WriteMemory and Commit both succeeded")
	}
	t.Logf("write with the helper killed = %v", err)
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("write with the helper killed = %v, want ErrUnavailable", err)
	}
	if _, err := s.Open(ctx, "victim"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open(victim) after the failed write = %v, want ErrNotFound", err)
	}
	if _, err := s.Prune(ctx, 0); err != nil {
		t.Fatalf("Prune with a new helper = %v", err)
	}
	if objs := s3Objects(t, c, s); len(objs) != 0 {
		t.Errorf("after Prune the store holds %v, want nothing", objs)
	}
	for _, pid := range storage.S3HelperPIDs() {
		for _, old := range pids {
			if pid == old {
				t.Errorf("killed helper %d is still listed as live", pid)
			}
		}
	}
}

// TestS3HelperConcurrent writes and reads several images at once through
// one helper and checks every byte.
func TestS3HelperConcurrent(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "conc")
	s := newS3Store(t, srv, "conc", "")
	ctx := context.Background()
	const n, size = 4, 6 << 20
	want := make([][]byte, n)
	for i := range want {
		want[i] = make([]byte, size)
		storetest.FillMixed(want[i], uint64(i))
		// Make every image differ in its first page.
		copy(want[i], fmt.Sprintf("image %d", i))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Create(ctx, fmt.Sprintf("img%d", i), storage.CreateOptions{})
			if err != nil {
				errs[i] = err
				return
			}
			defer w.Abort()
			if _, err := w.StateWriter().Write(bytes.Repeat([]byte{byte(i)}, 3<<20)); err != nil {
				errs[i] = err
				return
			}
			if err := w.WriteMemory(0, want[i]); err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = w.Commit()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write img%d = %v", i, err)
		}
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := s.Open(ctx, fmt.Sprintf("img%d", i))
			if err != nil {
				errs[i] = err
				return
			}
			defer img.Close()
			got := make([]byte, size)
			if err := img.ReadMemoryTo(ctx, func(off uint64, n int) ([]byte, error) { return got[off : off+uint64(n)], nil }); err != nil {
				errs[i] = err
				return
			}
			if !bytes.Equal(got, want[i]) {
				errs[i] = errors.New("memory read back differs")
			}
			if err := img.Verify(ctx); err != nil {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("read img%d = %v", i, err)
		}
	}
}

// TestS3HelperCancel: cancelling the context of a write stops it with
// context.Canceled, and the helper keeps serving.
func TestS3HelperCancel(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "cancel")
	s := newS3Store(t, srv, "cancel", "")
	ctx, cancel := context.WithCancel(context.Background())
	w, err := s.Create(ctx, "img", storage.CreateOptions{})
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	buf := make([]byte, 1<<20)
	var werr error
	within(t, "the cancelled write", func() {
		for i := uint64(0); i < 256 && werr == nil; i++ {
			for p := 0; p < len(buf); p += storage.PageSize {
				storetest.FillPage(buf[p:p+storage.PageSize], storetest.KindRandom, i*256+uint64(p/storage.PageSize))
			}
			if i == 4 {
				cancel()
			}
			werr = w.WriteMemory(i<<20, buf)
		}
		if werr == nil {
			_, werr = w.Commit()
		}
		w.Abort()
	})
	t.Logf("write with its context cancelled = %v", werr)
	if !errors.Is(werr, context.Canceled) {
		t.Errorf("write with its context cancelled = %v, want context.Canceled", werr)
	}
	bg := context.Background()
	if _, err := s.Open(bg, "img"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open(img) after the cancelled write = %v, want ErrNotFound", err)
	}
	if ents, err := s.List(bg); err != nil || len(ents) != 0 {
		t.Errorf("List after the cancelled write = %v, %v; want empty", ents, err)
	}
}

// TestS3HelperOwnProcessGroup: a signal to snap's process group (the
// terminal's ^C) does not reach the helper.
func TestS3HelperOwnProcessGroup(t *testing.T) {
	s, err := storage.NewS3Store(context.Background(), storage.S3Config{Endpoint: "127.0.0.1:1", Bucket: "b", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Any operation starts the helper; this one fails to connect.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _ = s.List(ctx)
	pids := storage.S3HelperPIDs()
	if len(pids) == 0 {
		t.Fatal("no S3 helper is running")
	}
	for _, pid := range pids {
		pgid, err := syscall.Getpgid(pid)
		if err != nil {
			t.Fatalf("Getpgid(helper %d) = %v", pid, err)
		}
		if pgid == syscall.Getpgrp() {
			t.Errorf("helper %d is in snap's process group %d, want its own", pid, pgid)
		}
	}
}

// TestS3HelperKilledMidRead: reads of an open image fail with
// ErrUnavailable once its helper is killed, and opening the image again
// reads it through a new helper.
func TestS3HelperKilledMidRead(t *testing.T) {
	srv := miniotest.Start(t)
	srv.MakeBucket(t, "killedread")
	s := newS3Store(t, srv, "killedread", "")
	ctx := context.Background()
	want := make([]byte, 4<<20)
	storetest.FillMixed(want, 3)
	w, err := s.Create(ctx, "img", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.WriteMemory(0, want); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatalf("Commit = %v", err)
	}
	img, err := s.Open(ctx, "img")
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	defer img.Close()
	for _, pid := range storage.S3HelperPIDs() {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill helper %d: %v", pid, err)
		}
	}
	got := make([]byte, len(want))
	dst := func(off uint64, n int) ([]byte, error) { return got[off : off+uint64(n)], nil }
	// Each chunk is opened on its own, through the store's current
	// helper: a read either fails with ErrUnavailable (the death not yet
	// noticed) or goes to a new helper and returns the memory.
	within(t, "the read with the helper killed", func() { err = img.ReadMemoryTo(ctx, dst) })
	if err != nil && !errors.Is(err, storage.ErrUnavailable) || err == nil && !bytes.Equal(got, want) {
		t.Errorf("ReadMemoryTo with the helper killed = %v (memory equal: %v), want ErrUnavailable or the memory", err, bytes.Equal(got, want))
	}
	img2, err := s.Open(ctx, "img")
	if err != nil {
		t.Fatalf("Open with a new helper = %v", err)
	}
	defer img2.Close()
	if err := img2.ReadMemoryTo(ctx, dst); err != nil {
		t.Fatalf("ReadMemoryTo with a new helper = %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Error("memory read through a new helper differs")
	}
}

// TestS3HelperHung: a helper that never answers does not hold up an
// operation past its context.
func TestS3HelperHung(t *testing.T) {
	hung := filepath.Join(t.TempDir(), "hung")
	if err := os.WriteFile(hung, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(storage.S3HelperEnv, hung)
	s, err := storage.NewS3Store(context.Background(), storage.S3Config{Endpoint: "127.0.0.1:1", Bucket: "b"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	within(t, "List with a hung helper", func() { _, err = s.List(ctx) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("List with a hung helper = %v, want context.DeadlineExceeded", err)
	}
	for _, pid := range storage.S3HelperPIDs() {
		_ = syscall.Kill(pid, syscall.SIGKILL) // the other helpers restart on demand
	}
}
