package vfs

import (
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultNOFILE is the default descriptor limit (RLIMIT_NOFILE soft limit).
const DefaultNOFILE = 1024

// maxNOFILE is the highest limit SetLimit accepts (Linux's nr_open default).
const maxNOFILE = 1 << 20

// FDFlags are descriptor flags (not file status flags).
//
// +stateify savable
type FDFlags struct {
	// CloseOnExec is FD_CLOEXEC.
	CloseOnExec bool
}

// ToLinux returns the F_GETFD value.
func (f FDFlags) ToLinux() int {
	if f.CloseOnExec {
		return unix.FD_CLOEXEC
	}
	return 0
}

// FDFlagsFromLinux converts an F_SETFD value.
func FDFlagsFromLinux(v int) FDFlags { return FDFlags{CloseOnExec: v&unix.FD_CLOEXEC != 0} }

// descriptor is one FDTable slot.
//
// +stateify savable
type descriptor struct {
	File  *File
	Flags FDFlags
}

// FDTable is a process's descriptor table (Linux's files_struct). Threads
// created with CLONE_FILES share one table; fork copies it with Fork. The
// table holds one reference to each installed File.
//
// +stateify savable
type FDTable struct {
	// mu protects the fields below. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// fds is indexed by descriptor; a nil File is a free slot.
	fds []descriptor
	// limit is the RLIMIT_NOFILE soft limit: descriptors are < limit.
	limit int
}

// NewFDTable returns an empty table with limit DefaultNOFILE.
func NewFDTable() *FDTable { return &FDTable{limit: DefaultNOFILE} }

// Limit returns the descriptor limit.
func (t *FDTable) Limit() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.limit
}

// SetLimit sets the descriptor limit (setrlimit(RLIMIT_NOFILE)); EPERM
// above the hard maximum. Existing descriptors above it stay open.
func (t *FDTable) SetLimit(n int) error {
	if n < 0 || n > maxNOFILE {
		return unix.EPERM
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.limit = n
	return nil
}

// NewFD installs f at the lowest free descriptor >= min and returns it
// (open, dup, F_DUPFD). The table takes its own reference; the caller keeps
// its own. EINVAL if min is negative or not below the limit, EMFILE if no
// descriptor is free.
func (t *FDTable) NewFD(min int32, f *File, flags FDFlags) (int32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if min < 0 || int(min) >= t.limit {
		return -1, unix.EINVAL
	}
	fd := int(min)
	for ; fd < len(t.fds) && fd < t.limit; fd++ {
		if t.fds[fd].File == nil {
			break
		}
	}
	if fd >= t.limit {
		return -1, unix.EMFILE
	}
	t.setLocked(fd, f, flags)
	return int32(fd), nil
}

// NewFDs installs several files at the lowest free descriptors (pipe2,
// socketpair); on EMFILE nothing is installed.
func (t *FDTable) NewFDs(files []*File, flags FDFlags) ([]int32, error) {
	out := make([]int32, 0, len(files))
	for _, f := range files {
		fd, err := t.NewFD(0, f, flags)
		if err != nil {
			for _, d := range out {
				t.Remove(d)
			}
			return nil, err
		}
		out = append(out, fd)
	}
	return out, nil
}

// setLocked puts f at fd, growing the slice, and returns the File it
// replaced (the caller DecRefs it outside the lock). Preconditions: t.mu is
// held; fd < t.limit.
func (t *FDTable) setLocked(fd int, f *File, flags FDFlags) *File {
	if fd >= len(t.fds) {
		n := max(2*len(t.fds), 8, fd+1)
		grown := make([]descriptor, min(n, max(t.limit, fd+1)))
		copy(grown, t.fds)
		t.fds = grown
	}
	old := t.fds[fd].File
	f.IncRef()
	t.fds[fd] = descriptor{File: f, Flags: flags}
	return old
}

// Get returns the File at fd with a new reference (the caller DecRefs it)
// and its flags; EBADF if fd is not open.
func (t *FDTable) Get(fd int32) (*File, FDFlags, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fd < 0 || int(fd) >= len(t.fds) || t.fds[fd].File == nil {
		return nil, FDFlags{}, unix.EBADF
	}
	d := t.fds[fd]
	d.File.IncRef()
	return d.File, d.Flags, nil
}

// Remove closes fd (close(2)): EBADF if it is not open.
func (t *FDTable) Remove(fd int32) error {
	t.mu.Lock()
	if fd < 0 || int(fd) >= len(t.fds) || t.fds[fd].File == nil {
		t.mu.Unlock()
		return unix.EBADF
	}
	f := t.fds[fd].File
	t.fds[fd] = descriptor{}
	t.mu.Unlock()
	t.closed(f)
	return nil
}

// closed drops the table's reference to f, which one of its descriptors
// no longer names: f's dnotify request made through t goes with it.
func (t *FDTable) closed(f *File) {
	f.dnotifyClosed(t)
	f.DecRef()
}

// Dup implements dup(2): the lowest free descriptor, FD_CLOEXEC clear.
func (t *FDTable) Dup(oldfd int32) (int32, error) {
	f, _, err := t.Get(oldfd)
	if err != nil {
		return -1, err
	}
	defer f.DecRef()
	fd, err := t.NewFD(0, f, FDFlags{})
	if err == unix.EINVAL {
		err = unix.EMFILE
	}
	return fd, err
}

// DupFD implements fcntl F_DUPFD and F_DUPFD_CLOEXEC.
func (t *FDTable) DupFD(oldfd, min int32, flags FDFlags) (int32, error) {
	f, _, err := t.Get(oldfd)
	if err != nil {
		return -1, err
	}
	defer f.DecRef()
	return t.NewFD(min, f, flags)
}

// Dup2 implements dup2(2): if oldfd == newfd it only checks oldfd.
func (t *FDTable) Dup2(oldfd, newfd int32) (int32, error) {
	if oldfd == newfd {
		f, _, err := t.Get(oldfd)
		if err != nil {
			return -1, err
		}
		f.DecRef()
		return newfd, nil
	}
	return t.Dup3(oldfd, newfd, FDFlags{})
}

// Dup3 implements dup3(2): newfd (closed first if open) becomes a copy of
// oldfd with flags. EINVAL if they are equal, EBADF if oldfd is not open or
// newfd is out of range.
func (t *FDTable) Dup3(oldfd, newfd int32, flags FDFlags) (int32, error) {
	if oldfd == newfd {
		return -1, unix.EINVAL
	}
	t.mu.Lock()
	if oldfd < 0 || int(oldfd) >= len(t.fds) || t.fds[oldfd].File == nil {
		t.mu.Unlock()
		return -1, unix.EBADF
	}
	if newfd < 0 || int(newfd) >= t.limit {
		t.mu.Unlock()
		return -1, unix.EBADF
	}
	old := t.setLocked(int(newfd), t.fds[oldfd].File, flags)
	t.mu.Unlock()
	if old != nil {
		t.closed(old)
	}
	return newfd, nil
}

// Flags returns fd's descriptor flags (F_GETFD).
func (t *FDTable) Flags(fd int32) (FDFlags, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fd < 0 || int(fd) >= len(t.fds) || t.fds[fd].File == nil {
		return FDFlags{}, unix.EBADF
	}
	return t.fds[fd].Flags, nil
}

// SetFlags sets fd's descriptor flags (F_SETFD, FIOCLEX, FIONCLEX).
func (t *FDTable) SetFlags(fd int32, flags FDFlags) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if fd < 0 || int(fd) >= len(t.fds) || t.fds[fd].File == nil {
		return unix.EBADF
	}
	t.fds[fd].Flags = flags
	return nil
}

// CloseOnExec closes every descriptor with FD_CLOEXEC (execve).
func (t *FDTable) CloseOnExec() {
	var closing []*File
	t.mu.Lock()
	for i := range t.fds {
		if t.fds[i].File != nil && t.fds[i].Flags.CloseOnExec {
			closing = append(closing, t.fds[i].File)
			t.fds[i] = descriptor{}
		}
	}
	t.mu.Unlock()
	for _, f := range closing {
		t.closed(f)
	}
}

// CloseRange closes descriptors first..last (close_range(2) without flags).
func (t *FDTable) CloseRange(first, last uint32) {
	var closing []*File
	t.mu.Lock()
	for i := int(first); i < len(t.fds) && uint32(i) <= last; i++ {
		if t.fds[i].File != nil {
			closing = append(closing, t.fds[i].File)
			t.fds[i] = descriptor{}
		}
	}
	t.mu.Unlock()
	for _, f := range closing {
		t.closed(f)
	}
}

// ForEach calls fn for each open descriptor in increasing order, on a
// snapshot taken under the lock (fn may use the table).
func (t *FDTable) ForEach(fn func(fd int32, f *File, flags FDFlags)) {
	t.mu.Lock()
	snap := make([]descriptor, len(t.fds))
	copy(snap, t.fds)
	for _, d := range snap {
		if d.File != nil {
			d.File.IncRef()
		}
	}
	t.mu.Unlock()
	for i, d := range snap {
		if d.File != nil {
			fn(int32(i), d.File, d.Flags)
			d.File.DecRef()
		}
	}
}

// Len returns the number of open descriptors.
func (t *FDTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, d := range t.fds {
		if d.File != nil {
			n++
		}
	}
	return n
}

// Fork returns a copy of the table sharing the Files (fork without
// CLONE_FILES).
func (t *FDTable) Fork() *FDTable {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := &FDTable{limit: t.limit, fds: make([]descriptor, len(t.fds))}
	copy(c.fds, t.fds)
	for _, d := range c.fds {
		if d.File != nil {
			d.File.IncRef()
		}
	}
	return c
}

// Close closes every descriptor (the last user of the table exits).
func (t *FDTable) Close() {
	t.CloseRange(0, ^uint32(0))
}
