package vfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/stateify"
)

// roundTrip saves t with stateify and loads it back with ctx.
func roundTrip(t *testing.T, ctx context.Context, tbl *FDTable) *FDTable {
	t.Helper()
	var buf bytes.Buffer
	if err := stateify.Save(context.Background(), &buf, tbl); err != nil {
		t.Fatalf("stateify.Save = %v", err)
	}
	var out FDTable
	if err := stateify.Load(ctx, &buf, &out); err != nil {
		t.Fatalf("stateify.Load = %v", err)
	}
	return &out
}

func getFD(t *testing.T, tbl *FDTable, fd int32) *File {
	t.Helper()
	f, _, err := tbl.Get(fd)
	if err != nil {
		t.Fatalf("Get(%d) after restore = %v", fd, err)
	}
	t.Cleanup(f.DecRef)
	return f
}

// TestStateifyRoundTrip saves a descriptor table holding every kind of
// file through the generated code and checks what survives.
func TestStateifyRoundTrip(t *testing.T) {
	_, fs := testTree(t)
	tbl := NewFDTable()
	install := func(f *File, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tbl.NewFD(0, f, FDFlags{CloseOnExec: tbl.Len()%2 == 1}); err != nil {
			t.Fatal(err)
		}
		f.DecRef()
	}
	hr, hw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Close()
	defer hw.Close()
	install(NewStdio(1, os.Stdout))                      // 0
	install(fs.OpenAt(nil, "/etc/abs-link", 0, 0))       // 1
	install(fs.OpenAt(nil, "/dir", unix.O_DIRECTORY, 0)) // 2
	install(OpenDevice("/dev/zero", unix.O_RDONLY))      // 3
	r, w := NewPipe(unix.O_NONBLOCK)
	install(r, nil) // 4
	install(w, nil) // 5
	// Pipe and file state to carry across.
	w.Write(nil, []byte("in flight"))
	hello := getFD(t, tbl, 1)
	hello.Read(nil, make([]byte, 3))
	dup, err := tbl.Dup2(1, 9) // a shared File: one object, one offset
	if err != nil || dup != 9 {
		t.Fatal(err)
	}

	errs := &RestoreErrors{}
	ctx := WithRestoreErrors(WithRestoreStdio(context.Background(), [3]*os.File{nil, hw, nil}), errs)
	got := roundTrip(t, ctx, tbl)
	defer got.Close()
	tbl.Close()
	if err := errs.Err(); err != nil {
		t.Fatalf("restore errors = %v", err)
	}

	var fds []int32
	var cloexec []bool
	got.ForEach(func(fd int32, _ *File, fl FDFlags) { fds = append(fds, fd); cloexec = append(cloexec, fl.CloseOnExec) })
	if want := []int32{0, 1, 2, 3, 4, 5, 9}; !slices.Equal(fds, want) {
		t.Fatalf("restored descriptors = %v, want %v", fds, want)
	}
	if cloexec[1] != true || cloexec[2] != false {
		t.Errorf("restored FD_CLOEXEC = %v, want the saved flags", cloexec)
	}
	if got.Limit() != DefaultNOFILE {
		t.Errorf("restored Limit() = %d, want %d", got.Limit(), DefaultNOFILE)
	}

	// Stdio 1 is re-bound to the pipe the restorer gave.
	if _, err := getFD(t, got, 0).Write(nil, []byte("out")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	if n, err := hr.Read(b); err != nil || string(b[:n]) != "out" {
		t.Errorf("restored stdout wrote %q, %v; want \"out\"", b[:n], err)
	}
	// The host file continues at its offset; fds 1 and 9 share it.
	f1, f9 := getFD(t, got, 1), getFD(t, got, 9)
	if f1 != f9 {
		t.Errorf("fds 1 and 9 restored as different Files; want one shared File")
	}
	if n, err := f1.Read(nil, b); err != nil || string(b[:n]) != "lo\n" {
		t.Errorf("restored host file read %q, %v; want \"lo\\n\"", b[:n], err)
	}
	if p := f1.Path(); p != "/etc/hello.txt" {
		t.Errorf("restored Path() = %q, want /etc/hello.txt", p)
	}
	// The directory lists.
	n, err := getFD(t, got, 2).Getdents64(make([]byte, 4096))
	if err != nil || n == 0 {
		t.Errorf("restored directory Getdents64 = %d, %v; want entries", n, err)
	}
	// The device works.
	if n, err := getFD(t, got, 3).Read(nil, b); err != nil || n != len(b) || !bytes.Equal(b, make([]byte, len(b))) {
		t.Errorf("restored /dev/zero read %d %x, %v", n, b, err)
	}
	// The pipe keeps its bytes, flags and both ends.
	pr, pw := getFD(t, got, 4), getFD(t, got, 5)
	if pr.StatusFlags()&unix.O_NONBLOCK == 0 {
		t.Errorf("restored pipe lost O_NONBLOCK")
	}
	b = make([]byte, 32)
	if n, err := pr.Read(nil, b); err != nil || string(b[:n]) != "in flight" {
		t.Errorf("restored pipe read %q, %v; want \"in flight\"", b[:n], err)
	}
	if _, err := pr.Read(nil, b); err != unix.EAGAIN {
		t.Errorf("restored empty pipe read = %v, want EAGAIN (writer still open)", err)
	}
	pw.Write(nil, []byte("new"))
	if n, err := pr.Read(nil, b); err != nil || string(b[:n]) != "new" {
		t.Errorf("restored pipe after a new write read %q, %v; want \"new\"", b[:n], err)
	}
}

func TestStateifyRestoreChangedFile(t *testing.T) {
	rootDir, fs := testTree(t)
	tbl := NewFDTable()
	defer tbl.Close()
	f, err := fs.OpenAt(nil, "/etc/hello.txt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	tbl.NewFD(0, f, FDFlags{})
	f.DecRef()
	var img bytes.Buffer
	if err := stateify.Save(context.Background(), &img, tbl); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootDir, "etc", "hello.txt"), []byte("changed!"), 0o644); err != nil {
		t.Fatal(err)
	}
	errs := &RestoreErrors{}
	var out FDTable
	if err := stateify.Load(WithRestoreErrors(context.Background(), errs), &img, &out); err != nil {
		t.Fatalf("stateify.Load = %v", err)
	}
	defer out.Close()
	if err := errs.Err(); !errors.Is(err, ErrHostFileChanged) {
		t.Errorf("restore after the host file changed: errors = %v, want ErrHostFileChanged", err)
	}
}
