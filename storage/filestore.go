package storage

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// File store layout: one directory per image,
//
//	ROOT/NAME/manifest      published last, by renaming the directory
//	ROOT/NAME/state.zst
//	ROOT/NAME/memory.idx
//	ROOT/NAME/memory.bin    formats 1.0 and 1.1 only
//	ROOT/.chunks/ab/ab12..  content-addressed chunks (filestore_chunks.go)
//	ROOT/.tmp-NAME-RAND/    an image being written
//	ROOT/.del-NAME-RAND/    an image being deleted
const (
	tmpPrefix = ".tmp-"
	delPrefix = ".del-"
)

// fileBackend keeps images in a local directory.
type fileBackend struct {
	root string
}

// NewFileStore returns the store kept in directory dir, which is created on
// first write. Publishing is atomic: blobs and manifest are fsync'ed in a
// staging directory which is then renamed into place.
func NewFileStore(dir string) (Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", dir, err)
	}
	return &store{b: &fileBackend{root: abs}}, nil
}

func (f *fileBackend) storeURI() string            { return "file://" + f.root }
func (f *fileBackend) imageURI(name string) string { return "file://" + filepath.Join(f.root, name) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux.
	return hex.EncodeToString(b)
}

// An image holds the sandbox's whole memory, its environment and whatever
// secrets it had: the store keeps images to their owner. Directories the
// store creates are dirMode and files fileMode, whatever the umask (which
// can only remove bits, but a umask of 0077 is not what everyone has).
const (
	dirMode  = 0o700
	fileMode = 0o600
)

// mkdirPrivate creates directory dir with dirMode, or leaves an existing
// one as it is (the user's choice), creating missing parents like
// os.MkdirAll.
func mkdirPrivate(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), dirMode); err != nil {
		return err
	}
	if err := os.Mkdir(dir, dirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return os.Chmod(dir, dirMode)
}

// createPrivate creates file path, which must not exist, with fileMode.
func createPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(fileMode); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (f *fileBackend) begin(_ context.Context, name string) (staging, error) {
	if err := mkdirPrivate(f.root); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	f.pruneStale()
	dir := filepath.Join(f.root, tmpPrefix+name+"-"+randHex(6))
	if err := os.Mkdir(dir, dirMode); err != nil {
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	return &fileStaging{f: f, name: name, dir: dir}, nil
}

type fileStaging struct {
	f    *fileBackend
	name string
	dir  string
}

func (s *fileStaging) key(base string) string { return base }

func (s *fileStaging) create(key string, _ bool) (blobWriter, error) {
	fl, err := createPrivate(filepath.Join(s.dir, key))
	if err != nil {
		return nil, fmt.Errorf("create blob %s: %w", key, err)
	}
	return &fileBlobWriter{f: fl, w: bufio.NewWriterSize(fl, 1<<20)}, nil
}

type fileBlobWriter struct {
	f       *os.File
	w       *bufio.Writer
	err     error
	written int64 // bytes written through w
	kicked  int64 // bytes whose writeback has been started
}

// writebackStep is how many bytes a blob writer lets accumulate in the page
// cache before it starts their writeback (sync_file_range), so that the
// fsync at Close finds little left to write: on a 1 GiB save it took about
// 90 ms of the commit otherwise.
const writebackStep = 8 << 20

func (w *fileBlobWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.w.Write(p)
	w.written += int64(n)
	if err != nil {
		w.err = err
	}
	if inFile := w.written - int64(w.w.Buffered()); inFile-w.kicked >= writebackStep {
		// Only a hint: Close's fsync is what makes the data durable.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.kicked, inFile-w.kicked, unix.SYNC_FILE_RANGE_WRITE)
		w.kicked = inFile
	}
	return n, err
}

func (w *fileBlobWriter) Close() error {
	if w.f == nil {
		return w.err
	}
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if w.err == nil {
		w.err = w.f.Sync()
	}
	if err := w.f.Close(); w.err == nil {
		w.err = err
	}
	w.f = nil
	return w.err
}

func (w *fileBlobWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeSynced writes data to f, makes it durable and closes f, whatever
// fails; it returns the first error.
func writeSynced(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *fileStaging) commit(manifest []byte, replace bool) error {
	mf, err := createPrivate(filepath.Join(s.dir, "manifest"))
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	err = writeSynced(mf, manifest)
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	final := filepath.Join(s.f.root, s.name)
	err = unix.Renameat2(unix.AT_FDCWD, s.dir, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) && replace {
		// Swap atomically: readers see the old image or the new one, then
		// the old one (now at s.dir) is deleted.
		err = unix.Renameat2(unix.AT_FDCWD, s.dir, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE)
		if err == nil {
			old := filepath.Join(s.f.root, delPrefix+s.name+"-"+randHex(6))
			if err := os.Rename(s.dir, old); err == nil {
				os.RemoveAll(old)
			}
		}
	}
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("publish %s: %w", s.f.imageURI(s.name), ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w", s.f.imageURI(s.name), err)
	}
	s.dir = ""
	if err := syncDir(s.f.root); err != nil {
		return fmt.Errorf("publish %s: sync store directory: %w", s.f.imageURI(s.name), err)
	}
	return nil
}

func (s *fileStaging) abort() error {
	if s.dir == "" {
		return nil
	}
	err := os.RemoveAll(s.dir)
	s.dir = ""
	return err
}

func mapFileErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

// safeOpen opens path below the directory dirfd without following a
// symbolic link anywhere on the path and without leaving dirfd
// (RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH), and without blocking on a FIFO or
// a device (O_NONBLOCK); it then accepts only what want says (a directory,
// or a regular file). A store's entries are written by snap, so anything
// else was put there by someone else: it is refused with ErrCorrupt naming
// the entry, before a byte of it is read.
func safeOpen(dirfd int, dirName, path string, dir bool) (*os.File, error) {
	fd, _, err := safeOpenFD(dirfd, dirName, path, dir)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), filepath.Join(dirName, path)), nil
}

// safeOpenFD is safeOpen returning the bare descriptor and the file's
// size: for a file read once and closed (a chunk), which so spares the
// two system calls os.NewFile makes to see whether the Go poller could
// take the descriptor (never, for a regular file) and a finalizer.
func safeOpenFD(dirfd int, dirName, path string, dir bool) (int, int64, error) {
	flags := uint64(unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK)
	want, kind := uint32(unix.S_IFREG), "regular file"
	if dir {
		flags |= unix.O_DIRECTORY
		want, kind = unix.S_IFDIR, "directory"
	}
	var fd int
	var err error
	for {
		fd, err = unix.Openat2(dirfd, path, &unix.OpenHow{Flags: flags,
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS})
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	switch {
	case errors.Is(err, unix.ELOOP):
		return -1, 0, fmt.Errorf("%s: a symbolic link on the path, refused: %w", filepath.Join(dirName, path), ErrCorrupt)
	case errors.Is(err, unix.EXDEV):
		return -1, 0, fmt.Errorf("%s: leaves the store, refused: %w", filepath.Join(dirName, path), ErrCorrupt)
	case errors.Is(err, unix.ENOTDIR) && dir:
		// O_DIRECTORY fails a link with ENOTDIR before O_NOFOLLOW's
		// ELOOP: say what it is.
		var st unix.Stat_t
		kind := "not a directory"
		if unix.Fstatat(dirfd, path, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			kind = "a " + fileKind(st.Mode) + ", not a directory"
		}
		return -1, 0, fmt.Errorf("%s: %s, refused: %w", filepath.Join(dirName, path), kind, ErrCorrupt)
	case err != nil:
		return -1, 0, mapFileErr(&fs.PathError{Op: "open", Path: filepath.Join(dirName, path), Err: err})
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, 0, &fs.PathError{Op: "stat", Path: filepath.Join(dirName, path), Err: err}
	}
	if st.Mode&unix.S_IFMT != want {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("%s: a %s, not a %s, refused: %w", filepath.Join(dirName, path), fileKind(st.Mode), kind, ErrCorrupt)
	}
	return fd, st.Size, nil
}

// fileKind names the file type in mode.
func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFLNK:
		return "symbolic link"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFREG:
		return "regular file"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

// openRoot opens the store directory. It may be reached through symbolic
// links (the user named it), but must be a directory: O_DIRECTORY and
// O_NONBLOCK keep a FIFO given as a store from blocking the open.
func (f *fileBackend) openRoot() (*os.File, error) {
	root, err := os.OpenFile(f.root, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, mapFileErr(err)
	}
	return root, nil
}

// readRoot lists the store directory; a missing one is empty.
func (f *fileBackend) readRoot() ([]fs.DirEntry, error) {
	root, err := f.openRoot()
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer root.Close()
	ents, err := root.ReadDir(-1)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, err
}

// open opens the image directory NAME of the store root. The root itself
// may be reached through symbolic links (it is the user's choice); nothing
// below it is.
func (f *fileBackend) open(_ context.Context, name string) (handle, error) {
	root, err := f.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	d, err := safeOpen(int(root.Fd()), f.root, name, true)
	if err != nil {
		return nil, err
	}
	return &fileHandle{dir: d}, nil
}

func (f *fileBackend) exists(_ context.Context, name string) (bool, error) {
	_, err := os.Lstat(filepath.Join(f.root, name, "manifest"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// fileHandle opens everything relative to the image directory's descriptor,
// so a concurrent replace (which swaps directories) cannot mix generations.
type fileHandle struct {
	dir *os.File
}

// openat opens the blob or manifest key of the image: a regular file
// inside the image directory, reached through no symbolic link.
func (h *fileHandle) openat(key string) (*os.File, error) {
	return safeOpen(int(h.dir.Fd()), h.dir.Name(), key, false)
}

func (h *fileHandle) manifest(context.Context) ([]byte, error) {
	fl, err := h.openat("manifest")
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	b, err := io.ReadAll(io.LimitReader(fl, maxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("manifest larger than %d bytes: %w", maxManifestSize, ErrCorrupt)
	}
	return b, nil
}

func (h *fileHandle) blob(_ context.Context, key string, size int64) (blobReader, error) {
	fl, err := h.openat(key)
	if err != nil {
		return nil, err
	}
	return &fileBlob{f: fl}, nil
}

func (h *fileHandle) close() error { return h.dir.Close() }

func (h *fileHandle) aux(_ context.Context, key string) ([]byte, error) {
	fl, err := h.openat(key)
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	b, err := io.ReadAll(io.LimitReader(fl, maxAuxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxAuxSize {
		return nil, fmt.Errorf("%s larger than %d bytes: %w", fl.Name(), maxAuxSize, ErrCorrupt)
	}
	return b, nil
}

// putAux writes a temporary file in the image directory, makes it durable
// and renames it over key, then syncs the directory.
func (h *fileHandle) putAux(_ context.Context, key string, data []byte) error {
	dirfd := int(h.dir.Fd())
	tmp := "." + key + ".tmp-" + randHex(8)
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return mapFileErr(&fs.PathError{Op: "create", Path: filepath.Join(h.dir.Name(), tmp), Err: err})
	}
	err = writeSynced(os.NewFile(uintptr(fd), filepath.Join(h.dir.Name(), tmp)), data)
	if err == nil {
		err = unix.Renameat(dirfd, tmp, dirfd, key)
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return mapFileErr(&fs.PathError{Op: "write", Path: filepath.Join(h.dir.Name(), key), Err: err})
	}
	return h.dir.Sync()
}

type fileBlob struct{ f *os.File }

func (b *fileBlob) readAt(_ context.Context, p []byte, off int64) error {
	n, err := b.f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == io.EOF {
		return fmt.Errorf("%s: %d bytes at %d, blob truncated: %w", b.f.Name(), len(p), off, ErrCorrupt)
	}
	return err
}

func (b *fileBlob) size(context.Context) (int64, error) {
	fi, err := b.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (b *fileBlob) close() error { return b.f.Close() }

func (f *fileBackend) list(context.Context) ([]string, error) {
	ents, err := f.readRoot()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || validName(e.Name()) != nil {
			continue
		}
		// An image directory replaced by a link, and a manifest that is a
		// link or a FIFO, are listed, then refused when opened: List
		// reports them rather than hiding them.
		if e.Type()&fs.ModeSymlink != 0 {
			names = append(names, e.Name())
			continue
		}
		if !e.IsDir() {
			continue
		}
		if _, err := os.Lstat(filepath.Join(f.root, e.Name(), "manifest")); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func (f *fileBackend) remove(_ context.Context, name string) error {
	dir := filepath.Join(f.root, name)
	if _, err := os.Lstat(filepath.Join(dir, "manifest")); err != nil {
		return mapFileErr(err)
	}
	old := filepath.Join(f.root, delPrefix+name+"-"+randHex(6))
	if err := os.Rename(dir, old); err != nil {
		return mapFileErr(err)
	}
	if err := syncDir(f.root); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// pruneStale removes staging and deleting directories older than
// DefaultStaleAge, certainly those of killed writers; each new write calls
// it first, and snap prune removes younger ones on request.
// It is best effort: a failure leaves them for the next write or snap prune.
func (f *fileBackend) pruneStale() {
	_, _ = f.prune(context.Background(), DefaultStaleAge)
}

func (f *fileBackend) prune(_ context.Context, olderThan time.Duration) ([]string, error) {
	ents, err := f.readRoot()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tmpPrefix) && !strings.HasPrefix(e.Name(), delPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < olderThan {
			continue
		}
		p := filepath.Join(f.root, e.Name())
		if err := os.RemoveAll(p); err != nil {
			return removed, err
		}
		removed = append(removed, "file://"+p)
	}
	return removed, nil
}
