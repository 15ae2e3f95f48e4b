package kernel

import (
	"fmt"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// memfdNameMax is the longest name memfd_create accepts.
const memfdNameMax = 249

// sysMemfdCreate implements memfd_create(name, flags): an anonymous
// read-write regular file (vfs.NewMemfd). A process that holds one cannot
// be saved yet (the save fails with vfs.ErrMemfdNotSavable); a shared
// mapping of it is refused (ENODEV) until the MM can share its pages.
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
	f, err := vfs.NewMemfd(name, flags&^uint32(unix.MFD_CLOEXEC))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return fdResult(t.tg.fdTable.NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&unix.MFD_CLOEXEC != 0}))
}

// CheckSavable reports why the sandbox cannot be saved now, or nil: an
// open memfd_create file (vfs.ErrMemfdNotSavable), whose contents images do
// not hold yet. A save calls it first, so that the refusal is one clear
// error; the memfd's beforeSave hook is the backstop.
//
// Preconditions: the kernel is paused, or the answer may be stale.
func (k *Kernel) CheckSavable() error {
	seen := map[*ThreadGroup]bool{}
	var err error
	for _, t := range k.tasks.all() {
		tg := t.tg
		if seen[tg] || err != nil {
			continue
		}
		seen[tg] = true
		tg.fdTable.ForEach(func(fd int32, f *vfs.File, _ vfs.FDFlags) {
			if err == nil && f.IsMemfd() {
				err = fmt.Errorf("process %d has memfd %q open as descriptor %d: %w", tg.tgid, f.Path(), fd, vfs.ErrMemfdNotSavable)
			}
		})
	}
	return err
}
