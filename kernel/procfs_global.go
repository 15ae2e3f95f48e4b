package kernel

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// The files of /proc that describe the sandbox as a whole (meminfo,
// cpuinfo, stat, uptime, loadavg, filesystems) and the few of /proc/sys
// programs read. Every figure is the sandbox's own: its memory file and
// --memory, its clock, its tasks, and the CPU model from CPUID. The
// host's /proc is never read.

// procGlobalFiles are the generated files of /proc outside /proc/<pid>, by
// path below /proc.
var procGlobalFiles = map[string]func(t *Task) []byte{
	"meminfo":                  procMeminfo,
	"cpuinfo":                  procCpuinfo,
	"stat":                     procKernelStat,
	"uptime":                   procUptime,
	"loadavg":                  procLoadavg,
	"filesystems":              procFilesystems,
	"version":                  func(*Task) []byte { return []byte(utsSysname + " version " + utsRelease + " " + utsVersion + "\n") },
	"sys/kernel/hostname":      func(t *Task) []byte { return []byte(t.k.hostname + "\n") },
	"sys/kernel/osrelease":     func(*Task) []byte { return []byte(utsRelease + "\n") },
	"sys/kernel/ostype":        func(*Task) []byte { return []byte(utsSysname + "\n") },
	"sys/kernel/pid_max":       func(*Task) []byte { return []byte(fmt.Sprintf("%d\n", pidMax)) },
	"sys/vm/overcommit_memory": func(*Task) []byte { return []byte("0\n") },
	"sysvipc/msg":              procSysvipcMsg,
	"sysvipc/sem":              procSysvipcSem,
	"sysvipc/shm":              procSysvipcShm,
}

// procSysDirs are the directories of /proc/sys, and /proc/sysvipc, the
// kernel lists.
var procSysDirs = map[string][]string{
	"sys":        {"kernel", "vm"},
	"sys/kernel": {"hostname", "osrelease", "ostype", "pid_max"},
	"sys/vm":     {"overcommit_memory"},
	"sysvipc":    {"msg", "sem", "shm"},
}

// pidMax is /proc/sys/kernel/pid_max: Linux's default on 64-bit machines.
const pidMax = 4194304

// procRootFiles are the regular files procRootEntry lists.
func procRootFiles() []string {
	var names []string
	for name := range procGlobalFiles {
		if !strings.Contains(name, "/") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// sandboxCPUs returns how many CPUs the sandbox has (the sentry's).
func (k *Kernel) sandboxCPUs() int {
	n := 0
	for _, b := range k.cpus.mask {
		n += bits.OnesCount8(b)
	}
	return max(n, 1)
}

// memTotal returns the sandbox's memory: --memory, or the host's RAM.
func (k *Kernel) memTotal() uint64 {
	var si unix.Sysinfo_t
	host := uint64(0)
	if unix.Sysinfo(&si) == nil {
		host = si.Totalram * uint64(max(si.Unit, 1))
	}
	if lim := k.limits.Memory; lim != 0 && lim < MaxMemory && (host == 0 || lim < host) {
		return lim
	}
	return host
}

// procMeminfo is /proc/meminfo: MemTotal is the sandbox's memory and
// MemFree what its memory file does not hold for mappings (the file
// cache's retained pages count as free: no mapping holds them); there
// is no swap, cache or buffer of the sandbox's own.
func procMeminfo(t *Task) []byte {
	total := t.k.memTotal()
	used := t.k.mf.allocatedBytes()
	free := total - min(used, total)
	var b strings.Builder
	for _, f := range []struct {
		name string
		v    uint64
	}{
		{"MemTotal", total}, {"MemFree", free}, {"MemAvailable", free}, {"Buffers", 0}, {"Cached", 0},
		{"SwapCached", 0}, {"Active", used}, {"Inactive", 0}, {"SwapTotal", 0}, {"SwapFree", 0},
		{"Dirty", 0}, {"Writeback", 0}, {"AnonPages", used}, {"Mapped", 0}, {"Shmem", 0},
		{"Slab", 0}, {"SReclaimable", 0}, {"SUnreclaim", 0}, {"CommitLimit", total}, {"Committed_AS", used},
	} {
		fmt.Fprintf(&b, "%-16s%8d kB\n", f.name+":", f.v>>10)
	}
	return []byte(b.String())
}

// cpuFlags are the /proc/cpuinfo flags read from CPUID leaf 1 (EDX, ECX)
// and leaf 7 (EBX).
var cpuFlags = []struct {
	leaf, reg, bit uint32 // reg: 0 EBX, 1 ECX, 2 EDX
	name           string
}{
	{1, 2, 0, "fpu"}, {1, 2, 4, "tsc"}, {1, 2, 8, "cx8"}, {1, 2, 15, "cmov"}, {1, 2, 23, "mmx"},
	{1, 2, 24, "fxsr"}, {1, 2, 25, "sse"}, {1, 2, 26, "sse2"}, {1, 2, 28, "ht"},
	{1, 1, 0, "pni"}, {1, 1, 1, "pclmulqdq"}, {1, 1, 9, "ssse3"}, {1, 1, 12, "fma"}, {1, 1, 13, "cx16"},
	{1, 1, 19, "sse4_1"}, {1, 1, 20, "sse4_2"}, {1, 1, 22, "movbe"}, {1, 1, 23, "popcnt"},
	{1, 1, 25, "aes"}, {1, 1, 26, "xsave"}, {1, 1, 28, "avx"}, {1, 1, 29, "f16c"}, {1, 1, 30, "rdrand"},
	{7, 0, 3, "bmi1"}, {7, 0, 5, "avx2"}, {7, 0, 8, "bmi2"}, {7, 0, 9, "erms"}, {7, 0, 16, "avx512f"},
	{7, 0, 18, "rdseed"}, {7, 0, 19, "adx"}, {7, 0, 29, "sha_ni"},
}

// cpuModel is what CPUID says about the CPU, for /proc/cpuinfo.
type cpuModel struct {
	vendor, name                 string
	family, model, stepping, mhz uint32
	flags                        []string
}

// readCPUModel reads the CPU's vendor, brand string, signature, base
// frequency and feature flags with CPUID.
func readCPUModel() cpuModel {
	var m cpuModel
	maxLeaf, b, c, d := cpuid(0, 0)
	var v [12]byte
	binary.LittleEndian.PutUint32(v[0:], b)
	binary.LittleEndian.PutUint32(v[4:], d)
	binary.LittleEndian.PutUint32(v[8:], c)
	m.vendor = string(v[:])
	a1, _, c1, d1 := cpuid(1, 0)
	m.stepping = a1 & 0xf
	m.model = a1 >> 4 & 0xf
	m.family = a1 >> 8 & 0xf
	if m.family == 0xf {
		m.family += a1 >> 20 & 0xff
	}
	if m.family >= 6 {
		m.model += (a1 >> 16 & 0xf) << 4
	}
	var b7 uint32
	if maxLeaf >= 7 {
		_, b7, _, _ = cpuid(7, 0)
	}
	if maxLeaf >= 0x16 {
		a16, _, _, _ := cpuid(0x16, 0)
		m.mhz = a16 & 0xffff
	}
	regs := map[uint32][3]uint32{1: {0, c1, d1}, 7: {b7, 0, 0}}
	for _, f := range cpuFlags {
		if regs[f.leaf][f.reg]>>f.bit&1 != 0 {
			m.flags = append(m.flags, f.name)
		}
	}
	if maxExt, _, _, _ := cpuid(0x80000000, 0); maxExt >= 0x80000004 {
		var brand [48]byte
		for i := uint32(0); i < 3; i++ {
			a, b, c, d := cpuid(0x80000002+i, 0)
			for j, r := range []uint32{a, b, c, d} {
				binary.LittleEndian.PutUint32(brand[16*i+4*uint32(j):], r)
			}
		}
		m.name = strings.TrimSpace(strings.TrimRight(string(brand[:]), "\x00"))
	}
	return m
}

// procCpuinfo is /proc/cpuinfo: one block per CPU of the sandbox, with
// the model CPUID reports.
func procCpuinfo(t *Task) []byte {
	m := readCPUModel()
	n := t.k.sandboxCPUs()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "processor\t: %d\nvendor_id\t: %s\ncpu family\t: %d\nmodel\t\t: %d\nmodel name\t: %s\nstepping\t: %d\n",
			i, m.vendor, m.family, m.model, m.name, m.stepping)
		if m.mhz != 0 {
			fmt.Fprintf(&b, "cpu MHz\t\t: %d.000\n", m.mhz)
		}
		fmt.Fprintf(&b, "physical id\t: 0\nsiblings\t: %d\ncore id\t\t: %d\ncpu cores\t: %d\napicid\t\t: %d\nfpu\t\t: yes\nfpu_exception\t: yes\nwp\t\t: yes\nflags\t\t: %s\nclflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 48 bits physical, 48 bits virtual\n\n",
			n, i, n, i, strings.Join(m.flags, " "))
	}
	return []byte(b.String())
}

// sandboxTicks returns the user and system CPU time of every process of
// the sandbox, in clock ticks.
func (k *Kernel) sandboxTicks() (user, sys uint64) {
	seen := map[*ThreadGroup]bool{}
	for _, t := range k.tasks.all() {
		tg := t.tg
		if seen[tg] {
			continue
		}
		seen[tg] = true
		tg.mu.Lock()
		u, s := tg.cpuTimesLocked()
		user += nsToTicks(u)
		sys += nsToTicks(s)
		tg.mu.Unlock()
	}
	return user, sys
}

// procKernelStat is /proc/stat: CPU time (the sandbox's processes' user
// and system time, the rest of its clock idle, split evenly between its
// CPUs), its boot time, how many processes it started and how many tasks
// run now.
func procKernelStat(t *Task) []byte {
	k := t.k
	n := uint64(k.sandboxCPUs())
	up := nsToTicks(k.monotonicNow())
	user, sys := k.sandboxTicks()
	idle := up*n - min(up*n, user+sys)
	var b strings.Builder
	line := func(name string, d uint64) {
		fmt.Fprintf(&b, "%s %d 0 %d %d 0 0 0 0 0 0\n", name, user/d, sys/d, idle/d)
	}
	line("cpu ", 1)
	for i := range n {
		line(fmt.Sprintf("cpu%d", i), n)
	}
	k.tasks.mu.Lock()
	started := k.tasks.nextTID - 1
	k.tasks.mu.Unlock()
	btime := (k.realtimeNow() - k.monotonicNow()) / nsPerSec
	fmt.Fprintf(&b, "intr 0\nctxt 0\nbtime %d\nprocesses %d\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n", btime, started)
	return []byte(b.String())
}

// procUptime is /proc/uptime: the sandbox's CLOCK_MONOTONIC and the idle
// time of its CPUs, in seconds.
func procUptime(t *Task) []byte {
	k := t.k
	up := k.monotonicNow()
	user, sys := k.sandboxTicks()
	busy := int64(user+sys) * (nsPerSec / clockTicksPerSecond)
	idle := max(up*int64(k.sandboxCPUs())-busy, 0)
	return fmt.Appendf(nil, "%d.%02d %d.%02d\n", up/nsPerSec, up%nsPerSec/1e7, idle/nsPerSec, idle%nsPerSec/1e7)
}

// procLoadavg is /proc/loadavg. The sandbox keeps no load averages
// (0.00); the running and total task counts and the last process ID are
// its own.
func procLoadavg(t *Task) []byte {
	k := t.k
	k.tasks.mu.Lock()
	tasks, last := len(k.tasks.tids), k.tasks.nextTID-1
	k.tasks.mu.Unlock()
	return fmt.Appendf(nil, "0.00 0.00 0.00 1/%d %d\n", tasks, last)
}

// procNodevTypes are the filesystem types /proc/filesystems may list
// besides proc, sysfs and tmpfs, when a mount of the sandbox has one. (The
// read-only host root is none of Linux's types.)
var procNodevTypes = map[string]bool{"devtmpfs": true, "devpts": true, "mqueue": true, "overlay": true}

// procFilesystems is /proc/filesystems: the types of the sandbox's
// filesystems, all without a device (nodev).
func procFilesystems(t *Task) []byte {
	types := []string{"proc", "sysfs", "tmpfs"}
	for _, l := range strings.Split(string(t.k.root.Mounts().ProcMounts()), "\n") {
		if f := strings.Fields(l); len(f) > 2 && procNodevTypes[f[2]] && !slices.Contains(types, f[2]) {
			types = append(types, f[2])
		}
	}
	var b strings.Builder
	for _, ty := range types {
		b.WriteString("nodev\t" + ty + "\n")
	}
	return []byte(b.String())
}
