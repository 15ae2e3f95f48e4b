package kernel

import "golang.org/x/sys/unix"

// membarrier commands (linux/membarrier.h).
const (
	membarrierQuery                    = 0
	membarrierGlobal                   = 1 << 0
	membarrierGlobalExpedited          = 1 << 1
	membarrierRegisterGlobalExpedited  = 1 << 2
	membarrierPrivateExpedited         = 1 << 3
	membarrierRegisterPrivateExpedited = 1 << 4
	membarrierPrivateExpeditedSyncCore = 1 << 5
	membarrierRegisterPrivateSyncCore  = 1 << 6
	membarrierPrivateExpeditedRseq     = 1 << 7
	membarrierRegisterPrivateRseq      = 1 << 8
	membarrierGetRegistrations         = 1 << 9

	// membarrierSupported is what QUERY reports: every command but the
	// RSEQ ones.
	membarrierSupported = membarrierGlobal | membarrierGlobalExpedited | membarrierRegisterGlobalExpedited |
		membarrierPrivateExpedited | membarrierRegisterPrivateExpedited |
		membarrierPrivateExpeditedSyncCore | membarrierRegisterPrivateSyncCore | membarrierGetRegistrations
)

// sysMembarrier implements membarrier(cmd, flags, cpu_id) as Linux built
// without rseq (the RSEQ commands are EINVAL and QUERY leaves them out).
// A barrier over other threads is the host's MEMBARRIER_CMD_GLOBAL, which
// reaches the stub processes that run them; a process with one thread
// needs none beyond the syscall itself.
func sysMembarrier(t *Task, a *sysArgs) (uint64, error) {
	cmd, flags := a.Int(0), a.Int(1)
	if flags != 0 && cmd != membarrierPrivateExpeditedRseq {
		return 0, unix.EINVAL
	}
	tg := t.tg
	switch cmd {
	case membarrierQuery:
		return membarrierSupported, nil
	case membarrierGetRegistrations:
		tg.mu.Lock()
		defer tg.mu.Unlock()
		return uint64(tg.membarrier), nil
	case membarrierRegisterGlobalExpedited, membarrierRegisterPrivateExpedited, membarrierRegisterPrivateSyncCore:
		tg.mu.Lock()
		defer tg.mu.Unlock()
		tg.membarrier |= uint32(cmd)
		return 0, nil
	case membarrierPrivateExpedited, membarrierPrivateExpeditedSyncCore:
		// Each private command's registration is the next bit up.
		tg.mu.Lock()
		registered := tg.membarrier&(uint32(cmd)<<1) != 0
		tg.mu.Unlock()
		if !registered {
			return 0, unix.EPERM
		}
		return 0, t.memoryBarrier()
	case membarrierGlobal, membarrierGlobalExpedited:
		return 0, t.memoryBarrier()
	default:
		return 0, unix.EINVAL
	}
}

// memoryBarrier makes every other running thread of the sandbox pass a
// full memory barrier before it returns.
func (t *Task) memoryBarrier() error {
	if t.singleThreaded() {
		return nil
	}
	_, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierGlobal, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
