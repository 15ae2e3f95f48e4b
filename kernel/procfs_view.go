package kernel

import (
	"strings"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// procView is /proc as thread t sees it (vfs.ProcView): vfs's procFS, the
// filesystem mounted at /proc, asks it for what a path there names once
// the mount table has routed the path to /proc, so a chroot without /proc
// under it has none, and "self" is t's process.
type procView struct{ t *Task }

// ProcOpen implements vfs.ProcView.
func (v procView) ProcOpen(full string, flags uint32) (*vfs.File, error) {
	t := v.t
	if flags&unix.O_NOFOLLOW != 0 {
		if e, ok := t.procEntryAt(full, false); ok && e.link != "" {
			return e.open(flags) // /proc/mounts
		}
	}
	if name, data, ok := t.procSelfFile(full, true); ok {
		return vfs.NewSyntheticWritable(name, data, flags, t.procWritable(name))
	}
	if e, ok := t.procEntryAt(full, flags&unix.O_NOFOLLOW == 0); ok {
		return e.open(flags)
	}
	return nil, unix.ENOENT
}

// ProcStat implements vfs.ProcView.
func (v procView) ProcStat(full string, follow bool) (vfs.Stat, error) {
	t := v.t
	if !follow {
		if e, ok := t.procEntryAt(full, false); ok && e.link != "" {
			return e.stat(), nil // /proc/mounts
		}
	}
	if name, _, ok := t.procSelfFile(full, false); ok {
		f, err := vfs.NewSyntheticWritable(name, nil, unix.O_RDONLY, t.procWritable(name))
		if err != nil {
			return vfs.Stat{}, err
		}
		defer f.DecRef()
		return f.Stat()
	}
	if e, ok := t.procEntryAt(full, follow); ok {
		return e.stat(), nil
	}
	return vfs.Stat{}, unix.ENOENT
}

// ProcReadlink implements vfs.ProcView.
func (v procView) ProcReadlink(full string) (string, error) {
	if e, ok := v.t.procEntryAt(full, false); ok {
		if e.link == "" {
			return "", unix.EINVAL
		}
		return e.link, nil
	}
	if _, _, ok := v.t.procSelfFile(full, false); ok {
		return "", unix.EINVAL
	}
	return "", unix.ENOENT
}

// ProcMagicLink implements vfs.ProcView: /proc/<pid>/{root,cwd,exe} and
// /proc/<pid>/task/<tid>/{root,cwd,exe} (self and thread-self too) lead to
// the process's root directory, working directory and executable.
func (v procView) ProcMagicLink(full string) (string, bool) {
	t := v.t
	rest, ok := strings.CutPrefix(full, "/proc/")
	if !ok {
		return "", false
	}
	comps := strings.Split(rest, "/")
	name := comps[len(comps)-1]
	if name != "root" && name != "cwd" && name != "exe" {
		return "", false
	}
	var target *Task
	switch who := comps[0]; who {
	case "self":
		target = t.procLeader(t.tg)
	case "thread-self":
		if len(comps) != 2 {
			return "", false
		}
		target = t
	default:
		target = t.procLookup(who)
	}
	if target == nil {
		return "", false
	}
	switch {
	case len(comps) == 2:
	case len(comps) == 4 && comps[1] == "task":
		th := t.procLookup(comps[2])
		if th == nil || th.tg != target.tg {
			return "", false
		}
	default:
		return "", false
	}
	tg := target.tg
	switch name {
	case "root":
		return tg.fs.RootPath(), true
	case "cwd":
		return tg.fs.CwdPath(), true
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.exe, tg.exe != ""
}
