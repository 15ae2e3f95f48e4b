package vfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestEncodeStatMatchesHost decodes EncodeStat's bytes as the host's
// struct stat and compares them with unix.Fstat of the same file.
func TestEncodeStatMatchesHost(t *testing.T) {
	rootDir, fs := testTree(t)
	for _, p := range []string{"/etc/hello.txt", "/etc", "/dir/sub/deep.txt"} {
		t.Run(p, func(t *testing.T) {
			f, err := fs.OpenAt(nil, p, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.DecRef()
			var want unix.Stat_t
			if err := unix.Stat(filepath.Join(rootDir, p), &want); err != nil {
				t.Fatal(err)
			}
			st, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			enc := st.EncodeStat()
			var got unix.Stat_t
			if err := binary.Read(bytes.NewReader(enc[:]), binary.LittleEndian, &got); err != nil {
				t.Fatal(err)
			}
			if binary.Size(got) != StatSize {
				t.Fatalf("binary.Size(unix.Stat_t) = %d, want %d", binary.Size(got), StatSize)
			}
			if got != want {
				t.Errorf("EncodeStat(%s) decodes to\n%+v\nwant\n%+v", p, got, want)
			}
		})
	}
}

// TestEncodeStatxMatchesHost does the same for statx.
func TestEncodeStatxMatchesHost(t *testing.T) {
	rootDir, fs := testTree(t)
	st, err := fs.Fstatat(nil, "/etc/hello.txt", 0)
	if err != nil {
		t.Fatal(err)
	}
	var want unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, filepath.Join(rootDir, "etc/hello.txt"), 0, unix.STATX_BASIC_STATS|unix.STATX_BTIME|unix.STATX_MNT_ID, &want); err != nil {
		t.Fatal(err)
	}
	enc := st.EncodeStatx()
	var got unix.Statx_t
	if err := binary.Read(bytes.NewReader(enc[:binary.Size(got)]), binary.LittleEndian, &got); err != nil {
		t.Fatal(err)
	}
	// Fields the sentry does not report (DIO alignment, subvolume, atomic
	// write limits) stay zero.
	want = unix.Statx_t{
		Mask: want.Mask, Blksize: want.Blksize, Attributes: want.Attributes, Nlink: want.Nlink,
		Uid: want.Uid, Gid: want.Gid, Mode: want.Mode, Ino: want.Ino, Size: want.Size,
		Blocks: want.Blocks, Attributes_mask: want.Attributes_mask, Atime: want.Atime,
		Btime: want.Btime, Ctime: want.Ctime, Mtime: want.Mtime, Rdev_major: want.Rdev_major,
		Rdev_minor: want.Rdev_minor, Dev_major: want.Dev_major, Dev_minor: want.Dev_minor,
		Mnt_id: want.Mnt_id,
	}
	if got != want {
		t.Errorf("EncodeStatx decodes to\n%+v\nwant\n%+v", got, want)
	}
}

func TestGetdents64(t *testing.T) {
	rootDir, fs := testTree(t)
	// Enough entries to need several calls with a small buffer.
	for i := range 40 {
		if err := os.WriteFile(filepath.Join(rootDir, "dir", fmt.Sprintf("file-with-a-longish-name-%02d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hostEnts, err := os.ReadDir(filepath.Join(rootDir, "dir"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".", ".."}
	for _, e := range hostEnts {
		want = append(want, e.Name())
	}
	slices.Sort(want)

	for _, bufSize := range []int{64, 200, 4096} {
		t.Run(fmt.Sprint(bufSize), func(t *testing.T) {
			d, err := fs.OpenAt(nil, "/dir", unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer d.DecRef()
			var got []string
			buf := make([]byte, bufSize)
			for calls := 0; ; calls++ {
				if calls > 1000 {
					t.Fatal("Getdents64 never reached the end")
				}
				n, err := d.Getdents64(buf)
				if err != nil {
					t.Fatalf("Getdents64(%d bytes) = %v", bufSize, err)
				}
				if n == 0 {
					break
				}
				ents, err := ParseDirents64(buf[:n])
				if err != nil {
					t.Fatalf("ParseDirents64 = %v", err)
				}
				for _, e := range ents {
					got = append(got, e.Name)
					if e.Name == "sub" && e.Type != unix.DT_DIR {
						t.Errorf("d_type of sub = %d, want DT_DIR", e.Type)
					}
					if e.Name == "dirlink" && e.Type != unix.DT_LNK {
						t.Errorf("d_type of dirlink = %d, want DT_LNK", e.Type)
					}
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("Getdents64 names = %q, want %q", got, want)
			}
		})
	}
	t.Run("too small", func(t *testing.T) {
		d, err := fs.OpenAt(nil, "/dir", unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer d.DecRef()
		if n, err := d.Getdents64(make([]byte, 10)); err != unix.EINVAL {
			t.Errorf("Getdents64(10 bytes) = %d, %v; want EINVAL", n, err)
		}
	})
	t.Run("seek back resumes", func(t *testing.T) {
		d, err := fs.OpenAt(nil, "/dir", unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer d.DecRef()
		buf := make([]byte, 4096)
		n, err := d.Getdents64(buf)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := ParseDirents64(buf[:n])
		if len(all) < 3 {
			t.Fatalf("got %d entries, want >= 3", len(all))
		}
		// telldir/seekdir: seek to the second record's d_off.
		if _, err := d.Seek(all[1].Off, unix.SEEK_SET); err != nil {
			t.Fatal(err)
		}
		n, err = d.Getdents64(buf)
		if err != nil {
			t.Fatal(err)
		}
		rest, _ := ParseDirents64(buf[:n])
		if len(rest) == 0 || rest[0].Name != all[2].Name {
			t.Errorf("after Seek(%d), first entry = %v, want %q", all[1].Off, rest, all[2].Name)
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		f, err := fs.OpenAt(nil, "/etc/hello.txt", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.DecRef()
		if _, err := f.Getdents64(make([]byte, 512)); err != unix.ENOTDIR {
			t.Errorf("Getdents64(regular file) = %v, want ENOTDIR", err)
		}
	})
}

func TestParseDirents64Malformed(t *testing.T) {
	good := AppendDirent64(nil, Dirent{Ino: 7, Off: 1, Type: unix.DT_REG, Name: "abc"})
	tests := []struct {
		name string
		b    []byte
	}{
		{"truncated header", good[:10]},
		{"reclen beyond buffer", good[:len(good)-1]},
		{"zero reclen", func() []byte { b := slices.Clone(good); b[16], b[17] = 0, 0; return b }()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseDirents64(tc.b); err == nil {
				t.Errorf("ParseDirents64(%x) = nil error, want error", tc.b)
			}
		})
	}
	got, err := ParseDirents64(good)
	if err != nil || len(got) != 1 || got[0] != (Dirent{Ino: 7, Off: 1, Type: unix.DT_REG, Name: "abc"}) {
		t.Errorf("ParseDirents64(good) = %+v, %v", got, err)
	}
}

func TestSeekAndPRead(t *testing.T) {
	_, fs := testTree(t)
	f, err := fs.OpenAt(nil, "/etc/hello.txt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.DecRef()
	tests := []struct {
		off     int64
		whence  int
		want    int64
		wantErr error
	}{
		{2, unix.SEEK_SET, 2, nil},
		{1, unix.SEEK_CUR, 3, nil},
		{-1, unix.SEEK_END, 5, nil},
		{-10, unix.SEEK_SET, 0, unix.EINVAL},
		{0, 99, 0, unix.EINVAL},
		{0, unix.SEEK_DATA, 0, nil},
		{0, unix.SEEK_HOLE, 6, nil},
	}
	for _, tc := range tests {
		got, err := f.Seek(tc.off, tc.whence)
		if err != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("Seek(%d, %d) = %d, %v; want %d, %v", tc.off, tc.whence, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := f.Seek(4, unix.SEEK_SET); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := f.PRead(buf, 1); err != nil || string(buf[:n]) != "ello\n" {
		t.Errorf("PRead(off 1) = %q, %v; want \"ello\\n\"", buf[:n], err)
	}
	if n, err := f.Read(nil, buf); err != nil || string(buf[:n]) != "o\n" {
		t.Errorf("Read after Seek(4) and PRead = %q, %v; want \"o\\n\" (PRead must not move the offset)", buf[:n], err)
	}
	if _, err := f.PRead(buf, -1); err != unix.EINVAL {
		t.Errorf("PRead(off -1) = %v, want EINVAL", err)
	}
}
