package kernel

import (
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// The directories and symlinks of the sandbox's /proc, which vfs's procFS
// asks for through the caller's procView (procfs_view.go); the files are in
// sys_procfs.go. The host's /proc is never consulted.

// procEntry is a directory or symlink of /proc the kernel generates.
type procEntry struct {
	// path is the guest path, with /proc/self and /proc/thread-self
	// resolved unless the entry is that link itself.
	path string
	// link is a symlink's target; "" for a directory.
	link string
	// names and types list a directory's entries (DT_* types).
	names []string
	types []uint8
}

// procTaskFiles are the entries of /proc/<pid> and /proc/<pid>/task/<tid>.
var procTaskFiles = []struct {
	name string
	typ  uint8
}{
	{"cmdline", unix.DT_REG}, {"comm", unix.DT_REG}, {"cwd", unix.DT_LNK}, {"environ", unix.DT_REG},
	{"exe", unix.DT_LNK}, {"fd", unix.DT_DIR}, {"fdinfo", unix.DT_DIR}, {"limits", unix.DT_REG},
	{"maps", unix.DT_REG}, {"mountinfo", unix.DT_REG}, {"mounts", unix.DT_REG}, {"root", unix.DT_LNK},
	{"stat", unix.DT_REG}, {"statm", unix.DT_REG}, {"status", unix.DT_REG},
	{"task", unix.DT_DIR},
}

// procEntryAt returns the /proc directory or symlink at full (a clean
// guest path), if the kernel generates one. follow resolves a final
// /proc/self or /proc/thread-self link to its directory.
func (t *Task) procEntryAt(full string, follow bool) (procEntry, bool) {
	if full == "/proc" {
		return t.procRootEntry(), true
	}
	if full == "/proc/mounts" {
		if !follow {
			return procEntry{path: full, link: "self/mounts"}, true
		}
		return procEntry{}, false
	}
	rest, ok := strings.CutPrefix(full, "/proc/")
	if !ok {
		return procEntry{}, false
	}
	if names, ok := procSysDirs[rest]; ok {
		e := procEntry{path: full, names: names}
		for _, n := range names {
			typ := uint8(unix.DT_REG)
			if _, dir := procSysDirs[rest+"/"+n]; dir {
				typ = unix.DT_DIR
			}
			e.types = append(e.types, typ)
		}
		return e, true
	}
	comps := strings.Split(rest, "/")
	switch comps[0] {
	case "self":
		target := strconv.Itoa(int(t.tg.tgid))
		if len(comps) == 1 && !follow {
			return procEntry{path: full, link: target}, true
		}
		comps[0] = target
	case "thread-self":
		target := strconv.Itoa(int(t.tg.tgid)) + "/task/" + strconv.Itoa(int(t.tid))
		if len(comps) == 1 && !follow {
			return procEntry{path: full, link: target}, true
		}
		comps = append(strings.Split(target, "/"), comps[1:]...)
	}
	target := t.procLookup(comps[0])
	if target == nil {
		return procEntry{}, false
	}
	full = "/proc/" + strings.Join(comps, "/")
	switch {
	case len(comps) == 1:
		return procTaskDir(full, true), true
	case len(comps) == 2 && comps[1] == "task":
		return t.procThreadsEntry(full, target), true
	case len(comps) == 2 && comps[1] == "fd":
		return procFDEntry(full, target), true
	case len(comps) == 2 && comps[1] == "fdinfo":
		return procFDInfoEntry(full, target), true
	case !follow && len(comps) == 2 && (comps[1] == "exe" || comps[1] == "cwd"):
		return procEntry{path: full, link: procTaskLink(target, comps[1])}, true
	case !follow && len(comps) == 2 && comps[1] == "root":
		// The target's root directory as the reader sees it.
		return procEntry{path: full, link: t.tg.fs.View(target.tg.fs.RootPath())}, true
	case !follow && len(comps) == 3 && comps[1] == "fd":
		if link, ok := procFDLink(target, comps[2]); ok {
			return procEntry{path: full, link: link}, true
		}
	case len(comps) >= 3 && comps[1] == "task":
		th := t.procLookup(comps[2])
		if th == nil || th.tg != target.tg {
			return procEntry{}, false
		}
		switch {
		case len(comps) == 3:
			return procTaskDir(full, false), true
		case len(comps) == 4 && comps[3] == "fd":
			return procFDEntry(full, th), true
		}
	}
	return procEntry{}, false
}

// procTaskLink is the target of target's exe or cwd link.
func procTaskLink(target *Task, name string) string {
	tg := target.tg
	switch name {
	case "cwd":
		return tg.fs.Getcwd()
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.exe
}

// procFDLink is the target of /proc/<pid>/fd/<fd> of target's process.
func procFDLink(target *Task, fd string) (string, bool) {
	n, err := strconv.ParseInt(fd, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != fd {
		return "", false
	}
	tg := target.tg
	tg.mu.Lock()
	fdt := tg.fdTable
	tg.mu.Unlock()
	if fdt == nil {
		return "", false
	}
	f, _, err := fdt.Get(int32(n))
	if err != nil {
		return "", false
	}
	defer f.DecRef()
	return f.LinkName(), true
}

// procRootEntry lists /proc: the links to the caller and one directory
// per process of the sandbox, in ascending order.
func (t *Task) procRootEntry() procEntry {
	e := procEntry{path: "/proc", names: []string{"mounts", "self", "sys", "sysvipc", "thread-self"}, types: []uint8{unix.DT_LNK, unix.DT_LNK, unix.DT_DIR, unix.DT_DIR, unix.DT_LNK}}
	for _, name := range procRootFiles() {
		e.names = append(e.names, name)
		e.types = append(e.types, unix.DT_REG)
	}
	ts := t.k.tasks
	ts.mu.Lock()
	var pids []int
	for tid, task := range ts.tids {
		if task.tg.tgid == tid {
			pids = append(pids, int(tid))
		}
	}
	ts.mu.Unlock()
	slices.Sort(pids)
	for _, pid := range pids {
		e.names = append(e.names, strconv.Itoa(pid))
		e.types = append(e.types, unix.DT_DIR)
	}
	return e
}

// procTaskDir is /proc/<pid> (withTask) or /proc/<pid>/task/<tid>.
func procTaskDir(full string, withTask bool) procEntry {
	e := procEntry{path: full}
	for _, f := range procTaskFiles {
		if f.name == "task" && !withTask {
			continue
		}
		e.names = append(e.names, f.name)
		e.types = append(e.types, f.typ)
	}
	return e
}

// procThreadsEntry lists /proc/<pid>/task: the threads of target's process.
func (t *Task) procThreadsEntry(full string, target *Task) procEntry {
	tg := target.tg
	tg.mu.Lock()
	tids := make([]int, 0, len(tg.tasks))
	for _, th := range tg.tasks {
		tids = append(tids, int(th.tid))
	}
	tg.mu.Unlock()
	slices.Sort(tids)
	e := procEntry{path: full}
	for _, tid := range tids {
		e.names = append(e.names, strconv.Itoa(tid))
		e.types = append(e.types, unix.DT_DIR)
	}
	return e
}

// procFDEntry lists /proc/<pid>/fd: one link per open descriptor. The
// listing is taken when the directory is opened, so, unlike Linux's, it
// lacks the descriptor of the directory itself.
func procFDEntry(full string, target *Task) procEntry {
	tg := target.tg
	tg.mu.Lock()
	fdt := tg.fdTable
	tg.mu.Unlock()
	e := procEntry{path: full}
	if fdt == nil {
		return e
	}
	fdt.ForEach(func(fd int32, _ *vfs.File, _ vfs.FDFlags) {
		e.names = append(e.names, strconv.Itoa(int(fd)))
		e.types = append(e.types, unix.DT_LNK)
	})
	return e
}

// procFDInfoEntry lists /proc/<pid>/fdinfo: one file per open descriptor.
func procFDInfoEntry(full string, target *Task) procEntry {
	e := procFDEntry(full, target)
	for i := range e.types {
		e.types[i] = unix.DT_REG
	}
	return e
}

// open opens the entry with open(2) flags (without O_CLOEXEC).
func (e procEntry) open(flags uint32) (*vfs.File, error) {
	if e.link != "" {
		return nil, unix.ELOOP // only reached with O_NOFOLLOW
	}
	if flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
		return nil, unix.EEXIST
	}
	return vfs.NewSyntheticDir(e.path, e.names, e.types, flags)
}

// stat returns the entry's attributes.
func (e procEntry) stat() vfs.Stat {
	if e.link != "" {
		return vfs.SyntheticLinkStat(e.path, e.link)
	}
	return vfs.SyntheticDirStat(e.path)
}
