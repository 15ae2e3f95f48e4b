package kernel

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"snapshotter/kernel/vfs"
)

// The sandbox's /proc is the sentry's (the host's is never looked up): a
// filesystem of the mount table (vfs's procFS) that asks the caller's
// procView (procfs_view.go) for what it holds. The kernel generates the
// per-process files programs read about themselves when they are opened
// (vfs.NewSynthetic); procfs_dirs.go has the directories and links.

// procSelfFile returns the guest path and (if withData) the contents of the
// per-process file at full (a clean guest path under /proc), if the kernel
// generates it: maps, comm, cmdline, status, stat, mounts and mountinfo under /proc/self, /proc/<pid>
// (any process or thread of the sandbox), /proc/thread-self and
// /proc/<pid>/task/<tid>.
func (t *Task) procSelfFile(full string, withData bool) (string, []byte, bool) {
	if full == "/proc/mounts" {
		full = "/proc/self/mounts" // the link /proc/mounts, followed
	}
	rest, ok := strings.CutPrefix(full, "/proc/")
	if !ok {
		return "", nil, false
	}
	if gen, ok := procGlobalFiles[rest]; ok {
		if !withData {
			return full, nil, true
		}
		return full, gen(t), true
	}
	who, file, ok := strings.Cut(rest, "/")
	if !ok {
		return "", nil, false
	}
	var target *Task
	switch who {
	case "self":
		target = t.procLeader(t.tg)
	case "thread-self":
		target = t
	default:
		if target = t.procLookup(who); target == nil {
			return "", nil, false
		}
	}
	if target == nil {
		return "", nil, false
	}
	if task, ok := strings.CutPrefix(file, "task/"); ok {
		// /proc/<pid>/task/<tid>/<file>: a thread of that process.
		tid, f, ok := strings.Cut(task, "/")
		if !ok {
			return "", nil, false
		}
		th := t.procLookup(tid)
		if th == nil || th.tg != target.tg {
			return "", nil, false
		}
		target, file = th, f
	}
	var gen func() []byte
	switch file {
	case "maps":
		gen = func() []byte { return procMaps(procMM(target.tg).Mappings()) }
	case "comm":
		gen = func() []byte {
			target.mu.Lock()
			defer target.mu.Unlock()
			return []byte(target.name + "\n")
		}
	case "cmdline":
		gen = func() []byte { return procCmdline(procMM(target.tg)) }
	case "status":
		gen = func() []byte { return procStatus(t.procInfo(target)) }
	case "stat":
		gen = func() []byte { return procStat(t.procInfo(target)) }
	case "mounts":
		gen = t.k.root.Mounts().ProcMounts
	case "mountinfo":
		gen = t.k.root.Mounts().ProcMountinfo
	case "environ":
		gen = func() []byte { return procEnviron(procMM(target.tg)) }
	case "limits":
		gen = func() []byte { return procLimits(target.tg) }
	case "statm":
		gen = func() []byte { return procStatm(t.procInfo(target)) }
	default:
		if fd, ok := strings.CutPrefix(file, "fdinfo/"); ok {
			data, ok := procFDInfo(target, fd)
			if !ok {
				return "", nil, false
			}
			gen = func() []byte { return data }
			break
		}
		return "", nil, false
	}
	if !withData {
		return full, nil, true
	}
	return full, gen(), true
}

// procWritable returns the writer of the generated /proc file at full
// (procSelfFile's path) that accepts writes, or nil: /proc/<pid>/comm and
// /proc/<pid>/task/<tid>/comm of the caller's own process.
func (t *Task) procWritable(full string) vfs.SyntheticWriter {
	rest, ok := strings.CutSuffix(strings.TrimPrefix(full, "/proc/"), "/comm")
	if !ok {
		return nil
	}
	comps := strings.Split(rest, "/")
	var target *Task
	switch {
	case len(comps) == 1 && comps[0] == "self":
		target = t.procLeader(t.tg)
	case len(comps) == 1 && comps[0] == "thread-self":
		target = t
	case len(comps) == 1:
		target = t.procLookup(comps[0])
		if target != nil {
			target = t.procLeader(target.tg)
		}
	case len(comps) == 3 && comps[1] == "task":
		target = t.procLookup(comps[2])
	}
	if target == nil || target.tg != t.tg {
		return nil
	}
	return &procCommWriter{T: target}
}

// procCommWriter renames a thread by a write to its comm file, as Linux's
// comm_write: the first 15 bytes up to a NUL, a newline included.
//
// +stateify savable
type procCommWriter struct {
	T *Task
}

// WriteSynthetic implements vfs.SyntheticWriter.
func (w *procCommWriter) WriteSynthetic(p []byte) (int, error) {
	name := p[:min(len(p), taskCommLen-1)]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	w.T.mu.Lock()
	w.T.name = string(name)
	w.T.mu.Unlock()
	return len(p), nil
}

// procLeader returns the thread whose ID is tg's process ID, the one
// /proc/<pid> describes.
func (t *Task) procLeader(tg *ThreadGroup) *Task {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.leader
}

// procMM returns tg's address space for a reader that may be in another
// process. (execve replaces tg.mm; a released MM reads as empty.)
func procMM(tg *ThreadGroup) *MM {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.mm
}

// procLookup returns the live thread whose ID is the decimal s, or nil.
func (t *Task) procLookup(s string) *Task {
	id, err := strconv.ParseInt(s, 10, 32)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return nil
	}
	ts := t.k.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.tids[int32(id)]
}

// procMaps formats mappings as Linux's /proc/PID/maps. The offset, device
// and inode columns are those of the host file for mappings of cached host
// files (mm_filecache.go) and 0 for everything else (anonymous memory, and
// memfds, whose pages are copied).
func procMaps(ms []VMAInfo) []byte {
	var b strings.Builder
	for _, m := range ms {
		sp := byte('s')
		if m.Private {
			sp = 'p'
		}
		line := fmt.Sprintf("%08x-%08x %s%c %08x %02x:%02x %d ", m.Start, m.End, m.Perms, sp, m.Offset, m.DevMajor, m.DevMinor, m.Ino)
		b.WriteString(line)
		if m.Name != "" {
			// Linux pads the name to column 74 (25 + 6 pointer widths).
			if pad := 73 - len(line); pad > 0 {
				b.WriteString(strings.Repeat(" ", pad))
			}
			b.WriteString(m.Name)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
