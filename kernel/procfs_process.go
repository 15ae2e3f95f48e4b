package kernel

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// More per-process files of /proc/<pid>: environ, limits, statm and
// fdinfo/<fd> (sys_procfs.go routes to them).

// procEnviron returns /proc/PID/environ: the bytes of the environment
// area of the initial stack as they are now.
func procEnviron(mm *MM) []byte {
	if mm == nil {
		return nil
	}
	a := mm.args
	if a.End >= a.EnvEnd || a.EnvEnd-a.End > maxCmdline {
		return nil
	}
	buf := make([]byte, a.EnvEnd-a.End)
	return buf[:readPrefix(mm, a.End, buf)]
}

// procLimitNames are the rows of /proc/PID/limits, in RLIMIT_* order:
// name and unit.
var procLimitNames = [rlimitCount][2]string{
	{"Max cpu time", "seconds"}, {"Max file size", "bytes"}, {"Max data size", "bytes"},
	{"Max stack size", "bytes"}, {"Max core file size", "bytes"}, {"Max resident set", "bytes"},
	{"Max processes", "processes"}, {"Max open files", "files"}, {"Max locked memory", "bytes"},
	{"Max address space", "bytes"}, {"Max file locks", "locks"}, {"Max pending signals", "signals"},
	{"Max msgqueue size", "bytes"}, {"Max nice priority", ""}, {"Max realtime priority", ""},
	{"Max realtime timeout", "us"},
}

// procLimits returns /proc/PID/limits in Linux's layout.
func procLimits(tg *ThreadGroup) []byte {
	tg.mu.Lock()
	limits := tg.limits
	tg.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%-25s %-20s %-20s %-10s\n", "Limit", "Soft Limit", "Hard Limit", "Units")
	value := func(v uint64) string {
		if v == rlimitInfinity {
			return "unlimited"
		}
		return strconv.FormatUint(v, 10)
	}
	for i, n := range procLimitNames {
		fmt.Fprintf(&b, "%-25s %-20s %-20s ", n[0], value(limits[i].Cur), value(limits[i].Max))
		if n[1] != "" {
			fmt.Fprintf(&b, "%-10s", n[1])
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// procStatm returns /proc/PID/statm in pages: size and resident (the
// same upper bound as status's VmRSS); the sentry does not tell shared,
// text and data pages apart.
func procStatm(in procTaskInfo) []byte {
	return fmt.Appendf(nil, "%d %d 0 0 0 0 0\n", in.VmSize/pageSize, in.VmRSS/pageSize)
}

// procFDInfo returns /proc/PID/fdinfo/<fd> of target's process: the
// descriptor's offset, flags (O_CLOEXEC for close-on-exec, in octal),
// mount ID and inode.
func procFDInfo(target *Task, fd string) ([]byte, bool) {
	n, err := strconv.ParseInt(fd, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != fd {
		return nil, false
	}
	tg := target.tg
	tg.mu.Lock()
	fdt := tg.fdTable
	tg.mu.Unlock()
	if fdt == nil {
		return nil, false
	}
	f, flags, err := fdt.Get(int32(n))
	if err != nil {
		return nil, false
	}
	defer f.DecRef()
	pos, err := f.Seek(0, unix.SEEK_CUR)
	if err != nil {
		pos = 0
	}
	fl := f.StatusFlags()
	if flags.CloseOnExec {
		fl |= unix.O_CLOEXEC
	}
	st, _ := f.Stat()
	return fmt.Appendf(nil, "pos:\t%d\nflags:\t0%o\nmnt_id:\t%d\nino:\t%d\n", pos, fl, st.DevMinor, st.Ino), true
}
