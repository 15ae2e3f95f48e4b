package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// chunkDir is the directory of a file store's content-addressed chunks:
// ROOT/.chunks/ab/ab12...ef. Image names cannot start with '.'.
const chunkDir = ".chunks"

func (f *fileBackend) chunkRel(sum string) string {
	return filepath.Join(chunkDir, sum[:2], sum)
}

// chunkTimeSlack is zero: file times are set to the nanosecond.
func (f *fileBackend) chunkTimeSlack() time.Duration { return 0 }

func (f *fileBackend) chunkURI(sum string) string {
	return "file://" + filepath.Join(f.root, f.chunkRel(sum))
}

// putChunk refreshes an existing chunk's times (without following a
// link), or writes it into a private temporary file in its directory and
// renames it into place: a reader sees the whole chunk or none. Its
// writeback starts at once; durability comes at syncChunks, once for all
// chunks.
func (f *fileBackend) putChunk(_ context.Context, sum string, data []byte) (bool, error) {
	path := filepath.Join(f.root, f.chunkRel(sum))
	now := unix.NsecToTimespec(time.Now().UnixNano())
	err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{now, now}, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return false, fmt.Errorf("chunk %s: %w", f.chunkURI(sum), err)
	}
	dir := filepath.Dir(path)
	tmp := filepath.Join(dir, tmpPrefix+sum+"-"+randHex(6))
	var t *os.File
	// A sweep removes directories it empties: create again if it did so
	// between mkdir and create.
	for try := 0; try < 3; try++ {
		if err = mkdirPrivate(dir); err == nil {
			if t, err = createPrivate(tmp); !errors.Is(err, os.ErrNotExist) {
				break
			}
		}
	}
	if err != nil {
		return false, fmt.Errorf("chunk %s: %w", f.chunkURI(sum), err)
	}
	_, err = t.Write(data)
	if err == nil {
		// Start writing the chunk back now, while the save goes on, so
		// that the syncChunks of the commit finds little left to write.
		// A hint only: durability still comes from syncChunks.
		_ = unix.SyncFileRange(int(t.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		if os.Remove(dir) == nil { // only if empty: leave nothing behind
			os.Remove(filepath.Dir(dir))
		}
		return false, fmt.Errorf("chunk %s: %w", f.chunkURI(sum), err)
	}
	return false, nil
}

// syncChunks flushes the file system holding the chunks (syncfs): one call
// for every chunk file and directory entry written, where an fsync per
// chunk would cost one round trip to the disk each.
func (f *fileBackend) syncChunks(context.Context) error {
	d, err := os.Open(filepath.Join(f.root, chunkDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil // no chunk written
	}
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync chunks of %s: %w", f.storeURI(), err)
	}
	return nil
}

// chunkReader opens the store directory once for all the chunks a reader
// opens; chunks are then opened below it as every entry is (safeOpen), or
// read from the store's packs, whose indexes it reads at the first chunk
// that is not a file (so that an image of chunk files, a small program's,
// does not pay for the packs of the store's large images).
func (f *fileBackend) chunkReader(context.Context) (chunkOpener, error) {
	root, err := f.openRoot()
	if err != nil {
		return nil, err
	}
	return &fileChunks{f: f, root: root}, nil
}

type fileChunks struct {
	f    *fileBackend
	root *os.File

	// packs are the store's packs, read once (packsOnce) at the first
	// chunk not found as a file; loaded is set after.
	packsOnce sync.Once
	packs     *packSet
	packsErr  error
	loaded    atomic.Bool
}

func (c *fileChunks) chunk(_ context.Context, sum string) (blobReader, error) {
	d, err := hex.DecodeString(sum)
	if err != nil || len(d) != addrSize {
		return nil, fmt.Errorf("chunk address %q: %w", sum, ErrCorrupt)
	}
	if c.loaded.Load() {
		if loc, ok := c.packs.chunk[[addrSize]byte(d)]; ok {
			return &packChunk{root: c.root, loc: loc}, nil
		}
	}
	rel := c.f.chunkRel(sum)
	fd, size, err := safeOpenFD(int(c.root.Fd()), c.f.root, rel, false)
	if err == nil {
		return &chunkFile{fd: fd, n: size, dir: c.f.root, rel: rel}, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	c.packsOnce.Do(func() {
		c.packs, c.packsErr = c.f.loadPacks(c.root)
		c.loaded.Store(c.packsErr == nil)
	})
	if c.packsErr != nil {
		return nil, c.packsErr
	}
	if loc, ok := c.packs.chunk[[addrSize]byte(d)]; ok {
		return &packChunk{root: c.root, loc: loc}, nil
	}
	return nil, c.packs.missing(err)
}

func (c *fileChunks) close() error {
	if c.loaded.Load() {
		c.packs.close()
	}
	return c.root.Close()
}

// chunkFile is a chunk's file, opened by safeOpenFD and read with pread on
// its descriptor: a chunk is read once, whole, and closed.
type chunkFile struct {
	fd       int
	n        int64 // its size when opened
	dir, rel string
}

func (c *chunkFile) readAt(_ context.Context, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := unix.Pread(c.fd, p, off)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return &fs.PathError{Op: "read", Path: filepath.Join(c.dir, c.rel), Err: err}
		case n == 0:
			return fmt.Errorf("%s: %d bytes at %d, blob truncated: %w", filepath.Join(c.dir, c.rel), len(p), off, ErrCorrupt)
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

func (c *chunkFile) size(context.Context) (int64, error) { return c.n, nil }

func (c *chunkFile) close() error { return unix.Close(c.fd) }

// listChunks walks ROOT/.chunks; it also removes temporary files of
// killed writers older than a day, as other staging leftovers are.
func (f *fileBackend) listChunks(context.Context) ([]chunkInfo, error) {
	base := filepath.Join(f.root, chunkDir)
	dirs, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []chunkInfo
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(base, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			info, err := e.Info()
			if err != nil {
				continue // removed since listed
			}
			if strings.HasPrefix(e.Name(), tmpPrefix) && time.Since(info.ModTime()) > DefaultStaleAge {
				os.Remove(filepath.Join(base, d.Name(), e.Name()))
				continue
			}
			if validSum(e.Name()) && e.Name()[:2] == d.Name() {
				out = append(out, chunkInfo{sum: e.Name(), modTime: info.ModTime()})
			}
		}
	}
	return out, nil
}

func (f *fileBackend) removeChunk(_ context.Context, sum string, olderThan time.Duration) (bool, error) {
	path := filepath.Join(f.root, f.chunkRel(sum))
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil || time.Since(info.ModTime()) < olderThan {
		return false, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	// Remove the directories it leaves empty (a writer creates them
	// again if it needs them).
	if os.Remove(filepath.Dir(path)) == nil {
		os.Remove(filepath.Join(f.root, chunkDir))
	}
	return true, nil
}
