package kernel

import (
	"math"

	"golang.org/x/sys/unix"
)

// futexDoRequeue is FUTEX_REQUEUE and FUTEX_CMP_REQUEUE: wake up to a[2]
// waiters on a[0] and move up to a[3] (the timeout argument's slot) of the
// others to a[4], so that they wait there; CMP_REQUEUE first requires the
// word at a[0] to equal a[5] (else EAGAIN). It returns how many waiters
// were woken or moved. Condition variables use it to move the waiters of a
// broadcast onto the mutex instead of waking them all at once (musl's
// pthread_cond_signal and broadcast do, and hang without it).
//
// When the two words are keyed in different tables (one in shared memory,
// one private), the waiters that would move are woken instead, which
// futex users must take as a spurious wake-up anyway.
func futexDoRequeue(t *Task, op int, a *sysArgs) (uint64, error) {
	addr, addr2 := a[0], a[4]
	cmp := op&futexCmdMask == futexCmpRequeue
	nWake, nMove := int32(uint32(a[2])), int32(uint32(a[3]))
	if addr2&3 != 0 || nWake < 0 || nMove < 0 {
		return 0, unix.EINVAL
	}
	ft, key := t.futexKey(addr, op)
	ft2, key2 := t.futexKey(addr2, op)
	if ft2 != ft {
		nWake, nMove = nWake+nMove, 0
		if nWake < 0 {
			nWake = math.MaxInt32
		}
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if cmp {
		cur, err := t.copyInUint32(addr)
		if err != nil {
			return 0, err
		}
		if cur != uint32(a[5]) {
			return 0, unix.EAGAIN
		}
	}
	return uint64(ft.requeueLocked(key, key2, int(nWake), int(nMove))), nil
}

// requeueLocked wakes the first nWake waiters on addr and moves up to
// nMove of the rest to addr2, in order, behind addr2's own waiters. It
// returns how many it woke and moved.
//
// Preconditions: ft.mu is held.
func (ft *futexTable) requeueLocked(addr, addr2 uint64, nWake, nMove int) int {
	ws := append([]*futexWaiter(nil), ft.waiters[addr]...)
	done := 0
	for _, w := range ws {
		switch {
		case done < nWake:
			close(w.woken)
			ft.remove(w)
		case done < nWake+nMove:
			if addr2 != addr {
				ft.remove(w)
				w.addr = addr2
				ft.waiters[addr2] = append(ft.waiters[addr2], w)
			}
		default:
			return done
		}
		done++
	}
	return done
}

// FUTEX_WAKE_OP's encoded operation (linux/futex.h): op<<28 | cmp<<24 |
// oparg<<12 | cmparg, both arguments 12-bit signed; with
// futexOpOpargShift in op, the operand is 1<<oparg.
const (
	futexOpSet        = 0
	futexOpAdd        = 1
	futexOpOr         = 2
	futexOpAndN       = 3
	futexOpXor        = 4
	futexOpOpargShift = 8

	futexOpCmpEq = 0
	futexOpCmpNe = 1
	futexOpCmpLt = 2
	futexOpCmpLe = 3
	futexOpCmpGt = 4
	futexOpCmpGe = 5
)

// futexDoWakeOp is FUTEX_WAKE_OP: atomically apply the operation encoded
// in a[5] to the word at a[4], wake up to a[2] waiters on a[0], and, if the
// word's old value passes the encoded comparison, up to a[3] waiters on
// a[4]. It returns how many it woke.
func futexDoWakeOp(t *Task, fop int, a *sysArgs) (uint64, error) {
	addr, addr2, enc := a[0], a[4], uint32(a[5])
	nWake, nWake2 := int32(uint32(a[2])), int32(uint32(a[3]))
	if addr2&3 != 0 {
		return 0, unix.EINVAL
	}
	op, cmp := enc>>28&7, enc>>24&15
	oparg, cmparg := signExtend12(enc>>12), signExtend12(enc)
	if enc>>28&futexOpOpargShift != 0 {
		oparg = 1 << (uint32(oparg) & 31) // Linux also masks a bad shift
	}
	apply, ok := futexOps[op]
	if !ok {
		return 0, unix.ENOSYS
	}
	ft, key := t.futexKey(addr, fop)
	ft2, key2 := t.futexKey(addr2, fop)
	ft.mu.Lock()
	old, err := t.tg.mm.atomicUpdateUint32(addr2, func(v uint32) uint32 { return apply(v, uint32(oparg)) })
	if err != nil {
		ft.mu.Unlock()
		return 0, err
	}
	if cmp > futexOpCmpGe {
		ft.mu.Unlock()
		return 0, unix.ENOSYS // as Linux, after the operation was applied
	}
	woken := ft.wakeLocked(key, uint32(max(nWake, 0)), futexBitsetMatchAny)
	wake2 := futexCompare(int32(old), cmp, cmparg)
	if wake2 && ft2 == ft {
		woken += ft.wakeLocked(key2, uint32(max(nWake2, 0)), futexBitsetMatchAny)
		wake2 = false
	}
	ft.mu.Unlock()
	if wake2 {
		// Another table (one word shared, the other private): its lock
		// is never taken under another's.
		woken += ft2.wake(key2, uint32(max(nWake2, 0)), futexBitsetMatchAny)
	}
	return uint64(woken), nil
}

// futexOps are FUTEX_WAKE_OP's operations, by number.
var futexOps = map[uint32]func(v, arg uint32) uint32{
	futexOpSet:  func(_, arg uint32) uint32 { return arg },
	futexOpAdd:  func(v, arg uint32) uint32 { return v + arg },
	futexOpOr:   func(v, arg uint32) uint32 { return v | arg },
	futexOpAndN: func(v, arg uint32) uint32 { return v &^ arg },
	futexOpXor:  func(v, arg uint32) uint32 { return v ^ arg },
}

// futexCompare is FUTEX_WAKE_OP's comparison cmp of old with arg, signed.
func futexCompare(old int32, cmp uint32, arg int32) bool {
	switch cmp {
	case futexOpCmpEq:
		return old == arg
	case futexOpCmpNe:
		return old != arg
	case futexOpCmpLt:
		return old < arg
	case futexOpCmpLe:
		return old <= arg
	case futexOpCmpGt:
		return old > arg
	default: // futexOpCmpGe
		return old >= arg
	}
}

// signExtend12 returns the low 12 bits of v as a signed number.
func signExtend12(v uint32) int32 {
	return int32(v<<20) >> 20
}
