package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/storage"
)

// The restore cache keeps, in the state directory, a decompressed copy of
// the memory of each image restored lately (not lazily), in the
// format of a pool's base (pool_base.go: the saved memory file's bytes at
// their offsets, zero pages as holes):
//
//	<state-dir>/.restore-cache/base-<manifest SHA-256>
//	<state-dir>/.restore-cache/writes-<manifest SHA-256>
//
// The first restore of an image writes the copy as it loads the memory
// (every chunk checked against its address, not only by its CRC-32C), and
// renames it into place once the load has ended; a restore that finds it
// decompresses nothing: its memory is a copy-on-write view of the copy,
// as a pool member's is of its base (kernel.MemoryBase), and the host's
// page cache holds the copy's pages once for every such sandbox. The
// writes file records the chunks of the copy the first restore over it
// wrote in its first moments (ReplenishDelay) or until it ended; later
// restores copy them before the program runs (the first
// restoreCopyFirst, while the state decodes) and beside it (the rest),
// rather than one write fault each.
//
// A copy is named by its image's manifest, which binds the index and so
// every chunk's address: an image saved again, or altered, is another
// manifest and another copy. A restore from a copy reads the manifest,
// the index and the state blob as any restore does (a deleted image
// fails), and with --verify checks the signature but does not read the
// memory again (storage.OpenOptions.SignatureOnly). Copies are trusted as
// the state directory is. They are written once and never changed in
// place: a new one is made under a temporary name and renamed. A sandbox
// running over a copy keeps its descriptor, so removing the file (snap
// prune, eviction) never disturbs it.
//
// The cache holds at most RestoreCache.Max bytes of copies (their
// allocated blocks); making one removes the copies used least recently
// (by modification time, which a restore from a copy sets) until it fits,
// and an image whose memory alone is larger is not cached, nor one whose
// copy would leave less than a twentieth of the filesystem free (a
// quarter of a tmpfs: roomFor). A large image is copied at its second
// restore, not its first (cacheFirstUse).

// restoreCopyFirst is how many of the recorded chunks (2 MiB), the first
// written, a restore over a copy copies while the state decodes, before
// the program runs; the others are copied beside it. The copy runs beside
// the decoding here, and the cold-start CPython writes about 50 chunks
// before its answer (a pool's take copies takeCopyFirst).
const restoreCopyFirst = 32

// restoreCacheDir is the cache's directory in the state directory.
const restoreCacheDir = ".restore-cache"

// DefaultRestoreCacheMax is the restore cache's bound when none is given.
const DefaultRestoreCacheMax = 2 << 30

// RestoreCache is where a restore keeps and finds decompressed copies of
// images' memory (KernelOptions.Cache). The zero value caches nothing.
type RestoreCache struct {
	// Dir is the cache's directory (StateDir.RestoreCache).
	Dir string
	// Max bounds the bytes the copies hold on disk; 0 caches nothing.
	Max uint64
}

// RestoreCache returns the restore cache of the state directory, bounded
// to max bytes.
func (s StateDir) RestoreCache(max uint64) RestoreCache {
	return RestoreCache{Dir: filepath.Join(s.Root, restoreCacheDir), Max: max}
}

// cacheable reports whether a restore of the image with manifest m may
// use the cache: a content-addressed image (whose chunks can be checked
// against their addresses) with memory that fits.
func (c RestoreCache) cacheable(m *storage.Manifest) bool {
	d := m.Digest()
	return c.Dir != "" && c.Max > 0 && m.ContentAddressed && m.MemorySize > 0 &&
		m.MemoryData <= c.Max && d != "" && !strings.ContainsAny(d, "/.")
}

// cacheFirstUse is the most memory data an image may hold for its first
// restore on a host to make its copy. Writing a copy costs a restore
// about half again its load (the copy's pages and their writeback besides
// the memory file's, every chunk checked against its address), paid back
// from the next restore on: for a small image at once, while a large one
// is often restored once (moved to another host, say). A larger image's
// first restore only records that it was restored (a seenPrefix file);
// its second makes the copy.
const cacheFirstUse = 64 << 20

// seenPrefix names the files that record the first restore of an image
// too large to be copied then (cacheFirstUse).
const seenPrefix = "seen-"

// admit reports whether a restore of the image with manifest m, which
// finds no copy of its memory, makes one (cacheFirstUse); if not, it
// records this restore, best effort, for the next one.
func (c RestoreCache) admit(m *storage.Manifest) bool {
	if m.MemoryData <= cacheFirstUse {
		return true
	}
	seen := filepath.Join(c.Dir, seenPrefix+m.Digest())
	if _, err := os.Lstat(seen); err == nil {
		return true
	}
	if os.MkdirAll(c.Dir, 0o700) == nil {
		if f, err := os.OpenFile(seen, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			f.Close()
		}
	}
	return false
}

// basePath returns the path of the copy of the memory of the image whose
// manifest is m.
func (c RestoreCache) basePath(m *storage.Manifest) string {
	return filepath.Join(c.Dir, basePrefix+m.Digest())
}

// open returns the copy of m's memory, read-only, and marks it used now;
// an error wrapping fs.ErrNotExist if there is none.
func (c RestoreCache) open(m *storage.Manifest) (*os.File, error) {
	f, err := openBaseFile(c.basePath(m), m.MemorySize)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	os.Chtimes(f.Name(), now, now) // eviction goes by it; best effort
	return f, nil
}

// cacheFill writes a copy of an image's memory (the memory a restore
// loads, or a pool's base) under a temporary name until commit.
type cacheFill struct {
	path string
	tmp  *os.File
	// err is the first write error; accessed atomically. The copy is
	// dropped then, the restore goes on.
	err atomic.Pointer[error]
}

// startFill makes room for a copy of m's memory (evict) and starts it.
func (c RestoreCache) startFill(m *storage.Manifest) (*cacheFill, error) {
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("restore cache: %w", err)
	}
	c.evict(m.MemoryData)
	if err := roomFor(c.Dir, m.MemoryData); err != nil {
		return nil, fmt.Errorf("restore cache: %w", err)
	}
	f, err := newFill(c.Dir, c.basePath(m), m.MemorySize)
	if err != nil {
		return nil, fmt.Errorf("restore cache: %w", err)
	}
	return f, nil
}

// newFill starts a copy of size bytes of memory, to be path at commit, in
// a temporary file of dir.
func newFill(dir, path string, size uint64) (*cacheFill, error) {
	tmp, err := os.CreateTemp(dir, ".base-*.tmp")
	if err != nil {
		return nil, err
	}
	if err := tmp.Truncate(int64(size)); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, err
	}
	return &cacheFill{path: path, tmp: tmp}, nil
}

// roomFor returns an error unless the filesystem of dir would keep a
// twentieth of its size free after need more bytes, or a quarter if it
// is a tmpfs: the state directory often is one ($XDG_RUNTIME_DIR), whose
// pages are the host's memory.
func roomFor(dir string, need uint64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return err
	}
	avail, size := st.Bavail*uint64(st.Bsize), st.Blocks*uint64(st.Bsize)
	keep := size / 20
	if st.Type == unix.TMPFS_MAGIC {
		keep = size / 4
	}
	if avail < need || avail-need < keep {
		return fmt.Errorf("%s: %d bytes free of %d, not enough for a copy of %d bytes and %d bytes left free", dir, avail, size, need, keep)
	}
	return nil
}

// write writes runs into the copy and returns the first write error of
// the copy so far. Safe for concurrent use on disjoint runs
// (ReadMemoryRuns's workers).
func (f *cacheFill) write(runs []storage.PageRun) error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	for _, r := range runs {
		if _, err := f.tmp.WriteAt(r.Data, int64(r.Off)); err != nil {
			f.err.CompareAndSwap(nil, &err)
			return err
		}
	}
	return nil
}

// commit puts the copy in place, once the memory has loaded whole.
func (f *cacheFill) commit() error {
	err := f.tmp.Close()
	if p := f.err.Load(); p != nil {
		err = *p
	}
	if err == nil {
		err = os.Rename(f.tmp.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.tmp.Name())
	}
	return err
}

// abort drops the copy (the restore failed).
func (f *cacheFill) abort() {
	f.tmp.Close()
	os.Remove(f.tmp.Name())
}

// cacheEntry is one copy in the cache.
type cacheEntry struct {
	digest string
	bytes  uint64
	used   time.Time
}

// entries lists the copies in the cache.
func (c RestoreCache) entries() []cacheEntry {
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		return nil
	}
	var out []cacheEntry
	for _, ent := range ents {
		digest, ok := strings.CutPrefix(ent.Name(), basePrefix)
		if !ok {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(c.Dir, ent.Name()), &st); err != nil {
			continue
		}
		out = append(out, cacheEntry{digest: digest, bytes: uint64(st.Blocks) * 512,
			used: time.Unix(st.Mtim.Unix())})
	}
	return out
}

// evict removes the copies used least recently until need more bytes fit
// within c.Max.
func (c RestoreCache) evict(need uint64) {
	ents := c.entries()
	var total uint64
	for _, e := range ents {
		total += e.bytes
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].used.Before(ents[j].used) })
	for _, e := range ents {
		if total+need <= c.Max {
			return
		}
		c.remove(e.digest)
		total -= e.bytes
	}
}

// remove removes the copy named by digest and its writes file, and
// returns the paths removed.
func (c RestoreCache) remove(digest string) []string {
	var out []string
	for _, prefix := range []string{basePrefix, writesPrefix, seenPrefix} {
		p := filepath.Join(c.Dir, prefix+digest)
		if os.Remove(p) == nil {
			out = append(out, p)
		}
	}
	return out
}

// Prune removes the copies not used for olderThan, with their writes
// files, the records of first restores older than that, and what restores that died while writing one left behind
// (temporary files older than that), and returns the paths removed.
func (c RestoreCache) Prune(olderThan time.Duration) ([]string, error) {
	ents, err := os.ReadDir(c.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prune restore cache: %w", err)
	}
	cut := time.Now().Add(-olderThan)
	var out []string
	for _, ent := range ents {
		info, err := ent.Info()
		if err != nil || !info.ModTime().Before(cut) {
			continue
		}
		name := ent.Name()
		switch {
		case strings.HasPrefix(name, basePrefix):
			out = append(out, c.remove(name[len(basePrefix):])...)
		case strings.HasPrefix(name, seenPrefix):
			p := filepath.Join(c.Dir, name)
			if os.Remove(p) == nil {
				out = append(out, p)
			}
		case strings.HasPrefix(name, ".base-") || strings.HasPrefix(name, ".writes-"):
			p := filepath.Join(c.Dir, name)
			if os.Remove(p) == nil {
				out = append(out, p)
			}
		}
	}
	return out, nil
}
