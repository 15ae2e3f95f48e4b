// Package benchdata is a synthetic kernel-like object graph for the
// stateify benchmarks, which encode the same data with stateify,
// encoding/gob and msgpack (reflection). Fields are exported so that the
// reflection-based encoders see them; the graph has shared pointers but no
// cycles, because gob and msgpack cannot encode cycles.
package benchdata

//go:generate go run snapshotter/tools/stategen
// +stateify package=snapshotter/stateify/internal/benchdata

import "fmt"

// Kernel is the root.
//
// +stateify savable
type Kernel struct {
	Tasks        []*Task
	ThreadGroups map[int32]*ThreadGroup
	Files        []*File
	Hostname     string
	Monotonic    int64
	NextPID      int32
}

// ThreadGroup is shared by the tasks of one process.
//
// +stateify savable
type ThreadGroup struct {
	TGID       int32
	Limits     [16]Rlimit
	SigActions [64]SigAction
	Exe        string
}

// Rlimit is one resource limit.
//
// +stateify savable
type Rlimit struct {
	Cur, Max uint64
}

// SigAction is one signal disposition.
//
// +stateify savable
type SigAction struct {
	Handler  uint64
	Flags    uint64
	Restorer uint64
	Mask     uint64
}

// Regs is a saved register file.
//
// +stateify savable
type Regs struct {
	GPR    [16]uint64
	IP, SP uint64
	Flags  uint64
	FSBase uint64
}

// Task is one thread.
//
// +stateify savable
type Task struct {
	TID      int32
	Name     string
	TG       *ThreadGroup
	Regs     Regs
	FDs      map[int32]*FD
	SigMask  uint64
	Pending  [2]uint64
	Creds    Creds
	Cwd      string
	State    int32
	Children []int32
	Robust   bool
}

// Creds are a task's credentials.
//
// +stateify savable
type Creds struct {
	UID, GID, EUID, EGID uint32
	Groups               []uint32
	Caps                 uint64
}

// FD is one file descriptor table entry.
//
// +stateify savable
type FD struct {
	File    *File
	Flags   uint32
	CloExec bool
}

// File is an open file description, shared by FDs.
//
// +stateify savable
type File struct {
	Path   string
	Offset int64
	Flags  uint32
	Mode   uint32
	Data   []byte
}

// New builds a graph of tasks tasks in groups of perGroup, each with an FD
// table of fds entries pointing at shared files.
func New(tasks, perGroup, fds int) *Kernel {
	k := &Kernel{ThreadGroups: map[int32]*ThreadGroup{}, Hostname: "sandbox", Monotonic: 123456789, NextPID: int32(tasks + 1)}
	for i := range 64 {
		k.Files = append(k.Files, &File{Path: fmt.Sprintf("/usr/lib/lib%d.so", i), Offset: int64(i * 4096), Flags: 0x8000, Mode: 0o644, Data: []byte("hdr")})
	}
	var tg *ThreadGroup
	for i := range tasks {
		if i%perGroup == 0 {
			tg = &ThreadGroup{TGID: int32(i + 1), Exe: "/bin/worker"}
			for j := range tg.Limits {
				tg.Limits[j] = Rlimit{Cur: uint64(j) << 20, Max: ^uint64(0)}
			}
			for j := range tg.SigActions {
				tg.SigActions[j] = SigAction{Handler: uint64(j % 3), Flags: 0x04000000, Mask: uint64(j)}
			}
			k.ThreadGroups[tg.TGID] = tg
		}
		t := &Task{
			TID: int32(i + 1), Name: fmt.Sprintf("worker-%d", i), TG: tg,
			FDs: make(map[int32]*FD, fds), SigMask: 1 << 13, Pending: [2]uint64{0, 1 << 40},
			Creds: Creds{UID: 1000, GID: 1000, EUID: 1000, EGID: 1000, Groups: []uint32{1000, 27}, Caps: 0},
			Cwd:   "/home/user", State: int32(i % 4), Robust: i%2 == 0,
		}
		for j := range t.Regs.GPR {
			t.Regs.GPR[j] = uint64(i*j) * 0x9e3779b97f4a7c15
		}
		t.Regs.IP, t.Regs.SP, t.Regs.Flags, t.Regs.FSBase = 0x401000+uint64(i), 0x7ffe0000-uint64(i*64), 0x202, 0x7f0000000000
		for j := range fds {
			f := k.Files[(i+j)%len(k.Files)]
			if j < 3 {
				f = k.Files[j] // stdio shared by everyone
			}
			t.FDs[int32(j)] = &FD{File: f, Flags: uint32(j), CloExec: j > 2}
		}
		if i%perGroup == 0 {
			t.Children = []int32{int32(i + 2), int32(i + 3)}
		}
		k.Tasks = append(k.Tasks, t)
	}
	return k
}
