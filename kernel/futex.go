package kernel

import (
	"sync"

	"golang.org/x/sys/unix"
)

// futex operations (linux/futex.h).
const (
	futexWait           = 0
	futexWake           = 1
	futexRequeue        = 3
	futexCmpRequeue     = 4
	futexWakeOp         = 5
	futexWaitBitset     = 9
	futexWakeBitset     = 10
	futexPrivateFlag    = 128
	futexClockRealtime  = 256
	futexCmdMask        = ^(futexPrivateFlag | futexClockRealtime)
	futexBitsetMatchAny = 0xffffffff
)

// futexWaiter is one task blocked in FUTEX_WAIT.
type futexWaiter struct {
	// addr is the futex's key in its table (futexKey).
	addr   uint64
	bitset uint32
	woken  chan struct{}
}

// futexTable holds the waiters of one address space, keyed by address.
// Waiters are not saved: a save interrupts them and their FUTEX_WAIT
// restarts after restore, re-checking the futex word.
type futexTable struct {
	mu      sync.Mutex
	waiters map[uint64][]*futexWaiter
}

// futexes returns the process's futex table.
func (tg *ThreadGroup) futexes() *futexTable {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.futex == nil {
		tg.futex = &futexTable{waiters: map[uint64][]*futexWaiter{}}
	}
	return tg.futex
}

func (ft *futexTable) remove(w *futexWaiter) {
	ws := ft.waiters[w.addr]
	for i, o := range ws {
		if o == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(ft.waiters, w.addr)
	} else {
		ft.waiters[w.addr] = ws
	}
}

// sharedFutexes returns the kernel's table of futexes in shared memory,
// keyed by memory file offset.
func (k *Kernel) sharedFutexes() *futexTable {
	k.sharedFutexOnce.Do(func() { k.sharedFutex = &futexTable{waiters: map[uint64][]*futexWaiter{}} })
	return k.sharedFutex
}

// futexKey returns the table and key of the futex word at addr. A futex
// that is not FUTEX_PRIVATE_FLAG in a shared mapping (MAP_SHARED memory,
// a tmpfs file, a memfd, System V shared memory) is keyed by its page's
// offset in the memory file, in the kernel's table, so that every process
// that maps the page finds the same waiters (Linux keys it by inode and
// offset); any other is the process's, keyed by address.
func (t *Task) futexKey(addr uint64, op int) (*futexTable, uint64) {
	if op&futexPrivateFlag == 0 {
		if off, ok := t.tg.mm.sharedOffset(addr); ok {
			return t.k.sharedFutexes(), off
		}
	}
	return t.tg.futexes(), addr
}

func sysFutex(t *Task, a *sysArgs) (uint64, error) {
	addr, op, val := a[0], int(a.Int(1)), uint32(a[2])
	if addr&3 != 0 {
		return 0, unix.EINVAL
	}
	ft, key := t.futexKey(addr, op)
	switch op & futexCmdMask {
	case futexWait, futexWaitBitset:
		bitset := uint32(futexBitsetMatchAny)
		if op&futexCmdMask == futexWaitBitset {
			if bitset = uint32(a[5]); bitset == 0 {
				return 0, unix.EINVAL
			}
		}
		deadline := int64(-1)
		if a[3] != 0 {
			d, err := t.copyInTimespec(a[3])
			if err != nil {
				return 0, err
			}
			if op&futexCmdMask == futexWait {
				deadline = saturatingAdd(t.k.monotonicNow(), d) // relative
			} else if op&futexClockRealtime != 0 {
				deadline = saturatingAdd(t.k.monotonicNow(), d-t.k.realtimeNow())
			} else {
				deadline = d // absolute CLOCK_MONOTONIC
			}
		}
		ft.mu.Lock()
		cur, err := t.copyInUint32(addr)
		if err != nil {
			ft.mu.Unlock()
			return 0, err
		}
		if cur != val {
			ft.mu.Unlock()
			return 0, unix.EAGAIN
		}
		w := &futexWaiter{addr: key, bitset: bitset, woken: make(chan struct{})}
		ft.waiters[key] = append(ft.waiters[key], w)
		ft.mu.Unlock()
		var timedOut bool
		if deadline >= 0 {
			timedOut, err = t.blockUntil(w.woken, deadline)
		} else {
			err = t.block(w.woken)
		}
		ft.mu.Lock()
		defer ft.mu.Unlock()
		select {
		case <-w.woken:
			return 0, nil // woken, even if a timeout or interrupt raced
		default:
		}
		ft.remove(w)
		if timedOut {
			return 0, unix.ETIMEDOUT
		}
		return 0, err
	case futexWake, futexWakeBitset:
		bitset := uint32(futexBitsetMatchAny)
		if op&futexCmdMask == futexWakeBitset {
			if bitset = uint32(a[5]); bitset == 0 {
				return 0, unix.EINVAL
			}
		}
		return uint64(ft.wake(key, val, bitset)), nil
	case futexRequeue, futexCmpRequeue:
		return futexDoRequeue(t, op, a)
	case futexWakeOp:
		return futexDoWakeOp(t, op, a)
	default:
		return 0, unix.ENOSYS
	}
}

// wake wakes up to n waiters on addr whose bitset intersects bitset and
// returns how many it woke.
func (ft *futexTable) wake(addr uint64, n, bitset uint32) uint32 {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.wakeLocked(addr, n, bitset)
}

// wakeLocked is wake with ft.mu held.
//
// Preconditions: ft.mu is held.
func (ft *futexTable) wakeLocked(addr uint64, n, bitset uint32) uint32 {
	woken := uint32(0)
	for _, w := range append([]*futexWaiter(nil), ft.waiters[addr]...) {
		if woken >= n {
			break
		}
		if w.bitset&bitset != 0 {
			close(w.woken)
			ft.remove(w)
			woken++
		}
	}
	return woken
}
