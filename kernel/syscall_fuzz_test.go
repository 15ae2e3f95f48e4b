package kernel

import (
	"io"
	"math/rand"
	"os"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
	"snapshotter/platform"
)

// nopAS is an address space that accepts every request and keeps nothing,
// for tests that make mappings of any size.
type nopAS struct{}

func (nopAS) MapFile(addr, offset, length uint64, at platform.AccessType, precommit bool) error {
	return nil
}
func (nopAS) Unmap(addr, length uint64) error { return nil }
func (nopAS) Release()                        {}

// newUnitTask returns a task in a kernel without a platform: enough to
// call syscall handlers directly. Its address space is a nopAS.
func newUnitTask(t testing.TB) *Task {
	t.Helper()
	mm, err := NewMM(newTestMemoryFile(t), nopAS{}, testMinAddr, testMaxAddr)
	if err != nil {
		t.Fatal(err)
	}
	root, err := vfs.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	k := &Kernel{mf: mm.mf, tasks: newTaskSet(), root: root, locks: newFileLocks(), hostname: "unit", limits: Limits{}.withDefaults(), log: io.Discard, exited: make(chan struct{})}
	k.stopCond = sync.NewCond(&k.stopMu)
	k.unimplLogged = map[unsupportedKey]bool{}
	fdt := vfs.NewFDTable()
	t.Cleanup(fdt.Close)
	for i := range 3 {
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { null.Close() })
		f, err := vfs.NewStdio(i, null)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fdt.NewFD(int32(i), f, vfs.FDFlags{}); err != nil {
			t.Fatal(err)
		}
		f.DecRef()
	}
	tg := &ThreadGroup{k: k, tgid: 1, mm: mm, fdTable: fdt, fs: vfs.NewFS(root), pgid: 1, sid: 1, umask: 0o22, limits: hostLimits()}
	task := &Task{k: k, tg: tg, tid: 1, runState: stateApp, name: "unit", creds: hostCredentials()}
	tg.leader = task
	tg.tasks = []*Task{task}
	k.tasks.tids[1] = task
	k.tasks.init = tg
	return task
}

// TestSyscallsHostileArguments calls every syscall handler that does not
// need a platform with random, hostile arguments: none may panic. The task
// has an interrupt pending, so that handlers which block return at once.
func TestSyscallsHostileArguments(t *testing.T) {
	skip := map[uintptr]bool{
		// Need a platform (new address spaces or threads).
		// clone3 too: its arguments are read from memory, which an
		// earlier call (shmat of ID 0) may have mapped.
		unix.SYS_CLONE: true, unix.SYS_CLONE3: true, unix.SYS_FORK: true, unix.SYS_VFORK: true,
		unix.SYS_EXECVE: true, unix.SYS_EXECVEAT: true,
	}
	task := newUnitTask(t)
	mm := task.tg.mm
	buf, err := mm.MMap(MMapOpts{Length: 4 * pageSize, Perms: permRead | permWrite, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	interesting := []uint64{0, 1, 2, 3, 8, 16, 64, 4096, 1 << 20, 1 << 31, 1 << 32, 1<<63 - 1, 1 << 63, ^uint64(0), ^uint64(0) - 99,
		uint64(uint32(0xffffff9c)), buf, buf + pageSize - 1, buf + 4*pageSize - 8, buf + 4*pageSize}
	arg := func() uint64 {
		if rng.Intn(4) == 0 {
			return rng.Uint64() >> uint(rng.Intn(64))
		}
		return interesting[rng.Intn(len(interesting))]
	}
	for nr := range uintptr(syscallTableSize) {
		e := syscallTable[nr]
		if e.fn == nil || skip[nr] {
			continue
		}
		start := time.Now()
		for range 200 {
			a := sysArgs{arg(), arg(), arg(), arg(), arg(), arg()}
			task.mu.Lock()
			task.interruptPending = true
			task.mu.Unlock()
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("syscall %s%v panicked: %v\n%s", e.name, a, r, debug.Stack())
					}
				}()
				e.fn(task, &a)
			}()
			// Keep the process usable: exit and exit_group only mark it.
			task.tg.mu.Lock()
			task.tg.exiting = false
			task.tg.mu.Unlock()
			task.exitRequested = false
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Logf("%s took %v", e.name, d)
		}
	}
}
