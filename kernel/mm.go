package kernel

import (
	"fmt"
	"slices"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
	"snapshotter/platform"
)

// perms is a set of memory access permissions (PROT_READ, PROT_WRITE,
// PROT_EXEC in their Linux bit positions).
type perms uint8

const (
	permRead  perms = unix.PROT_READ
	permWrite perms = unix.PROT_WRITE
	permExec  perms = unix.PROT_EXEC
	permAll         = permRead | permWrite | permExec
)

func (p perms) access() platform.AccessType {
	return platform.AccessType{Read: p&permRead != 0, Write: p&permWrite != 0, Execute: p&permExec != 0}
}

// allows reports whether every permission in want is in p.
func (p perms) allows(want perms) bool { return p&want == want }

// String returns the permissions as "rwx" with dashes.
func (p perms) String() string { return p.access().String() }

// vma is one mapping: a page-aligned range of application addresses backed
// by the memory file range starting at Off. A vma is one owner of its
// memory file range: the only one, or one of those counted by
// MemoryFile.shared (memory shared by fork: MAP_SHARED, or private and
// COW), unless it maps cached file pages (mapsCache), which belong to the
// file cache; unmapping gives back what the vma holds (releaseVMALocked).
//
// +stateify savable
type vma struct {
	Start, End uint64
	// Off is the memory file offset that backs Start.
	Off uint64
	// Perms are the current permissions, MaxPerms the most mprotect may
	// grant (a shared mapping of a file opened read-only is never
	// writable).
	Perms, MaxPerms perms
	// Private is false for MAP_SHARED mappings.
	Private bool
	// Name is what /proc/PID/maps would show: "[heap]", "[stack]", a file
	// path, or empty for anonymous memory.
	Name string
	// Special marks the vDSO and its parameter page ("[vdso]", "[vvar]"):
	// the pages belong to the kernel, which maps the same ones into every
	// address space. Unmapping does not free them, fork does not copy
	// them, madvise leaves them alone and they cannot grow.
	Special bool
	// File, if not nil, is the cached host file whose bytes [FileOff,
	// FileOff+length) the vma maps. The vma holds one count on each of
	// those pages (cachedFile.Refs) for as long as it exists, also once it
	// has a private copy of them, so that MADV_DONTNEED can map the file's
	// pages again.
	File *cachedFile
	// FileOff is the file offset that Start maps (/proc/PID/maps shows it).
	FileOff uint64
	// COW is set while the vma maps pages it shares: the file cache's
	// pages themselves (Off == File.Base+FileOff, mapsCache), or private
	// pages shared with the other side of a fork. The platform maps them
	// without write permission, and the first write copies them into a
	// range the vma owns (mm_cow.go). A vma without COW owns [Off,
	// Off+length).
	COW bool
	// Shm, if not nil, is the tmpfs file or memfd whose own pages a shared
	// mapping maps: [Off, Off+length) are the pages that hold the file's
	// bytes [FileOff, FileOff+length), of which the vma is one more owner
	// (MemoryFile.Share), as of anonymous shared memory.
	Shm vfs.SharedFile
	// Beyond marks pages of a shared mapping (Shm) past the end of its
	// file: nothing backs them (Off means nothing), the platform does not
	// map them, and a touch raises SIGBUS, as on Linux, unless the file
	// has grown over them since (faultBeyondLocked then maps its pages).
	Beyond bool
}

// mapsCache reports whether v maps its file's cached pages themselves.
func (v *vma) mapsCache() bool { return v.File != nil && v.Off == v.File.Base+v.FileOff }

func (v *vma) length() uint64 { return v.End - v.Start }

func (v *vma) fileRange() fileRange { return fileRange{v.Off, v.Off + v.length()} }

// canMerge reports whether b directly follows a and both can be one vma.
func canMerge(a, b *vma) bool {
	return a.End == b.Start && (a.Off+a.length() == b.Off || a.Beyond && b.Beyond) && a.Perms == b.Perms &&
		a.MaxPerms == b.MaxPerms && a.Private == b.Private && a.Name == b.Name && a.Special == b.Special &&
		a.File == b.File && a.COW == b.COW && (a.File == nil || a.FileOff+a.length() == b.FileOff) &&
		a.Shm == b.Shm && (a.Shm == nil || a.FileOff+a.length() == b.FileOff) && a.Beyond == b.Beyond
}

// Address space layout. Addresses are chosen like Linux does without
// randomization, so that runs are reproducible: the stack ends near the top
// of the user range, mmap allocates top-down below it, a static-PIE binary
// is loaded at pieLoadBase and the heap follows the binary.
const (
	maxStackTop  = 0x7ffffffff000
	stackSize    = 8 << 20
	mmapStackGap = 128 << 20
	pieLoadBase  = 0x555555554000
)

// MM is an application address space: the vmas, the program break and the
// platform address space that mirrors them. Each vma is mapped into the
// platform address space in full when it is created (without populating
// it), so that the host kernel serves first touches natively; a fault that
// reaches the sentry is therefore a genuine one (no vma, or a permission
// the vma does not grant) and becomes SIGSEGV.
//
// +stateify savable
type MM struct {
	mf *MemoryFile

	// as is the platform address space. It is a host object: a restore
	// asks the new platform for a fresh one and maps every vma again.
	as platform.AddressSpace `state:"nosave"`

	// mu protects everything below. Task goroutines of the same process
	// take it for reading to copy memory and for writing to change
	// mappings.
	mu sync.RWMutex `state:"nosave"`

	// vmas are sorted by Start and do not overlap. Protected by mu.
	vmas []vma

	// minAddr and maxAddr bound mappable addresses: [minAddr, maxAddr).
	// Immutable.
	minAddr, maxAddr uint64
	// mmapTop is the highest address a top-down mmap search starts from.
	// Immutable.
	mmapTop uint64
	// stackTop is the end of the initial stack. Immutable.
	stackTop uint64
	// args is where the initial stack holds the argument and environment
	// strings (/proc/PID/cmdline). Set by setupStack before the MM is in
	// use, immutable after.
	args argArea

	// brkStart is where the heap begins, brk the current program break
	// (not page aligned). The heap vma covers [brkStart, pageRoundUp(brk)).
	// Protected by mu.
	brkStart, brk uint64

	// gen counts changes of the platform mappings (mapIntoLocked), so that
	// a task can tell a fault that repeats after a fix from one that
	// repeats after something else changed. Protected by mu.
	gen uint64

	// users counts the processes using the address space: 1, plus the
	// vfork children that share it until they exec or exit. Release drops
	// one; the last frees everything. (0, as in an image from before the
	// count existed, counts as 1.) Protected by mu.
	users int32

	// baseFresh has a bit per chunk of a restore over a base
	// (memory_base.go) that every vma of this address space maps from the
	// memory file, copied. Host state, as the load is. Protected by mu.
	baseFresh []uint64 `state:"nosave"`
}

// NewMM returns an empty address space over mf mapped through as, whose
// mappable addresses are [minAddr, maxAddr).
func NewMM(mf *MemoryFile, as platform.AddressSpace, minAddr, maxAddr uint64) (*MM, error) {
	minAddr, _ = pageRoundUp(max(minAddr, 0x10000))
	maxAddr = pageRoundDown(maxAddr)
	top := min(maxAddr, maxStackTop)
	if top < minAddr+stackSize+2*mmapStackGap {
		return nil, fmt.Errorf("user address range [%#x, %#x) too small: %w", minAddr, maxAddr, ErrNoMemory)
	}
	return &MM{
		mf:       mf,
		as:       as,
		minAddr:  minAddr,
		maxAddr:  maxAddr,
		stackTop: top,
		mmapTop:  top - stackSize - mmapStackGap,
		users:    1,
	}, nil
}

// addUser records one more process using the address space (a vfork
// child); it drops its use with Release.
func (mm *MM) addUser() {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	mm.users = max(mm.users, 1) + 1
}

// Release drops one user of the address space. The last one unmaps and
// frees everything and releases the platform address space.
func (mm *MM) Release() {
	if free := mm.release(); free != nil {
		free()
	}
}

// release is Release, except that the last user's memory is given back
// only when the caller calls the function it returns (nil if there is
// nothing to give back): an exiting process gives it back after its parent
// is told, which need not wait for it. Meanwhile the memory file counts it
// as being freed (Allocated and an allocation over the limit wait for it).
func (mm *MM) release() func() {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if mm.users > 1 {
		mm.users--
		return nil
	}
	mm.users = 0
	// The address space goes first: punching holes in pages a stub still
	// maps makes the host unmap them from it page by page (1.3-2.2 ms at
	// every exit against 0.7 ms this way round, perf trace, load 5-6).
	if mm.as != nil {
		mm.as.Release()
		mm.as = nil
	}
	// Everything is given back in one batch: neighbouring ranges are
	// decommitted together.
	toFree := mm.mf.files.releaseVMAs(mm.mf, mm.vmas)
	for i := range mm.vmas {
		if v := &mm.vmas[i]; !v.mapsCache() && !v.Special && !v.Beyond {
			mm.mf.releaseRangeDeferred(v.fileRange(), &toFree)
		}
	}
	mm.vmas = nil
	if len(toFree) == 0 {
		return nil
	}
	mf := mm.mf
	mf.startFreeing()
	return func() { mf.doneFreeing(toFree) }
}

// renewAddressSpace returns a platform address space that takes over the
// host resources of mm's when mm is released (platform.Renewer), or nil if
// the platform cannot, or another process uses mm too (a vfork parent).
func (mm *MM) renewAddressSpace() platform.AddressSpace {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	r, ok := mm.as.(platform.Renewer)
	if !ok || mm.users > 1 {
		return nil
	}
	as, err := r.Renew()
	if err != nil {
		return nil
	}
	return as
}

// findLocked returns the index of the first vma with End > addr (len(vmas)
// if none).
//
// Preconditions: mm.mu is held.
func (mm *MM) findLocked(addr uint64) int {
	return sort.Search(len(mm.vmas), func(i int) bool { return mm.vmas[i].End > addr })
}

// vmaAtLocked returns the vma that contains addr, or nil.
//
// Preconditions: mm.mu is held.
func (mm *MM) vmaAtLocked(addr uint64) *vma {
	i := mm.findLocked(addr)
	if i < len(mm.vmas) && mm.vmas[i].Start <= addr {
		return &mm.vmas[i]
	}
	return nil
}

// splitLocked makes addr a vma boundary if a vma contains it.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) splitLocked(addr uint64) {
	i := mm.findLocked(addr)
	if i == len(mm.vmas) || mm.vmas[i].Start >= addr {
		return
	}
	v := mm.vmas[i]
	lo, hi := v, v
	lo.End = addr
	hi.Start = addr
	hi.Off = v.Off + (addr - v.Start)
	if v.File != nil || v.Shm != nil {
		hi.FileOff = v.FileOff + (addr - v.Start)
	}
	mm.vmas = append(mm.vmas, vma{})
	copy(mm.vmas[i+2:], mm.vmas[i+1:])
	mm.vmas[i], mm.vmas[i+1] = lo, hi
}

// isolateLocked splits vmas so that [start, end) is a union of whole vmas
// and returns the index range [i, j) of the vmas inside it.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) isolateLocked(start, end uint64) (int, int) {
	mm.splitLocked(start)
	mm.splitLocked(end)
	i := mm.findLocked(start)
	j := i
	for j < len(mm.vmas) && mm.vmas[j].Start < end {
		j++
	}
	return i, j
}

// coalesceLocked merges mergeable neighbours among vmas[lo-1 .. hi].
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) coalesceLocked(lo, hi int) {
	lo = max(lo-1, 0)
	hi = min(hi, len(mm.vmas)-1)
	for k := lo; k < hi && k+1 < len(mm.vmas); {
		if canMerge(&mm.vmas[k], &mm.vmas[k+1]) {
			mm.vmas[k].End = mm.vmas[k+1].End
			mm.vmas = append(mm.vmas[:k+1], mm.vmas[k+2:]...)
			hi--
			continue
		}
		k++
	}
}

// isFreeLocked reports whether [start, end) overlaps no vma and lies within
// the mappable range.
//
// Preconditions: mm.mu is held.
func (mm *MM) isFreeLocked(start, end uint64) bool {
	if start < mm.minAddr || end > mm.maxAddr || end <= start {
		return false
	}
	i := mm.findLocked(start)
	return i == len(mm.vmas) || mm.vmas[i].Start >= end
}

// findGapLocked returns the highest page-aligned address below mmapTop
// where length bytes fit, or ENOMEM.
//
// Preconditions: mm.mu is held.
func (mm *MM) findGapLocked(length uint64) (uint64, error) {
	top := mm.mmapTop
	for i := len(mm.vmas) - 1; i >= -1; i-- {
		lo := mm.minAddr
		if i >= 0 {
			lo = max(lo, mm.vmas[i].End)
		}
		hi := top
		if i+1 < len(mm.vmas) {
			hi = min(hi, mm.vmas[i+1].Start)
		}
		if hi > lo && hi-lo >= length {
			return hi - length, nil
		}
		if i >= 0 && mm.vmas[i].Start < top {
			top = mm.vmas[i].Start
		}
	}
	// Nothing below mmapTop: try above it (between the stack gap and the
	// end of the user range) before giving up.
	for i := 0; i <= len(mm.vmas); i++ {
		lo := mm.mmapTop
		if i > 0 {
			lo = max(lo, mm.vmas[i-1].End)
		}
		hi := mm.maxAddr
		if i < len(mm.vmas) {
			hi = min(hi, mm.vmas[i].Start)
		}
		if hi > lo && hi-lo >= length {
			return lo, nil
		}
	}
	return 0, unix.ENOMEM
}

// insertLocked adds v, which overlaps nothing, maps it into the platform
// address space and merges it with its neighbours.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) insertLocked(v vma, precommit bool) error {
	if err := mm.mapIntoLocked(&v, precommit); err != nil {
		return err
	}
	i := mm.findLocked(v.Start)
	mm.vmas = append(mm.vmas, vma{})
	copy(mm.vmas[i+1:], mm.vmas[i:])
	mm.vmas[i] = v
	mm.coalesceLocked(i, i+1)
	return nil
}

// mapIntoLocked (re)maps v into the platform address space with its
// current permissions. Inaccessible vmas are unmapped instead: any touch
// faults, and the fault is checked against the vma.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) mapIntoLocked(v *vma, precommit bool) error {
	if mm.as == nil {
		return nil
	}
	mm.gen++
	var err error
	if v.Perms == 0 || v.Beyond {
		err = mm.as.Unmap(v.Start, v.length())
	} else {
		at := v.Perms.access()
		if v.COW {
			at.Write = false // the first write copies (HandleFault)
		}
		if mm.mf.dirty.on.Load() {
			at.Write = false // the first write is recorded (HandleFault)
		}
		if l := mm.mf.lazyLoader(); l != nil {
			err = mm.mapLazyLocked(l, v, at, precommit, true)
		} else {
			err = mm.as.MapFile(v.Start, v.Off, v.length(), at, precommit)
		}
	}
	if err != nil {
		return fmt.Errorf("map [%#x, %#x) %v into address space: %w: %w", v.Start, v.End, v.Perms, ErrAddressSpace, err)
	}
	return nil
}

// unmapLocked removes every mapping in [start, end) and frees its memory.
//
// Preconditions: mm.mu is held for writing; start and end are page aligned.
func (mm *MM) unmapLocked(start, end uint64) error {
	i, j := mm.isolateLocked(start, end)
	if i == j {
		return nil
	}
	// What the vmas hold is given back once the platform no longer maps
	// it: freed pages still mapped would read as zero to the process's
	// other threads meanwhile, or as another process's memory once
	// reallocated (see privatizeLocked), and punching out pages a stub
	// maps makes the host unmap them one by one. If the platform cannot
	// unmap the range (a host munmap that would split a mapping fails
	// with ENOMEM at the host's limit on mappings, vm.max_map_count,
	// which the program can reach), the range stays mapped there, so
	// its vmas stay too, with their memory, as Linux keeps a mapping
	// whose munmap failed.
	if mm.as != nil {
		if err := mm.as.Unmap(start, end-start); err != nil {
			mm.coalesceLocked(i, j)
			return fmt.Errorf("unmap [%#x, %#x): %w: %w", start, end, ErrAddressSpace, err)
		}
	}
	gone := slices.Clone(mm.vmas[i:j])
	mm.vmas = append(mm.vmas[:i], mm.vmas[j:]...)
	for k := range gone {
		mm.releaseVMALocked(&gone[k])
	}
	return nil
}

// VMAInfo describes one mapping, for diagnostics and tests.
type VMAInfo struct {
	Start, End uint64
	Perms      string
	Private    bool
	Name       string
	// Offset, DevMajor, DevMinor and Ino are the file offset of Start and
	// the file's device and inode, for a mapping of a cached host file or
	// a shared mapping of a tmpfs file or memfd; zero otherwise.
	Offset             uint64
	DevMajor, DevMinor uint32
	Ino                uint64
}

// Mappings returns the current mappings in address order. Neighbouring
// vmas that differ only in how they are backed (pages copied on write, or
// anonymous memory from two mmaps) are one mapping, as on Linux.
func (mm *MM) Mappings() []VMAInfo {
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	out := make([]VMAInfo, 0, len(mm.vmas))
	for i := range mm.vmas {
		v := &mm.vmas[i]
		if n := len(out); n > 0 && i > 0 && sameMapping(&mm.vmas[i-1], v) {
			out[n-1].End = v.End
			continue
		}
		m := VMAInfo{Start: v.Start, End: v.End, Perms: v.Perms.String(), Private: v.Private, Name: v.Name}
		if v.File != nil {
			m.Offset, m.DevMajor, m.DevMinor, m.Ino = v.FileOff, v.File.Key.DevMajor, v.File.Key.DevMinor, v.File.Key.Ino
		}
		if v.Shm != nil {
			m.Offset = v.FileOff
			m.DevMinor, m.Ino = v.Shm.MapIdent()
		}
		out = append(out, m)
	}
	return out
}

// sameMapping reports whether b continues a as one mapping would on Linux:
// the same attributes, and the next pages of the same file or private
// anonymous memory (which vmas split only by copy-on-write or by where
// their memory lies in the memory file).
func sameMapping(a, b *vma) bool {
	if a.End != b.Start || a.Perms != b.Perms || a.MaxPerms != b.MaxPerms || a.Private != b.Private || a.Name != b.Name {
		return false
	}
	if a.Shm != nil || b.Shm != nil {
		return a.Shm == b.Shm && a.FileOff+a.length() == b.FileOff
	}
	if a.File == nil || b.File == nil {
		return a.File == nil && b.File == nil && a.Private
	}
	return a.File.Key == b.File.Key && a.FileOff+a.length() == b.FileOff
}

// describeAt says what maps addr, for diagnostics: the vma's range,
// permissions, kind and name, or that no vma does.
func (mm *MM) describeAt(addr uint64) string {
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	v := mm.vmaAtLocked(addr)
	if v == nil {
		return "no vma"
	}
	kind := "private"
	if !v.Private {
		kind = "shared"
	}
	if v.COW {
		kind += " copy-on-write"
	}
	if v.File != nil {
		kind += fmt.Sprintf(" file offset %#x", v.FileOff)
	}
	name := v.Name
	if name == "" {
		name = "anonymous"
	}
	return fmt.Sprintf("vma [%#x, %#x) %v max %v %s %s (memory file offset %#x)", v.Start, v.End, v.Perms, v.MaxPerms, kind, name, v.Off)
}

// HandleFault decides what a fault at addr with the given access means. It
// returns nil if the access is allowed (the mapping was missing in the
// platform address space, which is then restored) and ErrBadAddress for a
// genuine fault that must raise SIGSEGV.
func (mm *MM) HandleFault(addr uint64, at platform.AccessType) error {
	_, err := mm.handleFault(addr, at)
	return err
}

// generation returns the mapping generation (MM.gen).
func (mm *MM) generation() uint64 {
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	return mm.gen
}

// handleFault is HandleFault; it also returns the mapping generation
// after the fix.
func (mm *MM) handleFault(addr uint64, at platform.AccessType) (uint64, error) {
	if l := mm.mf.lazyLoader(); l != nil {
		// Load the page's chunk without holding mm.mu for writing.
		mm.mu.RLock()
		v := mm.vmaAtLocked(addr)
		var off uint64
		beyond := v != nil && v.Beyond
		if v != nil {
			off = v.Off + (pageRoundDown(addr) - v.Start)
		}
		mm.mu.RUnlock()
		if v != nil && !beyond {
			if err := l.ensure(off, off+pageSize); err != nil {
				return 0, err
			}
		}
	}
	mm.mu.Lock()
	defer mm.mu.Unlock()
	err := mm.handleFaultLocked(addr, at)
	return mm.gen, err
}

// handleFaultLocked is HandleFault.
//
// Preconditions: mm.mu is held for writing.
func (mm *MM) handleFaultLocked(addr uint64, at platform.AccessType) error {
	v := mm.vmaAtLocked(addr)
	if v == nil {
		return fmt.Errorf("fault at %#x: no mapping: %w", addr, ErrBadAddress)
	}
	var want perms
	if at.Read {
		want |= permRead
	}
	if at.Write {
		want |= permWrite
	}
	if at.Execute {
		want |= permExec
	}
	if want == 0 {
		want = permRead
	}
	if !v.Perms.allows(want) {
		return fmt.Errorf("fault at %#x: %v access to %v mapping: %w", addr, at, v.Perms, ErrBadAddress)
	}
	if v.Beyond {
		return mm.faultBeyondLocked(v, pageRoundDown(addr))
	}
	if l := mm.mf.lazyLoader(); l != nil && l.base != nil && want&permWrite != 0 && !v.COW && v.mapsBase() {
		// The first write to a chunk of a base: copied, and mapped from
		// the memory file in every vma of this address space.
		if err := mm.freshenLocked(l, pageRoundDown(addr), pageSize); err != nil || !mm.mf.dirty.on.Load() {
			return err
		}
	}
	if v.COW && want&permWrite != 0 {
		if err := mm.breakCOWLocked(pageRoundDown(addr)); err != nil || !mm.mf.dirty.on.Load() {
			return err
		}
		// While tracking, the copy is mapped without write permission:
		// record the write now rather than at a second fault, which
		// would look like this one repeating.
		if v = mm.vmaAtLocked(addr); v == nil || v.COW {
			return nil
		}
		return mm.trackWriteLocked(v, addr)
	}
	if want&permWrite != 0 && mm.mf.dirty.on.Load() {
		return mm.trackWriteLocked(v, addr)
	}
	if l := mm.mf.lazyLoader(); l != nil && mm.as != nil {
		// A lazy restore maps the loaded piece around the page only.
		off := v.Off + (pageRoundDown(addr) - v.Start)
		if err := l.ensure(off, off+pageSize); err != nil {
			return err
		}
		return mm.mapLoadedAroundLocked(l, v, addr)
	}
	return mm.mapIntoLocked(v, false)
}

// hostAddressSpace is implemented by platform address spaces that are a
// host process the sentry may read with process_vm_readv (ptrace's stub).
type hostAddressSpace interface {
	HostPID() int
}

// prefaultWindow is the span whose present pages one read fault maps: the
// host's fault-around (fault_around_bytes, 64 KiB by default) maps every
// page of the window that the file already has, without allocating any.
const prefaultWindow = 64 << 10

// prefaultBatch is the most remote iovecs one process_vm_readv takes
// (IOV_MAX).
const prefaultBatch = 1024

// prefaultSegment is how many pages one mincore call looks at.
const prefaultSegment = 4096

// prefaultPresent maps the pages of the memory file that hold data (after a
// restore: the pages the image stored) into the host page tables of the
// platform address space, so that the application's first touch of each
// does not take a fault in the host kernel. It reads one byte, through
// the address space, of the first present page of every
// prefaultWindow-aligned window of every readable vma, in
// process_vm_readv calls of up to prefaultBatch windows; each read faults
// once and the host's fault-around maps the window's other present pages,
// writable if the vma is. Holes are never read, so no page is allocated.
//
// It is best effort: an address space that is not a host process, or an
// error, leaves pages to be faulted in on first touch. mm.mu is held for
// reading only during one batch, so the application may change its
// mappings in between. It stops when the address space is released (the
// process exited) or the memory file is. It returns the number of windows
// read.
func (mm *MM) prefaultPresent() int {
	var (
		remote [prefaultBatch]unix.RemoteIovec
		sink   [prefaultBatch]byte
		vec    [prefaultSegment]byte
		total  int
	)
	for addr := uint64(0); ; {
		n, next, ok := mm.prefaultBatch(addr, remote[:], sink[:], vec[:])
		total += n
		if !ok {
			return total
		}
		addr = next
	}
}

// prefaultBatch prefaults up to len(remote) windows at or above addr and
// returns how many, where to go on, and false when there is nothing left
// (or the address space is gone).
func (mm *MM) prefaultBatch(addr uint64, remote []unix.RemoteIovec, sink, vec []byte) (int, uint64, bool) {
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	has, ok := mm.as.(hostAddressSpace)
	if !ok {
		return 0, 0, false
	}
	// A kernel released without ever running (its tasks release their
	// address spaces when they exit) releases its memory file under us.
	mm.mf.releaseMu.RLock()
	defer mm.mf.releaseMu.RUnlock()
	if mm.mf.mapping == nil {
		return 0, 0, false
	}
	n := 0
	next := uint64(0)
collect:
	for i := mm.findLocked(addr); i < len(mm.vmas); i++ {
		v := &mm.vmas[i]
		if !v.Perms.allows(permRead) || v.Beyond {
			continue
		}
		for seg := max(addr, v.Start); seg < v.End; {
			pages := min(int((v.End-seg)/pageSize), prefaultSegment)
			b, err := mm.mf.Bytes(v.Off+(seg-v.Start), uint64(pages)*pageSize)
			// mincore of a shared file mapping reports the pages the file
			// has, whether or not this mapping maps them.
			if err != nil || mincore(b, vec[:pages]) != nil {
				break
			}
			for p := 0; p < pages; {
				if vec[p]&1 == 0 {
					p++
					continue
				}
				if n == len(remote) {
					next = seg + uint64(p)*pageSize
					break collect
				}
				page := seg + uint64(p)*pageSize
				remote[n] = unix.RemoteIovec{Base: uintptr(page), Len: 1}
				n++
				// Go on at the next window.
				p = int(((page/prefaultWindow+1)*prefaultWindow - seg) / pageSize)
			}
			seg += uint64(pages) * pageSize
		}
	}
	pid := has.HostPID()
	for done := 0; done < n; {
		local := []unix.Iovec{{Base: &sink[0]}}
		local[0].SetLen(n - done)
		got, err := unix.ProcessVMReadv(pid, local, remote[done:n], 0)
		if err == unix.ESRCH {
			return done, 0, false
		}
		if err != nil || got < 0 {
			got = 0
		}
		// A window that failed (the first not read) is skipped.
		done += got + 1
	}
	return n, next, next != 0
}

// mapsWritable reports whether a shared mapping of f may be made writable
// (its MaxPerms allow writing).
func (mm *MM) mapsWritable(f vfs.SharedFile) bool {
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	for i := range mm.vmas {
		if v := &mm.vmas[i]; v.Shm == f && v.MaxPerms.allows(permWrite) {
			return true
		}
	}
	return false
}

// sharedOffset returns the memory file offset of addr if a shared mapping
// (not the vDSO's) holds it.
func (mm *MM) sharedOffset(addr uint64) (uint64, bool) {
	mm.backRange(addr, 4)
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	v := mm.vmaAtLocked(addr)
	if v == nil || v.Private || v.Special || v.Beyond {
		return 0, false
	}
	return v.Off + (addr - v.Start), true
}
