package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Packs (format 1.4). A file store keeps the new chunks of a large write
// (one handed at least packMinBytes of memory) in one pack per writer
// rather than one file each: creating a file costs the file system an
// inode, and a 1 GiB save's thousand chunk files and their fan-out
// directories cost it more CPU than compressing their pages. A pack is two
// files below ROOT/.packs, named by a random ID (the chunks inside are
// still named and checked by their address; the pack's name only has to be
// unique):
//
//	ID.pack  "SNAPPACK" | major u16 | minor u16 | reserved u32 | payloads back to back
//	ID.idx   "SNAPPKI\n" | major u16 | minor u16 | count u32 | pack size u64 |
//	         count × (address [32] | offset u64 | length u32 | reserved u32) | SHA-256 of all before
//
// The index is written last, once the pack's data is durable, under a
// temporary name renamed into place: a pack exists for readers and other
// writers exactly when its index does. Chunks are found by their address,
// so an image's index does not say where a chunk lives: a reader opens it
// as a loose chunk file (.chunks/ab/SUM), and at its first chunk that is
// none reads the store's pack indexes and looks there first from then on. A writer that finds a chunk in a pack refreshes the
// pack index's time, as it would a loose chunk's. Store.Prune deletes a
// pack only when no published image references any of its chunks and its
// index is older than the age: a pack is kept whole while one of its
// chunks is in use. Small writes (an incremental save's few new chunks)
// keep loose chunks, which a prune reclaims one by one.
const (
	packDir = ".packs"
	// packHeaderLen is the length of a pack's header.
	packHeaderLen = 16
	// packEntryLen is the length of a pack index entry.
	packEntryLen = 48
	// packIdxHeaderLen is the length of a pack index's header.
	packIdxHeaderLen = 24
	// maxPackEntries bounds a pack index (1<<22 chunks: 4 TiB of memory).
	maxPackEntries = 1 << 22
	packMajor      = 1
	packMinor      = 0
)

// packMinBytes is the memory a writer must be handed before its new
// chunks go into a pack rather than into chunk files (a variable for
// tests).
var packMinBytes uint64 = 32 << 20

var (
	packMagic    = []byte("SNAPPACK")
	packIdxMagic = []byte("SNAPPKI\n")
)

// packEntry is one chunk of a pack: its address, where its payload starts
// in the pack file, and its length.
type packEntry struct {
	sum [addrSize]byte
	off uint64
	n   uint32
}

// marshalPackIndex encodes a pack's index (entries in offset order).
func marshalPackIndex(entries []packEntry, packSize uint64) []byte {
	out := make([]byte, packIdxHeaderLen+packEntryLen*len(entries), packIdxHeaderLen+packEntryLen*len(entries)+sha256.Size)
	copy(out, packIdxMagic)
	binary.LittleEndian.PutUint16(out[8:], packMajor)
	binary.LittleEndian.PutUint16(out[10:], packMinor)
	binary.LittleEndian.PutUint32(out[12:], uint32(len(entries)))
	binary.LittleEndian.PutUint64(out[16:], packSize)
	for i, e := range entries {
		r := out[packIdxHeaderLen+i*packEntryLen:]
		copy(r, e.sum[:])
		binary.LittleEndian.PutUint64(r[32:], e.off)
		binary.LittleEndian.PutUint32(r[40:], e.n)
	}
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// parsePackIndex decodes and checks a pack index: length, magic, version,
// checksum, then each entry inside the pack after its header, in
// increasing offset order without overlap, no longer than a chunk's
// largest payload.
func parsePackIndex(b []byte) ([]packEntry, uint64, error) {
	if len(b) < packIdxHeaderLen+sha256.Size || !bytes.Equal(b[:8], packIdxMagic) {
		return nil, 0, fmt.Errorf("not a pack index (%d bytes): %w", len(b), ErrCorrupt)
	}
	if major, minor := binary.LittleEndian.Uint16(b[8:]), binary.LittleEndian.Uint16(b[10:]); major != packMajor || minor > packMinor {
		return nil, 0, fmt.Errorf("pack index version %d.%d, this snap reads %d.0 to %d.%d: %w", major, minor, packMajor, packMajor, packMinor, ErrIncompatibleVersion)
	}
	count := binary.LittleEndian.Uint32(b[12:])
	if count > maxPackEntries || len(b) != packIdxHeaderLen+int(count)*packEntryLen+sha256.Size {
		return nil, 0, fmt.Errorf("pack index of %d entries is %d bytes: %w", count, len(b), ErrCorrupt)
	}
	body := b[:len(b)-sha256.Size]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], b[len(body):]) {
		return nil, 0, fmt.Errorf("pack index checksum mismatch: %w", ErrCorrupt)
	}
	size := binary.LittleEndian.Uint64(b[16:])
	entries := make([]packEntry, count)
	next := uint64(packHeaderLen)
	for i := range entries {
		r := b[packIdxHeaderLen+i*packEntryLen:]
		e := &entries[i]
		copy(e.sum[:], r)
		e.off = binary.LittleEndian.Uint64(r[32:])
		e.n = binary.LittleEndian.Uint32(r[40:])
		if e.off < next || e.n == 0 || e.n > ChunkSpan || e.off+uint64(e.n) > size {
			return nil, 0, fmt.Errorf("pack index entry %d [%d+%d] out of order or outside the pack of %d bytes: %w", i, e.off, e.n, size, ErrCorrupt)
		}
		next = e.off + uint64(e.n)
	}
	return entries, size, nil
}

// validPackID accepts a pack ID: 32 lowercase hex digits.
func validPackID(s string) bool {
	return len(s) == 32 && validSum(s+s)
}

func (f *fileBackend) packURI(id, ext string) string {
	return "file://" + filepath.Join(f.root, packDir, id+ext)
}

// packLoc is where a chunk lives in a pack.
type packLoc struct {
	pack *packFile
	off  uint64
	n    uint32
}

// packFile is one pack of a packSet, its data file opened at first use.
type packFile struct {
	f    *fileBackend
	id   string
	size uint64 // from its index

	once sync.Once
	file *os.File
	err  error
}

// open opens the pack's data file below root and checks its header and
// that it holds every byte its index names.
func (p *packFile) open(root *os.File) (*os.File, error) {
	p.once.Do(func() {
		fl, err := safeOpen(int(root.Fd()), p.f.root, filepath.Join(packDir, p.id+".pack"), false)
		if err != nil {
			p.err = err
			return
		}
		var hdr [packHeaderLen]byte
		var st unix.Stat_t
		if _, err := fl.ReadAt(hdr[:], 0); err != nil || !bytes.Equal(hdr[:8], packMagic) {
			p.err = fmt.Errorf("%s: not a pack: %w", p.f.packURI(p.id, ".pack"), ErrCorrupt)
		} else if major, minor := binary.LittleEndian.Uint16(hdr[8:]), binary.LittleEndian.Uint16(hdr[10:]); major != packMajor || minor > packMinor {
			p.err = fmt.Errorf("%s: pack version %d.%d: %w", p.f.packURI(p.id, ".pack"), major, minor, ErrIncompatibleVersion)
		} else if err := unix.Fstat(int(fl.Fd()), &st); err != nil {
			p.err = err
		} else if uint64(st.Size) < p.size {
			p.err = fmt.Errorf("%s: %d bytes, its index names %d: pack truncated: %w", p.f.packURI(p.id, ".pack"), st.Size, p.size, ErrCorrupt)
		}
		if p.err != nil {
			fl.Close()
			return
		}
		p.file = fl
	})
	return p.file, p.err
}

// packSet is the packs of a store as their indexes were when it was
// loaded: where each chunk in them lives.
type packSet struct {
	packs []*packFile
	chunk map[[addrSize]byte]packLoc
	// bad names the pack indexes that could not be read (their chunks
	// cannot be found).
	bad []string
}

// loadPacks reads every pack index of the store below root. A damaged
// index is recorded in bad, not fatal: only the chunks it holds are
// missing, and a read of one of them names it.
func (f *fileBackend) loadPacks(root *os.File) (*packSet, error) {
	set := &packSet{chunk: make(map[[addrSize]byte]packLoc)}
	d, err := safeOpen(int(root.Fd()), f.root, packDir, true)
	if errors.Is(err, ErrNotFound) {
		return set, nil
	}
	if err != nil {
		return nil, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", f.packURI("", ""), err)
	}
	sort.Strings(names)
	for _, n := range names {
		id, ok := strings.CutSuffix(n, ".idx")
		if !ok || !validPackID(id) {
			continue
		}
		entries, size, err := f.readPackIndex(root, id)
		if err != nil {
			set.bad = append(set.bad, err.Error())
			continue
		}
		p := &packFile{f: f, id: id, size: size}
		set.packs = append(set.packs, p)
		for _, e := range entries {
			set.chunk[e.sum] = packLoc{pack: p, off: e.off, n: e.n}
		}
	}
	return set, nil
}

// readPackIndex reads and checks pack index id.
func (f *fileBackend) readPackIndex(root *os.File, id string) ([]packEntry, uint64, error) {
	fl, err := safeOpen(int(root.Fd()), f.root, filepath.Join(packDir, id+".idx"), false)
	if err != nil {
		return nil, 0, err
	}
	defer fl.Close()
	b, err := io.ReadAll(io.LimitReader(fl, packIdxHeaderLen+maxPackEntries*packEntryLen+sha256.Size+1))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", f.packURI(id, ".idx"), err)
	}
	entries, size, err := parsePackIndex(b)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", f.packURI(id, ".idx"), err)
	}
	return entries, size, nil
}

// close closes the pack files opened.
func (s *packSet) close() {
	for _, p := range s.packs {
		if p.file != nil {
			p.file.Close()
		}
	}
}

// missing is the error of a chunk found neither in a pack nor as a file:
// ErrNotFound, or ErrCorrupt naming the pack indexes that could not be
// read, one of which may have held it.
func (s *packSet) missing(err error) error {
	if len(s.bad) == 0 {
		return err
	}
	return fmt.Errorf("%v; pack indexes that cannot be read: %s: %w", err, strings.Join(s.bad, "; "), ErrCorrupt)
}

// packChunk reads one chunk in a pack: exactly its n bytes.
type packChunk struct {
	root *os.File
	loc  packLoc
}

func (c *packChunk) readAt(_ context.Context, p []byte, off int64) error {
	uri := c.loc.pack.f.packURI(c.loc.pack.id, ".pack")
	if off < 0 || off+int64(len(p)) > int64(c.loc.n) {
		return fmt.Errorf("%s: %d bytes at %d of a chunk of %d at %d: %w", uri, len(p), off, c.loc.n, c.loc.off, ErrCorrupt)
	}
	fl, err := c.loc.pack.open(c.root)
	if err != nil {
		return err
	}
	if n, err := fl.ReadAt(p, int64(c.loc.off)+off); n != len(p) {
		if err == nil || err == io.EOF {
			return fmt.Errorf("%s: %d bytes at %d, pack truncated: %w", uri, len(p), int64(c.loc.off)+off, ErrCorrupt)
		}
		return err
	}
	return nil
}

func (c *packChunk) size(context.Context) (int64, error) { return int64(c.loc.n), nil }

// uri names the chunk in messages: its pack, where it starts there and
// its length.
func (c *packChunk) uri() string {
	return fmt.Sprintf("%s@%d+%d", c.loc.pack.f.packURI(c.loc.pack.id, ".pack"), c.loc.off, c.loc.n)
}

func (c *packChunk) close() error { return nil }

// filePacker stores one writer's new chunks in one pack of a file store,
// and finds the chunks the store has already, in its packs (as they were
// when the writer started) or as chunk files. Its methods are safe for
// concurrent use by the writer's workers.
type filePacker struct {
	f     *fileBackend
	root  *os.File
	known *packSet
	// loose is set when the store has a chunk directory, whose files are
	// looked up too.
	loose bool
	// looseFound is set once a chunk was found as a chunk file, which the
	// writer that stored it may not have synced yet. Accessed atomically.
	looseFound atomic.Bool

	// mu protects the fields below.
	mu sync.Mutex
	// refreshed holds the packs whose times this writer refreshed (nil
	// value: the pack's index is gone, so its chunks are not used).
	refreshed map[*packFile]bool
	id        string
	file      *os.File
	size      uint64
	entries   []packEntry
	mine      map[[addrSize]byte]bool
	// madeDir is set if the writer made the store's pack directory,
	// whose entry in the store directory finish then syncs too.
	madeDir bool
	// kicked is where the writeback started so far ends: every
	// writebackStep bytes written, one sync_file_range starts the next
	// step's (a call per chunk cost more CPU, each a separate submission).
	kicked uint64
	// published is when the pack's index was renamed into place (zero
	// before).
	published time.Time
}

// newPacker starts a writer's pack, reading the store's pack indexes.
func (f *fileBackend) newPacker() (*filePacker, error) {
	if err := mkdirPrivate(f.root); err != nil {
		return nil, err
	}
	root, err := f.openRoot()
	if err != nil {
		return nil, err
	}
	known, err := f.loadPacks(root)
	if err != nil {
		root.Close()
		return nil, err
	}
	_, err = os.Lstat(filepath.Join(f.root, chunkDir))
	return &filePacker{f: f, root: root, known: known, loose: err == nil,
		refreshed: make(map[*packFile]bool), mine: make(map[[addrSize]byte]bool)}, nil
}

// has reports whether the store has chunk sum: in a pack (whose index's
// times it then refreshes, once per writer), among this writer's own, or
// as a chunk file (whose times it refreshes).
func (p *filePacker) has(sum [addrSize]byte) (bool, error) {
	if loc, ok := p.known.chunk[sum]; ok {
		p.mu.Lock()
		live, done := p.refreshed[loc.pack]
		if !done {
			live = p.f.touch(filepath.Join(packDir, loc.pack.id+".idx")) == nil
			p.refreshed[loc.pack] = live
		}
		p.mu.Unlock()
		if live {
			return true, nil
		}
	}
	p.mu.Lock()
	mine := p.mine[sum]
	p.mu.Unlock()
	if mine {
		return true, nil
	}
	if p.loose {
		err := p.f.touch(p.f.chunkRel(hex.EncodeToString(sum[:])))
		if err == nil {
			p.looseFound.Store(true)
			return true, nil
		}
		if !errors.Is(err, unix.ENOENT) {
			return false, fmt.Errorf("chunk %s: %w", p.f.chunkURI(hex.EncodeToString(sum[:])), err)
		}
	}
	return false, nil
}

// touch sets the times of the store's entry rel to now, without following
// a link.
func (f *fileBackend) touch(rel string) error {
	now := unix.NsecToTimespec(time.Now().UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(f.root, rel), []unix.Timespec{now, now}, unix.AT_SYMLINK_NOFOLLOW)
}

// put stores chunk sum in the pack unless the store has it, and reports
// whether it had. The payload is written at an offset reserved under the
// lock, outside it; the writeback of what was written is started in steps
// of writebackStep.
func (p *filePacker) put(sum [addrSize]byte, data []byte) (bool, error) {
	if ok, err := p.has(sum); ok || err != nil {
		return ok, err
	}
	p.mu.Lock()
	if p.mine[sum] {
		p.mu.Unlock()
		return true, nil
	}
	if p.file == nil {
		if err := p.create(); err != nil {
			p.mu.Unlock()
			return false, err
		}
	}
	off := p.size
	p.size += uint64(len(data))
	p.entries = append(p.entries, packEntry{sum: sum, off: off, n: uint32(len(data))})
	p.mine[sum] = true
	fd := int(p.file.Fd())
	p.mu.Unlock()
	for n := 0; n < len(data); {
		m, err := unix.Pwrite(fd, data[n:], int64(off)+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("write %s: %w", p.f.packURI(p.id, ".pack"), err)
		}
		n += m
	}
	end := off + uint64(len(data))
	p.mu.Lock()
	from := p.kicked
	kick := end >= from+writebackStep
	if kick {
		p.kicked = end
	}
	p.mu.Unlock()
	if kick {
		// A hint only: durability comes from finish's fdatasync, which
		// also writes what a payload still being written here missed.
		_ = unix.SyncFileRange(fd, int64(from), int64(end-from), unix.SYNC_FILE_RANGE_WRITE)
	}
	return false, nil
}

// create makes the pack's data file and writes its header.
//
// Preconditions: p.mu is held.
func (p *filePacker) create() error {
	dir := filepath.Join(p.f.root, packDir)
	if _, err := os.Lstat(dir); err != nil {
		p.madeDir = true
	}
	id := randHex(16)
	var fl *os.File
	var err error
	// A failed writer removes the directory it made if it is empty: create
	// again if one did so between mkdir and create.
	for try := 0; try < 3; try++ {
		if err = mkdirPrivate(dir); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if fl, err = createPrivate(filepath.Join(dir, id+".pack")); !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create pack: %w", err)
	}
	var hdr [packHeaderLen]byte
	copy(hdr[:], packMagic)
	binary.LittleEndian.PutUint16(hdr[8:], packMajor)
	binary.LittleEndian.PutUint16(hdr[10:], packMinor)
	if _, err := fl.WriteAt(hdr[:], 0); err != nil {
		fl.Close()
		os.Remove(fl.Name())
		return fmt.Errorf("write %s: %w", p.f.packURI(id, ".pack"), err)
	}
	p.id, p.file, p.size = id, fl, packHeaderLen
	return nil
}

// finish makes the pack durable and publishes it: the data file is
// fdatasync'ed, the index written under a temporary name, fsync'ed and
// renamed into place, and the directory fsync'ed. A writer that stored
// nothing in a pack does nothing. Called once every put has returned.
func (p *filePacker) finish() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.file == nil {
		return nil
	}
	uri := p.f.packURI(p.id, ".pack")
	if err := unix.Fdatasync(int(p.file.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", uri, err)
	}
	sort.Slice(p.entries, func(i, j int) bool { return p.entries[i].off < p.entries[j].off })
	idx := marshalPackIndex(p.entries, p.size)
	dir := filepath.Join(p.f.root, packDir)
	tmp := filepath.Join(dir, tmpPrefix+p.id+".idx")
	fl, err := createPrivate(tmp)
	if err != nil {
		return fmt.Errorf("create index of %s: %w", uri, err)
	}
	err = writeSynced(fl, idx)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, p.id+".idx"))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write index of %s: %w", uri, err)
	}
	p.published = time.Now()
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write index of %s: %w", uri, err)
	}
	if p.madeDir {
		return syncDir(p.f.root)
	}
	return nil
}

// close releases the packer's files; with remove (a failed write), it
// deletes its pack first, unless another writer refreshed the published
// index since (that writer may reference its chunks; Prune removes it
// later otherwise).
func (p *filePacker) close(remove bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.known.close()
	p.root.Close()
	dir := filepath.Join(p.f.root, packDir)
	if remove && p.madeDir {
		// Leave nothing behind: the directory this writer made goes too,
		// if it is empty once the pack is removed (another writer's files
		// keep it).
		defer os.Remove(dir)
	}
	if p.file == nil {
		return
	}
	p.file.Close()
	if remove {
		idx := filepath.Join(dir, p.id+".idx")
		if !p.published.IsZero() {
			if fi, err := os.Lstat(idx); err != nil || fi.ModTime().After(p.published) {
				return
			}
			os.Remove(idx)
		}
		os.Remove(filepath.Join(dir, p.id+".pack"))
	}
	p.file = nil
}

// sweepPacks deletes the packs none of whose chunks is in refs and whose
// index is older than olderThan (checked again just before deleting), the
// index first; and data files without an index (of killed writers) and
// temporary indexes older than olderThan. A pack index that cannot be read
// is left alone: its chunks may be referenced.
func (f *fileBackend) sweepPacks(refs map[[addrSize]byte]bool, olderThan time.Duration) ([]string, error) {
	root, err := f.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	dir := filepath.Join(f.root, packDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	indexed := make(map[string]bool)
	var removed []string
	old := func(name string) bool {
		fi, err := os.Lstat(filepath.Join(dir, name))
		return err == nil && time.Since(fi.ModTime()) >= olderThan
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".idx")
		if !ok || !validPackID(id) {
			continue
		}
		indexed[id] = true
		entries, _, err := f.readPackIndex(root, id)
		if err != nil || !old(e.Name()) || slices.ContainsFunc(entries, func(e packEntry) bool { return refs[e.sum] }) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		if err := os.Remove(filepath.Join(dir, id+".pack")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, f.packURI(id, ".pack"))
	}
	for _, e := range ents {
		name := e.Name()
		id, isPack := strings.CutSuffix(name, ".pack")
		stale := isPack && validPackID(id) && !indexed[id] || strings.HasPrefix(name, tmpPrefix)
		if !stale || !old(name) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, "file://"+filepath.Join(dir, name))
	}
	return removed, nil
}
