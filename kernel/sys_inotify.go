package kernel

import (
	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// inotify: the instances and watches live in package vfs (vfs.Notifier),
// which the sandbox's file operations report their events to.

func sysInotifyInit(t *Task, a *sysArgs) (uint64, error) { return t.inotifyInit(0) }

func sysInotifyInit1(t *Task, a *sysArgs) (uint64, error) { return t.inotifyInit(uint32(a[0])) }

func (t *Task) inotifyInit(flags uint32) (uint64, error) {
	if flags&^uint32(unix.IN_NONBLOCK|unix.IN_CLOEXEC) != 0 {
		return 0, unix.EINVAL
	}
	f, err := vfs.NewInotify(t.tg.fs.Root(), flags&unix.IN_NONBLOCK)
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return fdResult(t.tg.fdTable.NewFD(0, f, vfs.FDFlags{CloseOnExec: flags&unix.IN_CLOEXEC != 0}))
}

// sysInotifyAddWatch checks the mask, then the descriptor, then the path,
// in Linux's order.
func sysInotifyAddWatch(t *Task, a *sysArgs) (uint64, error) {
	mask := uint32(a[2])
	if !vfs.InotifyMaskValid(mask) {
		return 0, unix.EINVAL
	}
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	p, err := t.copyInPath(a[1])
	if err != nil {
		return 0, err
	}
	wd, err := t.tg.fs.InotifyAddWatch(f, nil, p, mask)
	return uint64(wd), err
}

func sysInotifyRmWatch(t *Task, a *sysArgs) (uint64, error) {
	f, err := t.getFile(a.Int(0))
	if err != nil {
		return 0, err
	}
	defer f.DecRef()
	return 0, f.InotifyRmWatch(int32(a[1]))
}

// inotifyNote is what the inotify rows lack.
const inotifyNote = "sees changes made through the sentry only (not the host's); no fanotify; IN_UNMOUNT never comes (mounts are fixed)"
