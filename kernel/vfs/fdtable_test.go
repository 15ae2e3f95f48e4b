package vfs

import (
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func openNull(t *testing.T) *File {
	t.Helper()
	f, err := OpenDevice("/dev/null", unix.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFDTableNewFD(t *testing.T) {
	tbl := NewFDTable()
	defer tbl.Close()
	f := openNull(t)
	defer f.DecRef()
	for want := int32(0); want < 3; want++ {
		if fd, err := tbl.NewFD(0, f, FDFlags{}); fd != want || err != nil {
			t.Fatalf("NewFD(0) = %d, %v; want %d", fd, err, want)
		}
	}
	if err := tbl.Remove(1); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		min     int32
		want    int32
		wantErr error
	}{
		{0, 1, nil},   // lowest free
		{10, 10, nil}, // F_DUPFD with a minimum
		{10, 11, nil},
		{-1, -1, unix.EINVAL},
		{DefaultNOFILE, -1, unix.EINVAL},
	}
	for _, tc := range tests {
		fd, err := tbl.NewFD(tc.min, f, FDFlags{})
		if fd != tc.want || err != tc.wantErr {
			t.Errorf("NewFD(%d) = %d, %v; want %d, %v", tc.min, fd, err, tc.want, tc.wantErr)
		}
	}
	// 6 installs, 1 removal, plus the caller's own reference.
	if got := f.refs.Load(); got != 6 {
		t.Errorf("refs with 5 descriptors installed = %d, want 6", got)
	}
}

func TestFDTableLimit(t *testing.T) {
	tbl := NewFDTable()
	defer tbl.Close()
	if err := tbl.SetLimit(3); err != nil {
		t.Fatal(err)
	}
	f := openNull(t)
	defer f.DecRef()
	for range 3 {
		if _, err := tbl.NewFD(0, f, FDFlags{}); err != nil {
			t.Fatal(err)
		}
	}
	if fd, err := tbl.NewFD(0, f, FDFlags{}); err != unix.EMFILE {
		t.Errorf("NewFD at limit = %d, %v; want EMFILE", fd, err)
	}
	if fd, err := tbl.Dup(0); err != unix.EMFILE {
		t.Errorf("Dup at limit = %d, %v; want EMFILE", fd, err)
	}
	if _, err := tbl.Dup3(0, 3, FDFlags{}); err != unix.EBADF {
		t.Errorf("Dup3(0, 3) with limit 3 = %v, want EBADF", err)
	}
	r, w := NewPipe(0)
	defer r.DecRef()
	defer w.DecRef()
	if _, err := tbl.NewFDs([]*File{r, w}, FDFlags{}); err != unix.EMFILE {
		t.Errorf("NewFDs at limit = %v, want EMFILE", err)
	}
	if got := r.refs.Load(); got != 1 {
		t.Errorf("refs of the pipe after failed NewFDs = %d, want 1 (nothing installed)", got)
	}
	if err := tbl.SetLimit(maxNOFILE + 1); err != unix.EPERM {
		t.Errorf("SetLimit(huge) = %v, want EPERM", err)
	}
}

func TestFDTableDup(t *testing.T) {
	a, b := openNull(t), openNull(t)
	defer a.DecRef()
	defer b.DecRef()
	setup := func() *FDTable {
		tbl := NewFDTable()
		tbl.NewFD(0, a, FDFlags{CloseOnExec: true}) // 0
		tbl.NewFD(0, b, FDFlags{})                  // 1
		return tbl
	}
	tests := []struct {
		name      string
		op        func(*FDTable) (int32, error)
		want      int32
		wantErr   error
		checkFD   int32
		wantFile  *File
		wantFlags FDFlags
	}{
		{"dup clears cloexec", func(t *FDTable) (int32, error) { return t.Dup(0) }, 2, nil, 2, a, FDFlags{}},
		{"dup bad fd", func(t *FDTable) (int32, error) { return t.Dup(7) }, -1, unix.EBADF, -1, nil, FDFlags{}},
		{"dup2 replaces", func(t *FDTable) (int32, error) { return t.Dup2(0, 1) }, 1, nil, 1, a, FDFlags{}},
		{"dup2 same fd", func(t *FDTable) (int32, error) { return t.Dup2(0, 0) }, 0, nil, 0, a, FDFlags{CloseOnExec: true}},
		{"dup2 same bad fd", func(t *FDTable) (int32, error) { return t.Dup2(5, 5) }, -1, unix.EBADF, -1, nil, FDFlags{}},
		{"dup2 far", func(t *FDTable) (int32, error) { return t.Dup2(1, 100) }, 100, nil, 100, b, FDFlags{}},
		{"dup3 cloexec", func(t *FDTable) (int32, error) { return t.Dup3(1, 5, FDFlags{CloseOnExec: true}) }, 5, nil, 5, b, FDFlags{CloseOnExec: true}},
		{"dup3 same fd", func(t *FDTable) (int32, error) { return t.Dup3(1, 1, FDFlags{}) }, -1, unix.EINVAL, -1, nil, FDFlags{}},
		{"dup3 negative", func(t *FDTable) (int32, error) { return t.Dup3(1, -1, FDFlags{}) }, -1, unix.EBADF, -1, nil, FDFlags{}},
		{"F_DUPFD_CLOEXEC", func(t *FDTable) (int32, error) { return t.DupFD(1, 3, FDFlags{CloseOnExec: true}) }, 3, nil, 3, b, FDFlags{CloseOnExec: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := setup()
			defer tbl.Close()
			got, err := tc.op(tbl)
			if got != tc.want || err != tc.wantErr {
				t.Fatalf("%s = %d, %v; want %d, %v", tc.name, got, err, tc.want, tc.wantErr)
			}
			if tc.checkFD < 0 {
				return
			}
			f, flags, err := tbl.Get(tc.checkFD)
			if err != nil {
				t.Fatalf("Get(%d) = %v", tc.checkFD, err)
			}
			defer f.DecRef()
			if f != tc.wantFile || flags != tc.wantFlags {
				t.Errorf("Get(%d) = %p %+v, want %p %+v", tc.checkFD, f, flags, tc.wantFile, tc.wantFlags)
			}
		})
	}
	if a.refs.Load() != 1 || b.refs.Load() != 1 {
		t.Errorf("refs after all tables closed = %d, %d; want 1, 1", a.refs.Load(), b.refs.Load())
	}
}

func TestFDTableFlagsExecForkForEach(t *testing.T) {
	tbl := NewFDTable()
	f := openNull(t)
	defer f.DecRef()
	for i := range 5 {
		tbl.NewFD(0, f, FDFlags{CloseOnExec: i%2 == 1})
	}
	if err := tbl.SetFlags(0, FDFlagsFromLinux(unix.FD_CLOEXEC)); err != nil {
		t.Fatal(err)
	}
	if fl, err := tbl.Flags(0); err != nil || fl.ToLinux() != unix.FD_CLOEXEC {
		t.Errorf("Flags(0) = %d, %v; want FD_CLOEXEC", fl.ToLinux(), err)
	}
	if err := tbl.SetFlags(42, FDFlags{}); err != unix.EBADF {
		t.Errorf("SetFlags(42) = %v, want EBADF", err)
	}
	child := tbl.Fork()
	tbl.CloseOnExec()
	var got []int32
	tbl.ForEach(func(fd int32, _ *File, _ FDFlags) { got = append(got, fd) })
	if want := []int32{2, 4}; !slices.Equal(got, want) {
		t.Errorf("descriptors after CloseOnExec = %v, want %v", got, want)
	}
	if n := child.Len(); n != 5 {
		t.Errorf("forked table Len() = %d, want 5 (independent of the parent)", n)
	}
	child.CloseRange(1, 3)
	got = nil
	child.ForEach(func(fd int32, _ *File, _ FDFlags) { got = append(got, fd) })
	if want := []int32{0, 4}; !slices.Equal(got, want) {
		t.Errorf("descriptors after CloseRange(1, 3) = %v, want %v", got, want)
	}
	if err := child.Remove(1); err != unix.EBADF {
		t.Errorf("Remove(closed fd) = %v, want EBADF", err)
	}
	child.Close()
	tbl.Close()
	if n := f.refs.Load(); n != 1 {
		t.Errorf("refs after closing both tables = %d, want 1", n)
	}
}

// TestFDTableConcurrent runs table operations from several goroutines (as
// threads sharing a table do); with -race it checks the locking, and the
// reference count must balance at the end.
func TestFDTableConcurrent(t *testing.T) {
	tbl := NewFDTable()
	f := openNull(t)
	defer f.DecRef()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				fd, err := tbl.NewFD(0, f, FDFlags{})
				if err != nil {
					t.Errorf("NewFD = %v", err)
					return
				}
				switch i % 3 {
				case 0:
					tbl.Dup2(fd, int32(100+g))
				case 1:
					if got, _, err := tbl.Get(fd); err == nil {
						got.DecRef()
					}
				}
				tbl.Remove(fd)
			}
		}()
	}
	wg.Wait()
	tbl.Close()
	if n := f.refs.Load(); n != 1 {
		t.Errorf("refs after concurrent use and Close = %d, want 1", n)
	}
}
