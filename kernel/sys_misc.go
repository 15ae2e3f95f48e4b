package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

func sysSync(_ *Task, _ *sysArgs) (uint64, error) { return 0, nil }

// sysPause sleeps until a signal arrives: interrupted, it restarts unless
// a handler ran (ERESTARTNOHAND), so only a handled signal ends it.
func sysPause(t *Task, _ *sysArgs) (uint64, error) {
	t.block(nil)
	return 0, errRestartNoHand
}

// taskByTID returns the live task with the given thread ID (0: t); ESRCH
// if there is none, as for a negative ID.
func (t *Task) taskByTID(tid int32) (*Task, error) {
	if tid == 0 {
		return t, nil
	}
	ts := t.k.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if o, ok := ts.tids[tid]; ok {
		return o, nil
	}
	return nil, unix.ESRCH
}

// Kernel identity reported by uname. The release is recent enough for any
// libc's minimum-version check.
const (
	utsSysname = "Linux"
	utsRelease = "6.1.0-snapshotter"
	utsVersion = "#1 SMP PREEMPT_DYNAMIC snapshotter"
	utsMachine = "x86_64"
	utsFieldSz = 65
)

func sysUname(t *Task, a *sysArgs) (uint64, error) {
	var b [6 * utsFieldSz]byte
	for i, s := range []string{utsSysname, t.k.hostname, utsRelease, utsVersion, utsMachine, "(none)"} {
		copy(b[i*utsFieldSz:(i+1)*utsFieldSz-1], s)
	}
	return 0, t.tg.mm.CopyOut(a[0], b[:])
}

// getrandomMax is the most one getrandom returns, as in Linux.
const getrandomMax = 1<<25 - 1

func sysGetrandom(t *Task, a *sysArgs) (uint64, error) {
	if a[2]&^uint64(unix.GRND_NONBLOCK|unix.GRND_RANDOM|unix.GRND_INSECURE) != 0 {
		return 0, unix.EINVAL
	}
	n := min(a[1], getrandomMax)
	buf := make([]byte, min(n, 1<<16))
	for done := uint64(0); done < n; {
		c := min(n-done, uint64(len(buf)))
		randomBytes(buf[:c])
		if err := t.tg.mm.CopyOut(a[0]+done, buf[:c]); err != nil {
			if done > 0 {
				return done, nil
			}
			return 0, err
		}
		done += c
	}
	return n, nil
}

func sysGetcpu(t *Task, a *sysArgs) (uint64, error) {
	for _, addr := range []uint64{a[0], a[1]} {
		if err := t.copyOutUint32(addr, 0); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// sysSysinfo reports the host's memory figures with the kernel's uptime.
func sysSysinfo(t *Task, a *sysArgs) (uint64, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, err
	}
	var b [112]byte
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(t.k.monotonicNow()/nsPerSec))
	for i, l := range si.Loads {
		le.PutUint64(b[8+8*i:], l)
	}
	le.PutUint64(b[32:], si.Totalram)
	le.PutUint64(b[40:], si.Freeram)
	le.PutUint64(b[48:], si.Sharedram)
	le.PutUint64(b[56:], si.Bufferram)
	le.PutUint64(b[64:], si.Totalswap)
	le.PutUint64(b[72:], si.Freeswap)
	t.k.tasks.mu.Lock()
	le.PutUint16(b[80:], uint16(len(t.k.tasks.tids)))
	t.k.tasks.mu.Unlock()
	le.PutUint64(b[88:], si.Totalhigh)
	le.PutUint64(b[96:], si.Freehigh)
	le.PutUint32(b[104:], si.Unit)
	return 0, t.tg.mm.CopyOut(a[0], b[:])
}

// rlimitCount is the number of resource limits (RLIM_NLIMITS).
const rlimitCount = 16

// rlimitInfinity is RLIM_INFINITY.
const rlimitInfinity = ^uint64(0)

// maxNOFILE is the highest RLIMIT_NOFILE (Linux's default nr_open), which
// is also the most descriptors a vfs.FDTable takes.
const maxNOFILE = 1 << 20

// rlimit is one resource limit.
//
// +stateify savable
type rlimit struct {
	Cur, Max uint64
}

// hostLimits returns the sentry's own limits, which a new sandbox inherits
// as a child process would.
func hostLimits() [rlimitCount]rlimit {
	var out [rlimitCount]rlimit
	for i := range out {
		var r unix.Rlimit
		if err := unix.Getrlimit(i, &r); err != nil {
			out[i] = rlimit{rlimitInfinity, rlimitInfinity}
			continue
		}
		out[i] = rlimit{r.Cur, r.Max}
	}
	// The stack is fixed at 8 MiB whatever the host says.
	out[unix.RLIMIT_STACK].Cur = min(out[unix.RLIMIT_STACK].Cur, stackSize)
	nofile := &out[unix.RLIMIT_NOFILE]
	nofile.Cur, nofile.Max = min(nofile.Cur, maxNOFILE), min(nofile.Max, maxNOFILE)
	return out
}

// prlimit gets and optionally sets resource res of tg.
func (t *Task) prlimit(tg *ThreadGroup, res uint64, newAddr, oldAddr uint64) error {
	if res >= rlimitCount {
		return unix.EINVAL
	}
	var nl rlimit
	if newAddr != 0 {
		var b [16]byte
		if err := t.tg.mm.CopyIn(newAddr, b[:]); err != nil {
			return err
		}
		nl = rlimit{binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])}
		if nl.Cur > nl.Max {
			return unix.EINVAL
		}
	}
	if newAddr != 0 && res == unix.RLIMIT_NOFILE {
		if nl.Cur > maxNOFILE {
			return unix.EPERM // beyond nr_open, as Linux says
		}
		if err := tg.fdTable.SetLimit(int(nl.Cur)); err != nil {
			return err
		}
	}
	tg.mu.Lock()
	old := tg.limits[res]
	if newAddr != 0 {
		tg.limits[res] = nl
	}
	tg.mu.Unlock()
	if oldAddr != 0 {
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:], old.Cur)
		binary.LittleEndian.PutUint64(b[8:], old.Max)
		return t.tg.mm.CopyOut(oldAddr, b[:])
	}
	return nil
}

func sysGetrlimit(t *Task, a *sysArgs) (uint64, error) {
	return 0, t.prlimit(t.tg, a[0], 0, a[1])
}

func sysSetrlimit(t *Task, a *sysArgs) (uint64, error) {
	return 0, t.prlimit(t.tg, a[0], a[1], 0)
}

func sysPrlimit64(t *Task, a *sysArgs) (uint64, error) {
	tg, err := t.processByPID(a.Int(0))
	if err != nil {
		return 0, err
	}
	return 0, t.prlimit(tg, a[1], a[2], a[3])
}

// sysGetrusage reports zeros except the CPU times (rusage.go).
func sysGetrusage(t *Task, a *sysArgs) (uint64, error) {
	who := a.Int(0)
	if who != unix.RUSAGE_SELF && who != unix.RUSAGE_CHILDREN && who != unix.RUSAGE_THREAD {
		return 0, unix.EINVAL
	}
	// CPU time as rusage.go measures it; the other fields stay 0.
	var user, sys int64
	tg := t.tg
	tg.mu.Lock()
	switch who {
	case unix.RUSAGE_SELF:
		user, sys = tg.cpuTimesLocked()
	case unix.RUSAGE_THREAD:
		user, sys = t.userTimeLocked(), t.sysTimeLocked()
	case unix.RUSAGE_CHILDREN:
		user, sys = tg.sigs.ChildUser, tg.sigs.ChildSys
	}
	tg.mu.Unlock()
	return 0, t.copyOutRusage(a[1], user, sys)
}

// copyOutRusage writes a struct rusage with user and system time user and
// sys (in nanoseconds) and the other fields 0.
func (t *Task) copyOutRusage(addr uint64, user, sys int64) error {
	var b [144]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(user/nsPerSec))
	binary.LittleEndian.PutUint64(b[8:], uint64(user%nsPerSec/1000))
	binary.LittleEndian.PutUint64(b[16:], uint64(sys/nsPerSec))
	binary.LittleEndian.PutUint64(b[24:], uint64(sys%nsPerSec/1000))
	return t.tg.mm.CopyOut(addr, b[:])
}
