package vfs

import "golang.org/x/sys/unix"

// Reopen opens the file behind descriptor file f again, as open(2) of one
// of the magic links FDAlias recognises does on Linux
// (/proc/self/fd/N, /dev/fd/N, /dev/stdin):
//
//   - a host file or directory is opened again by its guest path with
//     flags: a new open file description, with its own offset (0) and the
//     access checks of a fresh open (EROFS for writing);
//   - a pipe end gives a new File of the same pipe whose end is chosen by
//     the access mode of flags (O_RDONLY reads, O_WRONLY writes; O_RDWR
//     and O_PATH share f's description instead);
//   - a sentry device is opened again by its path, a memfd as a new
//     description of the same memory file;
//   - standard streams and kernel-implemented files share f's open file
//     description (one more reference), because their host descriptor or
//     kernel object has no path the sentry can open again. Linux would
//     reopen a terminal or a regular file behind a standard stream; the
//     difference is the shared offset and flags.
//
// The caller owns the returned reference. flags must not hold O_CLOEXEC
// (that is the FDTable's).
func (fs *FS) Reopen(f *File, flags uint32) (*File, error) {
	return fs.ReopenAs(nil, f, flags)
}

// ReopenAs is Reopen for a caller with credentials c, who needs the
// permission a fresh open with flags asks on the file itself (EACCES), as
// Linux checks an open through a magic link: a descriptor opened O_PATH,
// or read-only, does not give more than the file's mode allows. A host
// file is opened again by its path, so the directories on the way are
// checked too.
func (fs *FS) ReopenAs(c *Creds, f *File, flags uint32) (*File, error) {
	if flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
		// The link exists: O_EXCL fails as on any existing path.
		return nil, unix.EEXIST
	}
	switch impl := f.impl.(type) {
	case *hostFile:
		p := impl.guestPath()
		if p == "" {
			return nil, unix.ENOENT
		}
		return fs.OpenAtAs(Owner{Creds: c}, nil, p, flags&^unix.O_CREAT, 0)
	case *tmpfsFile:
		nf, err := impl.reopen(c, flags|oLargefile)
		if err == nil && flags&unix.O_PATH == 0 {
			nf.notifier = fs.notifier()
			nf.notify(InOpen)
		}
		return nf, err
	case *device:
		return openDevice(impl.kind, impl.guestPath(), flags|oLargefile)
	case *ptySlave:
		return impl.tty.openSlave(flags, impl.alias)
	case *pipeReader:
		if nf := reopenPipe(impl.pipe, flags); nf != nil {
			return nf, nil
		}
	case *pipeWriter:
		if nf := reopenPipe(impl.pipe, flags); nf != nil {
			return nf, nil
		}
	}
	f.IncRef()
	return f, nil
}

// reopenPipe returns a new File for one end of p, chosen by the access
// mode of flags, or nil for O_RDWR and O_PATH.
func reopenPipe(p *pipe, flags uint32) *File {
	if flags&unix.O_PATH != 0 {
		return nil
	}
	keep := flags & (unix.O_NONBLOCK | unix.O_APPEND)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		p.readers++
		p.notifyLocked()
		return newFile(unix.O_RDONLY|keep, &pipeReader{pipe: p})
	case unix.O_WRONLY:
		p.writers++
		p.notifyLocked()
		return newFile(unix.O_WRONLY|keep, &pipeWriter{pipe: p})
	default:
		return nil
	}
}
