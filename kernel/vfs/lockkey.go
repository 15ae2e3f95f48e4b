package vfs

// LockKey identifies the file a File is open on, for advisory locks: Files
// opened on the same file have equal keys. A host file's key is the
// identity it was opened with, which a restore keeps (even when the image
// moves to another host); other files use the device and inode numbers
// fstat shows in the sandbox.
//
// +stateify savable
type LockKey struct {
	Host               bool
	DevMajor, DevMinor uint32
	Ino                uint64
}

// LockKey returns f's lock key.
func (f *File) LockKey() (LockKey, error) {
	if h, ok := f.impl.(*hostFile); ok {
		return LockKey{Host: true, DevMajor: h.ident.DevMajor, DevMinor: h.ident.DevMinor, Ino: h.ident.Ino}, nil
	}
	st, err := f.Stat()
	if err != nil {
		return LockKey{}, err
	}
	return LockKey{DevMajor: st.DevMajor, DevMinor: st.DevMinor, Ino: st.Ino}, nil
}

// LockReleaser drops the locks an open file description owns (flock and
// OFD locks) when its last reference goes.
type LockReleaser interface {
	ReleaseLocks(f *File)
}

// SetLockReleaser makes the last DecRef of f call r.ReleaseLocks(f). The
// kernel sets it when f takes its first lock; setting it again replaces it.
func (f *File) SetLockReleaser(r LockReleaser) {
	f.mu.Lock()
	f.locker = r
	f.mu.Unlock()
}
