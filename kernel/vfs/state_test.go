package vfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// savedCopy returns what a restore rebuilds from f's saved fields only:
// nosave fields are zero, then the afterLoad hooks run (stateify does this
// once the generated code exists; this test pins the hooks' behaviour).
func savedCopy(ctx context.Context, f *File) *File {
	nf := &File{}
	nf.refs.Store(f.refs.Load())
	nf.flags.Store(f.flags.Load())
	switch impl := f.impl.(type) {
	case *hostFile:
		impl.beforeSave()
		root := &Root{hostDir: impl.root.hostDir}
		h := &hostFile{
			root: root, path: impl.path, lookupFlags: impl.lookupFlags, pathOnly: impl.pathOnly,
			mode: impl.mode, ident: impl.ident, off: impl.off, dirPos: impl.dirPos,
		}
		// The file's hook may run before the root's: both orders work.
		h.afterLoad(ctx)
		root.afterLoad(ctx)
		nf.impl = h
	case *stdioFile:
		s := &stdioFile{index: impl.index, pgrp: impl.pgrp}
		s.afterLoad(ctx)
		nf.impl = s
	default:
		panic("savedCopy: unsupported")
	}
	return nf
}

func TestHostFileRestore(t *testing.T) {
	rootDir, fs := testTree(t)
	f, err := fs.OpenAt(nil, "/etc/rel-link", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	buf := make([]byte, 2)
	if _, err := f.Read(nil, buf); err != nil {
		t.Fatal(err)
	}
	d, err := fs.OpenAt(nil, "/dir", unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.DecRef()
	dents := make([]byte, 24*2) // two short entries fit, not all four
	n, err := d.Getdents64(dents)
	if err != nil {
		t.Fatal(err)
	}
	first, err := ParseDirents64(dents[:n])
	if err != nil || len(first) == 0 || len(first) >= 4 {
		t.Fatalf("first Getdents64 = %v, %v; want 1 to 3 of the 4 entries", first, err)
	}
	seen := map[string]bool{}
	for _, e := range first {
		seen[e.Name] = true
	}

	// The save happens before the host changes below.
	f.impl.(*hostFile).beforeSave()
	d.impl.(*hostFile).beforeSave()

	t.Run("unchanged, root moved", func(t *testing.T) {
		moved := rootDir + "-moved"
		if err := os.Rename(rootDir, moved); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(moved, rootDir)
		errs := &RestoreErrors{}
		ctx := WithRestoreErrors(WithRestoreRoot(context.Background(), moved), errs)
		nf, nd := savedCopy(ctx, f), savedCopy(ctx, d)
		if err := errs.Err(); err != nil {
			t.Fatalf("restore errors = %v, want none", err)
		}
		defer nf.DecRef()
		defer nd.DecRef()
		rest := make([]byte, 10)
		n, err := nf.Read(nil, rest)
		if err != nil || string(rest[:n]) != "llo\n" {
			t.Errorf("Read after restore = %q, %v; want \"llo\\n\" (offset kept)", rest[:n], err)
		}
		if got := nf.Path(); got != "/etc/hello.txt" {
			t.Errorf("Path() after restore = %q, want /etc/hello.txt", got)
		}
		all := make([]byte, 4096)
		n, err = nd.Getdents64(all)
		ents, _ := ParseDirents64(all[:n])
		for _, e := range ents {
			if seen[e.Name] {
				t.Errorf("restored directory returned %q again; want the listing to resume", e.Name)
			}
			seen[e.Name] = true
		}
		if err != nil || len(seen) != 4 {
			t.Errorf("Getdents64 before and after restore = %v, %v; want the 4 entries of /dir once each", seen, err)
		}
	})
	t.Run("changed", func(t *testing.T) {
		p := filepath.Join(rootDir, "etc", "hello.txt")
		if err := os.WriteFile(p, []byte("HELLO\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Same size: only the mtime tells.
		later := time.Now().Add(time.Hour)
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
		errs := &RestoreErrors{}
		nf := savedCopy(WithRestoreErrors(context.Background(), errs), f)
		defer nf.DecRef()
		err := errs.Err()
		if !errors.Is(err, ErrHostFileChanged) || !errors.Is(err, ErrRestore) {
			t.Errorf("restore of a changed file: errors = %v, want ErrHostFileChanged and ErrRestore", err)
		}
		if _, err := nf.Read(nil, make([]byte, 4)); err != unix.EIO {
			t.Errorf("Read of a file that failed to restore = %v, want EIO", err)
		}
	})
	t.Run("deleted", func(t *testing.T) {
		if err := os.Remove(filepath.Join(rootDir, "etc", "hello.txt")); err != nil {
			t.Fatal(err)
		}
		errs := &RestoreErrors{}
		nf := savedCopy(WithRestoreErrors(context.Background(), errs), f)
		defer nf.DecRef()
		if err := errs.Err(); !errors.Is(err, unix.ENOENT) {
			t.Errorf("restore of a deleted file: errors = %v, want ENOENT", err)
		}
	})
}

func TestStdioRestore(t *testing.T) {
	hr, hw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Close()
	defer hw.Close()
	out, err := NewStdio(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.DecRef()
	if n, err := out.Write(nil, []byte("dropped")); n != 7 || err != nil {
		t.Errorf("Write to unbound stdio = %d, %v; want 7, nil (like /dev/null)", n, err)
	}
	nf := savedCopy(WithRestoreStdio(context.Background(), [3]*os.File{nil, hw, nil}), out)
	defer nf.DecRef()
	if _, err := nf.Write(nil, []byte("rebound")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := hr.Read(buf)
	if err != nil || string(buf[:n]) != "rebound" {
		t.Errorf("host got %q, %v; want \"rebound\"", buf[:n], err)
	}
}

func TestPipeSaveBuf(t *testing.T) {
	r, w := NewPipe(0)
	defer r.DecRef()
	defer w.DecRef()
	// Make the ring wrap: fill, drain most, refill past the end.
	w.Write(nil, make([]byte, PipeSize-10))
	r.Read(nil, make([]byte, PipeSize-15))
	data := []byte("0123456789abcdefghij")
	w.Write(nil, data)
	p := r.impl.(*pipeReader).pipe
	if p.head+p.size <= PipeSize {
		t.Fatalf("ring did not wrap (head %d size %d)", p.head, p.size)
	}
	saved := p.saveBuf()
	if want := append(make([]byte, 5), data...); !bytes.Equal(saved, want) {
		t.Fatalf("saveBuf = %q, want %q", saved, want)
	}
	np := &pipe{readers: 1, writers: 1, ino: pipeIno.Load() + 1000}
	np.loadBuf(context.Background(), saved)
	np.afterLoad(context.Background())
	nr := newFile(unix.O_RDONLY, &pipeReader{pipe: np})
	got := make([]byte, 64)
	n, err := nr.Read(nil, got)
	if err != nil || !bytes.Equal(got[:n], saved) {
		t.Errorf("Read of restored pipe = %q, %v; want %q", got[:n], err, saved)
	}
	fr, fw := NewPipe(0)
	defer fr.DecRef()
	defer fw.DecRef()
	if ino := fr.impl.(*pipeReader).pipe.ino; ino <= np.ino {
		t.Errorf("new pipe inode %d after restoring pipe inode %d, want a larger one", ino, np.ino)
	}
	empty := &pipe{}
	if b := empty.saveBuf(); len(b) != 0 {
		t.Errorf("saveBuf of an empty pipe = %d bytes, want 0", len(b))
	}
}

// TestHostFileRestorePortable restores against a copy of the root (as on
// another machine): the strict identity check refuses it, the portable one
// accepts it while still refusing a changed file.
func TestHostFileRestorePortable(t *testing.T) {
	rootDir, fs := testTree(t)
	f, err := fs.OpenAt(nil, "/dir/sub/deep.txt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	f.Read(nil, make([]byte, 1))
	f.impl.(*hostFile).beforeSave()

	copyDir := t.TempDir()
	src := filepath.Join(rootDir, "dir", "sub", "deep.txt")
	dst := filepath.Join(copyDir, "dir", "sub", "deep.txt")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dst, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		portable bool
		modify   bool
		want     error
	}{
		{"strict", false, false, ErrHostFileChanged},
		{"portable", true, false, nil},
		{"portable, file changed", true, true, ErrHostFileChanged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.modify {
				if err := os.WriteFile(dst, []byte("DEEP"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			errs := &RestoreErrors{}
			ctx := WithRestoreErrors(WithRestoreRoot(context.Background(), copyDir), errs)
			if tc.portable {
				ctx = WithRestorePortableIdentity(ctx)
			}
			nf := savedCopy(ctx, f)
			defer nf.DecRef()
			err := errs.Err()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("restore errors = %v, want none", err)
				}
				b := make([]byte, 8)
				if n, err := nf.Read(nil, b); err != nil || string(b[:n]) != "eep" {
					t.Errorf("Read after portable restore = %q, %v; want \"eep\"", b[:n], err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("restore errors = %v, want %v", err, tc.want)
			}
		})
	}
}
