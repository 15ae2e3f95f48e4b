package kernel

import (
	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// Special files (eventfd, epoll) are implemented by the kernel rather than
// by vfs, whose file implementations are internal to it. Each one occupies
// a descriptor through a carrier: an inert vfs file (the sentry's
// /dev/null) that gives it a place in the FDTable, with dup, close-on-exec
// and fork semantics for free. The process's specials list maps a carrier
// to the kernel object; read, write, poll and close look there first.
//
// This adapter predates vfs.Impl, through which sockets are now real vfs
// Files; these files could move to it. Until then fstat of such a
// descriptor shows the carrier (a character device) where Linux shows an
// anonymous inode, and one passed over SCM_RIGHTS arrives as the carrier.

// specialFile is a kernel-implemented file.
type specialFile interface {
	// read and write implement read(2) and write(2) on the descriptor.
	read(t *Task, dst []byte, nonblock bool) (int, error)
	write(t *Task, src []byte, nonblock bool) (int, error)
	// readiness returns the ready subset of mask (POLLIN, POLLOUT...).
	readiness(mask uint32) uint32
	// changed returns a channel closed when readiness may have changed.
	changed() <-chan struct{}
}

// specialReadMax bounds the buffer one read(2) of a special file gets
// (a signalfd returns as many 128-byte records as fit).
const specialReadMax = 64 << 10

// special pairs a carrier with its kernel object.
//
// +stateify savable
type special struct {
	Carrier *vfs.File
	Obj     specialFile
}

// newCarrier returns a fresh carrier file for a special file.
func newCarrier(flags uint32) (*vfs.File, error) {
	return vfs.OpenDevice("/dev/null", unix.O_RDWR|flags&unix.O_NONBLOCK)
}

// installSpecial puts obj in a new descriptor and returns it.
func (t *Task) installSpecial(obj specialFile, flags uint32) (uint64, error) {
	c, err := newCarrier(flags)
	if err != nil {
		return 0, err
	}
	defer c.DecRef()
	tg := t.tg
	tg.mu.Lock()
	tg.specials = append(tg.specials, special{Carrier: c, Obj: obj})
	tg.mu.Unlock()
	fd, err := tg.fdTable.NewFD(0, c, vfs.FDFlags{CloseOnExec: flags&unix.O_CLOEXEC != 0})
	if err != nil {
		tg.dropSpecial(c)
		return 0, err
	}
	return uint64(fd), nil
}

// specialOf returns the kernel object behind f, or nil for a vfs file.
func (tg *ThreadGroup) specialOf(f *vfs.File) specialFile {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	for _, s := range tg.specials {
		if s.Carrier == f {
			if sf, ok := s.Obj.(*signalFD); ok {
				return signalfdView{sf, tg}
			}
			return s.Obj
		}
	}
	return nil
}

// dropSpecial forgets the special file carried by c.
func (tg *ThreadGroup) dropSpecial(c *vfs.File) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	for i, s := range tg.specials {
		if s.Carrier == c {
			tg.specials = append(tg.specials[:i], tg.specials[i+1:]...)
			return
		}
	}
}

// closeFD implements close(2): a special file is forgotten when no other
// descriptor of the process refers to its carrier any more.
func (t *Task) closeFD(fd int32) error {
	tg := t.tg
	f, err := t.getFile(fd)
	if err != nil {
		return err
	}
	defer f.DecRef()
	if err := tg.fdTable.Remove(fd); err != nil {
		return err
	}
	tg.dropRecordLocks([]*vfs.File{f})
	if m, ok := f.Impl().(*mqFile); ok {
		m.M.flush(tg)
		return nil
	}
	obj := tg.specialOf(f)
	if obj == nil {
		return nil
	}
	if m, ok := obj.(*mqFD); ok {
		m.flush(tg)
	}
	used := false
	tg.fdTable.ForEach(func(_ int32, o *vfs.File, _ vfs.FDFlags) {
		if o == f {
			used = true
		}
	})
	if !used {
		tg.dropSpecial(f)
	}
	return nil
}
