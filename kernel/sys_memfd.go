package kernel

import (
	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// memfdNameMax is the longest name memfd_create accepts.
const memfdNameMax = 249

// sysMemfdCreate implements memfd_create(name, flags): an anonymous
// read-write regular file (vfs.NewMemfd) whose data lives in the memory
// file, saved with it; shared mappings map its pages.
func sysMemfdCreate(t *Task, a *sysArgs) (uint64, error) {
	name, err := t.tg.mm.CopyInString(a[0], memfdNameMax+1)
	if err == errNameTooLong {
		return 0, unix.EINVAL
	}
	if err != nil {
		return 0, err
	}
	flags := uint32(a[1])
	if flags&unix.MFD_HUGETLB != 0 {
		return 0, unix.EINVAL
	}
	f, err := vfs.NewMemfd(t.k.mf, t.fsOwner(), name, flags&^uint32(unix.MFD_CLOEXEC))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return fdResult(t.tg.fdTable.NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&unix.MFD_CLOEXEC != 0}))
}

// writableShared reports whether a process maps f shared with write
// permission possible (F_SEAL_WRITE is then EBUSY, as Linux's
// mapping_deny_writable).
func (k *Kernel) writableShared(f vfs.SharedFile) bool {
	seen := map[*MM]bool{}
	for _, t := range k.tasks.all() {
		mm := t.tg.mm
		if mm == nil || seen[mm] {
			continue
		}
		seen[mm] = true
		if mm.mapsWritable(f) {
			return true
		}
	}
	return false
}
