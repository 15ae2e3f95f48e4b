package vfs

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// cutSeq is a Bytes whose first copy runs cut first: the file's pages
// are taken from it while a read or write copies without the
// filesystem's lock.
type cutSeq struct {
	Bytes
	cut func()
}

func (s *cutSeq) run() {
	if s.cut != nil {
		s.cut()
		s.cut = nil
	}
}

func (s *cutSeq) CopyIn(off int, dst []byte) error {
	s.run()
	return s.Bytes.CopyIn(off, dst)
}

func (s *cutSeq) CopyOut(off int, src []byte) error {
	s.run()
	return s.Bytes.CopyOut(off, src)
}

// TestTmpfsCutDuringCopy checks a read or write that copies while
// truncate or a punched hole takes the file's pages: a read returns the
// bytes it found, a write lands in the file as if it came after the cut,
// and the pages taken are freed once the copy ends.
func TestTmpfsCutDuringCopy(t *testing.T) {
	const size = 5 * pageSize
	old := bytes.Repeat([]byte{'o'}, size)
	neu := bytes.Repeat([]byte{'n'}, 2*pageSize)
	for _, tc := range []struct {
		name  string
		write bool
		cut   func(f *File) error
		// want is the file afterwards; read is what the read returns.
		want, read []byte
	}{
		{"read/truncate", false, func(f *File) error { return f.Truncate(0) }, nil, old[:2*pageSize]},
		{"read/punch", false, func(f *File) error {
			return f.Fallocate(fallocPunchHole|fallocKeepSize, 0, size)
		}, make([]byte, size), old[:2*pageSize]},
		{"write/truncate", true, func(f *File) error { return f.Truncate(pageSize) },
			append(append([]byte{}, old[:pageSize]...), neu...), nil},
		{"write/punch", true, func(f *File) error {
			return f.Fallocate(fallocPunchHole|fallocKeepSize, 0, size)
		}, append(append(make([]byte, pageSize), neu...), make([]byte, 2*pageSize)...), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, fs := testTree(t)
			writeFileAt(t, fs, "/run/f", string(old))
			f, err := fs.OpenAt(nil, "/run/f", unix.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.DecRef()
			tf := f.impl.(*tmpfsFile)
			var cutErr error
			seq := &cutSeq{cut: func() { cutErr = tc.cut(f) }}
			if tc.write {
				seq.Bytes = append(Bytes{}, neu...)
				if n, err := f.WriteSeqAt(seq, pageSize); n != len(neu) || err != nil {
					t.Fatalf("WriteSeqAt = %d, %v, want %d", n, err, len(neu))
				}
			} else {
				seq.Bytes = make(Bytes, 2*pageSize)
				if n, err := f.ReadSeqAt(seq, 0); n != len(seq.Bytes) || err != nil {
					t.Fatalf("ReadSeqAt = %d, %v, want %d", n, err, len(seq.Bytes))
				}
				if !bytes.Equal(seq.Bytes, tc.read) {
					t.Errorf("read %q..., want %q...", seq.Bytes[:8], tc.read[:8])
				}
			}
			if cutErr != nil {
				t.Fatalf("cut: %v", cutErr)
			}
			got := make([]byte, size+pageSize)
			n, err := f.PRead(got, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:n], tc.want) {
				t.Errorf("file is %d bytes, want %d (or contents differ)", n, len(tc.want))
			}
			fsys := tf.node.fs
			fsys.mu.Lock()
			defer fsys.mu.Unlock()
			if tf.node.copies != 0 || len(tf.node.held) != 0 {
				t.Errorf("after the copy: copies %d, held %d, want 0, 0", tf.node.copies, len(tf.node.held))
			}
			if want := uint64(len(tf.node.pages)) * pageSize; fsys.used != want {
				t.Errorf("used = %d, want %d (the file's pages)", fsys.used, want)
			}
		})
	}
}
