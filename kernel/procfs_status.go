package kernel

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// procTaskInfo is what /proc/PID/status and /proc/PID/stat show about one
// thread and its process, gathered under the kernel's locks and formatted
// without them.
type procTaskInfo struct {
	Name           string
	State          byte // 'R', 'S', 'T' or 'Z'
	Umask          uint32
	Tgid, Pid      int32
	PPid           int32
	Pgid, Sid      int32
	TTYNr, TPgid   int32 // the controlling terminal: stat's tty_nr, tpgid
	Creds          credentials
	Threads        int
	VmSize, VmRSS  uint64 // bytes
	SigPnd, ShdPnd uint64
	SigBlk         uint64
	SigIgn, SigCgt uint64
	UserTicks      uint64 // in clockTicksPerSecond
	SysTicks       uint64
	ExitSignal     int32
	RSSLimit       uint64
	StartBrk       uint64
	StartTicks     uint64 // since the sandbox's clock began
	Args           argArea
}

// procStateNames are the State: words of /proc/PID/status.
var procStateNames = map[byte]string{
	'R': "R (running)",
	'S': "S (sleeping)",
	'T': "T (stopped)",
	'Z': "Z (zombie)",
}

// procInfo gathers procTaskInfo for target, the thread /proc/PID or
// /proc/PID/task/TID names, as seen by the caller t.
//
// VmSize is the sum of the mappings, as on Linux. VmRSS is an upper bound,
// the same sum: the sentry commits memory-file pages on first touch but the
// MM does not count them, so what is resident is not known here.
//
// State is 'R' for the calling thread (it is running the read), 'Z' for a
// process waiting to be reaped, 'T' for a stopped one and 'S' otherwise: the
// sentry does not track whether another thread is in the application or
// blocked in a syscall.
func (t *Task) procInfo(target *Task) procTaskInfo {
	tg := target.tg
	var in procTaskInfo
	ts := t.k.tasks
	ts.mu.Lock()
	in.ExitSignal = tg.exitSignal
	if tg.parent != nil {
		in.PPid = tg.parent.tgid
	} else {
		// The sandbox's first process: to the host it is a child forked
		// with SIGCHLD, which is what it sees natively.
		in.ExitSignal = int32(unix.SIGCHLD)
	}
	zombie := tg.zombie
	ts.mu.Unlock()

	tg.mu.Lock()
	in.Tgid = tg.tgid
	in.StartTicks = nsToTicks(tg.started)
	in.Pid = target.tid
	in.Umask = tg.umask
	in.Pgid, in.Sid = tg.pgid, tg.sid
	noCtty := tg.noCtty
	in.Creds = target.creds
	in.Threads = len(tg.tasks)
	in.SigPnd = target.sig.Pending.Set
	in.ShdPnd = tg.sigs.Pending.Set
	in.SigBlk = target.sig.Mask
	for i, a := range tg.sigs.Actions {
		switch a.Handler {
		case sigDFL:
		case sigIGN:
			in.SigIgn |= 1 << i
		default:
			in.SigCgt |= 1 << i
		}
	}
	user, sys := tg.cpuTimesLocked() // the process's, also in task/TID/stat
	in.UserTicks, in.SysTicks = nsToTicks(user), nsToTicks(sys)
	in.RSSLimit = tg.limits[rlimitRSSIndex].Cur
	stopped := tg.sigs.Stopped
	mm := tg.mm
	if target != tg.leader {
		in.ExitSignal = -1 // threads other than the leader, as on Linux
	}
	tg.mu.Unlock()
	if tty := t.k.controllingTTY(in.Sid); tty != nil && !noCtty {
		// pts minor i: major 136 in bits 8-15, i's low byte in bits
		// 0-7 and its high bits from bit 20, as Linux's new_encode_dev.
		i := int32(tty.Index())
		_, in.TPgid = tty.Session()
		in.TTYNr = 136<<8 | i&0xff | (i&^0xff)<<12
	}

	target.mu.Lock()
	in.Name = target.name
	target.mu.Unlock()

	switch {
	case target == t:
		in.State = 'R'
	case zombie:
		in.State = 'Z'
	case stopped:
		in.State = 'T'
	default:
		in.State = 'S'
	}
	if mm != nil {
		for _, m := range mm.Mappings() {
			in.VmSize += m.End - m.Start
		}
		in.VmRSS = in.VmSize
		mm.mu.RLock()
		in.StartBrk = mm.brkStart
		mm.mu.RUnlock()
		in.Args = mm.args
	}
	return in
}

// nsToTicks converts CPU nanoseconds to clock ticks (USER_HZ).
func nsToTicks(ns int64) uint64 {
	if ns <= 0 {
		return 0
	}
	return uint64(ns) / (1e9 / clockTicksPerSecond)
}

// rlimitRSSIndex is RLIMIT_RSS.
const rlimitRSSIndex = 5

// procStatus formats in as Linux's /proc/PID/status, with the lines the
// sentry can fill (fs/proc/array.c order; the others are left out rather
// than made up).
func procStatus(in procTaskInfo) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Name:\t%s\n", escapeComm(in.Name))
	fmt.Fprintf(&b, "Umask:\t%04o\n", in.Umask)
	fmt.Fprintf(&b, "State:\t%s\n", procStateNames[in.State])
	fmt.Fprintf(&b, "Tgid:\t%d\n", in.Tgid)
	fmt.Fprintf(&b, "Ngid:\t0\n")
	fmt.Fprintf(&b, "Pid:\t%d\n", in.Pid)
	fmt.Fprintf(&b, "PPid:\t%d\n", in.PPid)
	fmt.Fprintf(&b, "TracerPid:\t0\n")
	c := in.Creds
	fmt.Fprintf(&b, "Uid:\t%d\t%d\t%d\t%d\n", c.UID, c.EUID, c.SUID, c.FSUID)
	fmt.Fprintf(&b, "Gid:\t%d\t%d\t%d\t%d\n", c.GID, c.EGID, c.SGID, c.FSGID)
	// Linux separates the groups with spaces and ends the list with one.
	b.WriteString("Groups:\t")
	for i, g := range c.Groups {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d", g)
	}
	b.WriteString(" \n")
	fmt.Fprintf(&b, "NStgid:\t%d\n", in.Tgid)
	fmt.Fprintf(&b, "NSpid:\t%d\n", in.Pid)
	fmt.Fprintf(&b, "NSpgid:\t%d\n", in.Pgid)
	fmt.Fprintf(&b, "NSsid:\t%d\n", in.Sid)
	if in.VmSize != 0 {
		fmt.Fprintf(&b, "VmPeak:\t%8d kB\n", in.VmSize>>10)
		fmt.Fprintf(&b, "VmSize:\t%8d kB\n", in.VmSize>>10)
		fmt.Fprintf(&b, "VmHWM:\t%8d kB\n", in.VmRSS>>10)
		fmt.Fprintf(&b, "VmRSS:\t%8d kB\n", in.VmRSS>>10)
	}
	fmt.Fprintf(&b, "Threads:\t%d\n", in.Threads)
	fmt.Fprintf(&b, "SigPnd:\t%016x\n", in.SigPnd)
	fmt.Fprintf(&b, "ShdPnd:\t%016x\n", in.ShdPnd)
	fmt.Fprintf(&b, "SigBlk:\t%016x\n", in.SigBlk)
	fmt.Fprintf(&b, "SigIgn:\t%016x\n", in.SigIgn)
	fmt.Fprintf(&b, "SigCgt:\t%016x\n", in.SigCgt)
	fmt.Fprintf(&b, "CapInh:\t%016x\n", c.CapInheritable)
	fmt.Fprintf(&b, "CapPrm:\t%016x\n", c.CapPermitted)
	fmt.Fprintf(&b, "CapEff:\t%016x\n", c.CapEffective)
	fmt.Fprintf(&b, "CapBnd:\t%016x\n", c.CapBounding)
	fmt.Fprintf(&b, "CapAmb:\t%016x\n", c.CapAmbient)
	fmt.Fprintf(&b, "NoNewPrivs:\t%d\n", boolToUint64(c.NoNewPrivs))
	return []byte(b.String())
}

// escapeComm escapes a name as /proc/PID/status shows it (Linux's
// seq_escape with "\n\\"): a newline as "\n" and a backslash as "\\".
func escapeComm(s string) string {
	return strings.NewReplacer("\\", "\\\\", "\n", "\\n").Replace(s)
}

// tpgid is stat's tpgid: -1 without a controlling terminal.
func tpgid(in procTaskInfo) int32 {
	if in.TTYNr == 0 {
		return -1
	}
	return in.TPgid
}

// procStat formats in as Linux's /proc/PID/stat: 52 space-separated fields
// (proc(5)), the comm in parentheses unescaped. Fields the sentry does not
// know are 0: flags, the fault counts, the children's times, the code, data
// and stack addresses and wchan; tty_nr is 0 and tpgid -1 without a
// controlling terminal. starttime counts from the start of the sandbox's clock, as
// /proc/uptime does.
func procStat(in procTaskInfo) []byte {
	return fmt.Appendf(nil,
		"%d (%s) %c %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d\n",
		in.Pid, in.Name, in.State, in.PPid, in.Pgid, in.Sid,
		in.TTYNr, tpgid(in),
		0, // flags
		0, // minflt
		0, // cminflt
		0, // majflt
		0, // cmajflt
		in.UserTicks, in.SysTicks,
		0,  // cutime
		0,  // cstime
		20, // priority
		0,  // nice
		in.Threads,
		0, // itrealvalue
		in.StartTicks,
		in.VmSize,
		in.VmRSS/pageSize,
		in.RSSLimit,
		0, 0, 0, // startcode, endcode, startstack
		0, 0, // kstkesp, kstkeip
		in.SigPnd|in.ShdPnd, in.SigBlk, in.SigIgn, in.SigCgt,
		0, 0, 0, // wchan, nswap, cnswap
		in.ExitSignal,
		0, 0, 0, // processor, rt_priority, policy
		0, 0, 0, // delayacct_blkio_ticks, guest_time, cguest_time
		0, 0, in.StartBrk, // start_data, end_data, start_brk
		in.Args.Start, in.Args.End, in.Args.End, in.Args.EnvEnd,
		0, // exit_code
	)
}
