package vfs

import (
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// ProcView is /proc as one caller sees it: the kernel generates what
// /proc holds (the sandbox's processes, /proc/self, the system's files),
// and what "self" and "thread-self" name depends on who asks, so the
// kernel hands its view to vfs with each lookup (Creds.Proc). procFS,
// the filesystem mounted at /proc, routes the paths the mount table
// gives it to the view.
//
// Every path a method receives is a clean absolute guest path, "/proc" or
// below it. A method returns ENOENT for a path the view does not hold.
type ProcView interface {
	// ProcOpen opens the file at full with open(2) flags (O_CLOEXEC
	// cleared); with O_NOFOLLOW a final symlink is not followed.
	ProcOpen(full string, flags uint32) (*File, error)
	// ProcStat returns the attributes of full; follow resolves a final
	// symlink.
	ProcStat(full string, follow bool) (Stat, error)
	// ProcReadlink returns the target of the symlink full (EINVAL for
	// another file).
	ProcReadlink(full string) (string, error)
	// ProcMagicLink reports whether full is one of the links Linux
	// follows to an object rather than to its target's name (the root,
	// cwd and exe of a process), and returns the guest path, from the
	// sandbox's root, that a walk through it continues at.
	ProcMagicLink(full string) (string, bool)
}

// procFS is the sandbox's /proc: its lookups go to the caller's
// ProcView, except for a walk through a magic link (/proc/PID/root/...),
// which leaves it for the directory the link leads to. It walks the path
// below its mount point itself, so ".." after a magic link climbs from the
// link's target, as on Linux.
// A caller without a view (the kernel's own lookups) sees /proc empty.
// Nothing in it can be created, removed or renamed: EROFS once the path
// resolves, as the sentry's directories.
//
// +stateify savable
type procFS struct{}

func (*procFS) fsType() string { return "proc" }

// procViewOf returns c's view of /proc, or one holding /proc only.
func procViewOf(c *Creds) ProcView {
	if c == nil || c.Proc == nil {
		return emptyProc{}
	}
	return c.Proc
}

// procWalk resolves rest, a path below /proc as the mount table routes
// it (not cleaned), for view v: it returns the clean guest path it names,
// or the crossing of a walk that leaves /proc, by ".." at its root or
// through a magic link followed in the middle of the path (or at its end
// with follow or a trailing slash). The rest of the path then continues
// at the link's target, from the sandbox's root whatever the reader's
// root directory is, as Linux's magic links.
func procWalk(v ProcView, rest string, follow bool) (string, error) {
	wantDir := strings.HasSuffix(rest, "/")
	comps := strings.Split(rest, "/")
	var stack []string
	for i, c := range comps {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return "", &crossing{full: procLeft("/", comps[i+1:], wantDir)}
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, c)
		more := slices.ContainsFunc(comps[i+1:], func(c string) bool { return c != "" && c != "." })
		if len(stack) < 2 || (!more && !follow && !wantDir) {
			continue
		}
		if target, ok := v.ProcMagicLink("/proc/" + strings.Join(stack, "/")); ok {
			return "", &crossing{full: procLeft(target, comps[i+1:], wantDir)}
		}
	}
	return path.Join(append([]string{"/proc"}, stack...)...), nil
}

// procLeft is the guest path at which a walk that leaves /proc continues:
// the components left after dir, not cleaned.
func procLeft(dir string, left []string, wantDir bool) string {
	next := strings.TrimRight(dir, "/") + "/" + strings.TrimRight(strings.Join(left, "/"), "/")
	if wantDir && !strings.HasSuffix(next, "/") {
		next += "/"
	}
	if !wantDir && next != "/" {
		next = strings.TrimRight(next, "/")
	}
	return next
}

// procLookup returns c's view and the clean guest path rest (below /proc)
// names, or the crossing out of /proc.
func procLookup(c *Creds, rest string, follow bool) (ProcView, string, error) {
	v := procViewOf(c)
	p, err := procWalk(v, rest, follow)
	if err != nil {
		return nil, "", err
	}
	if strings.HasSuffix(rest, "/") && p != "/proc" {
		// A trailing slash asks for a directory.
		st, err := v.ProcStat(p, true)
		if err != nil {
			return nil, "", err
		}
		if st.FileType() != unix.S_IFDIR {
			return nil, "", unix.ENOTDIR
		}
	}
	return v, p, nil
}

func (*procFS) open(_ *FS, _ *Mount, rest string, flags, _ uint32, o Owner) (*File, error) {
	v, p, err := procLookup(o.Creds, rest, flags&unix.O_NOFOLLOW == 0)
	if err != nil {
		return nil, err
	}
	f, err := v.ProcOpen(p, flags)
	if err == unix.ENOENT && flags&unix.O_PATH == 0 && flags&unix.O_CREAT != 0 {
		if _, perr := v.ProcStat(path.Dir(p), true); perr == nil {
			return nil, unix.EROFS
		}
	}
	return f, err
}

func (*procFS) stat(c *Creds, _ *Mount, rest string, follow bool) (Stat, error) {
	return procStat(c, rest, follow)
}

// procStat returns the attributes of rest (a path below /proc) as c sees them.
func procStat(c *Creds, rest string, follow bool) (Stat, error) {
	v, p, err := procLookup(c, rest, follow)
	if err != nil {
		return Stat{}, err
	}
	return v.ProcStat(p, follow)
}

func (*procFS) readlink(c *Creds, _ *Mount, rest string) (string, error) {
	v, p, err := procLookup(c, rest, false)
	if err != nil {
		return "", err
	}
	return v.ProcReadlink(p)
}

// access: what /proc holds is readable, its directories searchable,
// nothing writable but what the kernel opens for writing (comm), which
// access(2) reports as Linux's procfs does for root.
func (*procFS) access(c *Creds, _ *Mount, rest string, mode uint32, flags int) error {
	follow := flags&unix.AT_SYMLINK_NOFOLLOW == 0
	v, p, err := procLookup(c, rest, follow)
	if err != nil {
		return err
	}
	st, err := v.ProcStat(p, follow)
	if err != nil {
		return err
	}
	if mode&unix.W_OK != 0 || (st.FileType() != unix.S_IFDIR && mode&unix.X_OK != 0) {
		return unix.EACCES
	}
	return nil
}

func (*procFS) chdir(c *Creds, _ *Mount, rest string) (string, error) {
	v, p, err := procLookup(c, rest, true)
	if err != nil {
		return "", err
	}
	f, err := v.ProcOpen(p, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return "", err
	}
	defer f.DecRef()
	d, ok := f.impl.(*synthDir)
	if !ok || !d.isDir() {
		return "", unix.ENOTDIR
	}
	return d.path, nil
}

func (*procFS) statfs(c *Creds, _ *Mount, rest string) ([StatfsSize]byte, error) {
	v, p, err := procLookup(c, rest, true)
	if err != nil {
		return [StatfsSize]byte{}, err
	}
	if _, err := v.ProcStat(p, true); err != nil {
		return [StatfsSize]byte{}, err
	}
	return syntheticStatfs(procMagic), nil
}

// procMustExist returns EROFS if rest (below /proc) names something and its lookup error
// otherwise.
func procMustExist(c *Creds, rest string, follow bool) error {
	if _, err := procStat(c, rest, follow); err != nil {
		return err
	}
	return unix.EROFS
}

// procMustNotExist returns EEXIST if rest (below /proc) names something, else EROFS if its
// parent is a directory, else the parent's lookup error.
func procMustNotExist(c *Creds, rest string) error {
	switch _, err := procStat(c, rest, false); err {
	case nil:
		return unix.EEXIST
	case unix.ENOENT:
		parent := path.Dir(path.Clean("/" + rest))[1:]
		st, err := procStat(c, parent, true)
		if err != nil {
			return err
		}
		if st.FileType() != unix.S_IFDIR {
			return unix.ENOTDIR
		}
		return unix.EROFS
	default:
		return err
	}
}

func (*procFS) mkdir(_ *Mount, rest string, _ uint32, o Owner) error {
	return procMustNotExist(o.Creds, rest)
}

func (*procFS) mknod(_ *Mount, rest string, _ uint32, _ uint64, o Owner) error {
	return procMustNotExist(o.Creds, rest)
}

func (*procFS) symlink(_ *Mount, _, rest string, o Owner) error {
	return procMustNotExist(o.Creds, rest)
}

func (*procFS) link(c *Creds, _ *Mount, oldRest, newRest string, follow bool) error {
	if err := procMustExist(c, oldRest, follow); err != unix.EROFS {
		return err
	}
	return procMustNotExist(c, newRest)
}

func (*procFS) unlink(c *Creds, _ *Mount, rest string, _ bool) error {
	return procMustExist(c, rest, false)
}

func (*procFS) rename(c *Creds, _ *Mount, oldRest, _ string, _ uint32) error {
	return procMustExist(c, oldRest, false)
}

func (*procFS) setAttr(_ *Mount, rest string, follow bool, a *SetAttr) error {
	return procMustExist(a.Creds, rest, follow)
}

func (p *procFS) bindSocket(m *Mount, rest string, mode uint32, o Owner, _ BoundSocket) error {
	return p.mknod(m, rest, unix.S_IFSOCK|mode, 0, o)
}

func (p *procFS) lookupSocket(c *Creds, m *Mount, rest string) (BoundSocket, error) {
	return noSocket(c, p, m, rest)
}

// emptyProc is /proc without a caller: the directory alone.
type emptyProc struct{}

func (emptyProc) ProcOpen(full string, flags uint32) (*File, error) {
	if full != "/proc" {
		return nil, unix.ENOENT
	}
	return NewSyntheticDir(full, nil, nil, flags)
}

func (emptyProc) ProcStat(full string, _ bool) (Stat, error) {
	if full != "/proc" {
		return Stat{}, unix.ENOENT
	}
	return SyntheticDirStat(full), nil
}

func (emptyProc) ProcReadlink(full string) (string, error) {
	if full != "/proc" {
		return "", unix.ENOENT
	}
	return "", unix.EINVAL
}

func (emptyProc) ProcMagicLink(string) (string, bool) { return "", false }
