package kernel

import (
	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

func sysBrk(t *Task, a *sysArgs) (uint64, error) { return t.tg.mm.Brk(a[0]), nil }

func sysMunmap(t *Task, a *sysArgs) (uint64, error) { return 0, t.tg.mm.Munmap(a[0], a[1]) }

func sysMremap(t *Task, a *sysArgs) (uint64, error) {
	return t.tg.mm.Mremap(a[0], a[1], a[2], int(a[3]), a[4])
}

func sysMadvise(t *Task, a *sysArgs) (uint64, error) {
	return 0, t.tg.mm.Madvise(a[0], a[1], int(a[2]))
}

// protPerms converts mmap/mprotect prot bits. x86 pages that are writable
// or executable are also readable.
func protPerms(prot uint64) (perms, error) {
	if prot&^uint64(permAll) != 0 {
		return 0, unix.EINVAL
	}
	p := perms(prot)
	if p != 0 {
		p |= permRead
	}
	return p, nil
}

// mmap flags handled (asm-generic/mman.h); all others are accepted and
// ignored, as hints Linux would also ignore here.
const (
	mapTypeMask       = 0x0f
	mapShared         = 0x01
	mapPrivate        = 0x02
	mapSharedValidate = 0x03
	mapFixed          = 0x10
	mapAnonymous      = 0x20
	mapPopulate       = 0x8000
	mapHugeTLB        = 0x40000
	mapFixedNoReplace = 0x100000
)

func sysMmap(t *Task, a *sysArgs) (uint64, error) {
	addr, length, prot, flags, fd, off := a[0], a[1], a[2], a[3], a.Int(4), a[5]
	p, err := protPerms(prot)
	if err != nil {
		return 0, err
	}
	typ := flags & mapTypeMask
	if typ != mapShared && typ != mapPrivate && typ != mapSharedValidate {
		return 0, unix.EINVAL
	}
	if flags&mapHugeTLB != 0 {
		return 0, unix.EINVAL
	}
	o := MMapOpts{
		Addr:      addr,
		Length:    length,
		Perms:     p,
		Private:   typ == mapPrivate,
		Fixed:     flags&mapFixed != 0,
		NoReplace: flags&mapFixedNoReplace != 0 && flags&mapFixed == 0,
		Precommit: flags&mapPopulate != 0,
	}
	if flags&mapAnonymous == 0 {
		release, err := t.mmapFileOpts(&o, fd, off)
		if err != nil {
			return 0, err
		}
		defer release()
	}
	return t.tg.mm.MMap(o)
}

func sysMprotect(t *Task, a *sysArgs) (uint64, error) {
	p, err := protPerms(a[2] &^ (unix.PROT_GROWSDOWN | unix.PROT_GROWSUP))
	if err != nil {
		return 0, err
	}
	return 0, t.tg.mm.Mprotect(a[0], a[1], p)
}

// fileContents reads a vfs file for a private mapping.
type fileContents struct{ f *vfs.File }

// ReadAt implements FileContents.
func (c fileContents) ReadAt(p []byte, off int64) (int, error) { return c.f.PRead(p, off) }

// cacheKey implements cacheableContents: host files are cached.
func (c fileContents) cacheKey() (fileKey, bool) {
	id, ok := c.f.HostFileID()
	return fileKeyOf(id), ok
}

// mmapFileOpts fills the file part of an mmap of descriptor fd at offset
// off. /dev/zero maps as anonymous memory. The caller calls release once
// the mapping is made (its contents are copied then).
func (t *Task) mmapFileOpts(o *MMapOpts, fd int32, off uint64) (release func(), err error) {
	f, err := t.getFile(fd)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (func(), error) {
		f.DecRef()
		return nil, err
	}
	if int64(off) < 0 || off&pageMask != 0 {
		return fail(unix.EINVAL)
	}
	acc := f.StatusFlags() & unix.O_ACCMODE
	if f.StatusFlags()&unix.O_PATH != 0 || acc == unix.O_WRONLY {
		return fail(unix.EACCES)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	switch st.FileType() {
	case unix.S_IFREG:
		if !o.Private && f.IsVolumeFile() {
			// Its pages would have to be shared with the volume's
			// host file; a copy would silently diverge.
			return fail(unix.ENODEV)
		}
		if !o.Private && (f.IsMemfd() || f.IsTmpfs()) {
			// The mapping maps the file's own pages.
			o.Shared = f
		}
	case unix.S_IFCHR:
		if f.Path() == "/dev/zero" {
			return f.DecRef, nil
		}
		return fail(unix.ENODEV)
	default:
		return fail(unix.ENODEV)
	}
	o.File = fileContents{f}
	o.Offset = off
	o.FileWritable = acc == unix.O_RDWR
	o.Name = f.Path()
	return f.DecRef, nil
}

// sysMincore reports every page of a mapped range as resident: the memory
// file pages are the host's business, and no program here depends on the
// difference.
func sysMincore(t *Task, a *sysArgs) (uint64, error) {
	addr, length := a[0], a[1]
	if addr&pageMask != 0 {
		return 0, unix.EINVAL
	}
	end, ok := pageRoundUp(addr + length)
	if !ok || addr+length < addr {
		return 0, unix.ENOMEM
	}
	mm := t.tg.mm
	mm.mu.RLock()
	covered := mm.coveredLocked(addr, end)
	mm.mu.RUnlock()
	if !covered {
		return 0, unix.ENOMEM
	}
	n := (end - addr) / pageSize
	if n > 1<<24 {
		return 0, unix.ENOMEM // bound the staging buffer (64 GiB of pages)
	}
	vec := make([]byte, n)
	for i := range vec {
		vec[i] = 1
	}
	return 0, mm.CopyOut(a[2], vec)
}

// msync flags (asm-generic/mman-common.h).
const (
	msAsync      = 1
	msInvalidate = 2
	msSync       = 4
)

// sysMsync checks its arguments as Linux does; there is nothing to write
// back, since no mapping is backed by a writable host file.
func sysMsync(t *Task, a *sysArgs) (uint64, error) {
	addr, length, flags := a[0], a[1], a[2]
	if flags&^(msAsync|msInvalidate|msSync) != 0 || addr&pageMask != 0 || flags&(msAsync|msSync) == msAsync|msSync {
		return 0, unix.EINVAL
	}
	end, ok := pageRoundUp(addr + length)
	if !ok || addr+length < addr {
		return 0, unix.ENOMEM
	}
	if end == addr {
		return 0, nil
	}
	mm := t.tg.mm
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	if !mm.coveredLocked(addr, end) {
		return 0, unix.ENOMEM
	}
	return 0, nil
}

// sysAcceptMemoryLock serves mlock, munlock, mlockall and munlockall: they
// succeed without locking anything into host RAM.
func sysAcceptMemoryLock(*Task, *sysArgs) (uint64, error) { return 0, nil }
