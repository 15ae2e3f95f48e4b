package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// sysRtTgsigqueueinfo implements rt_tgsigqueueinfo(tgid, tid, sig, info):
// rt_sigqueueinfo aimed at one thread (pthread_sigqueue). As on Linux, a
// thread may only forge a kernel or kill-style si_code (>= 0, or SI_TKILL)
// when it signals itself: EPERM otherwise.
func sysRtTgsigqueueinfo(t *Task, a *sysArgs) (uint64, error) {
	tgid, tid, sig := a.Int(0), a.Int(1), a.Int(2)
	if tgid <= 0 || tid <= 0 {
		return 0, unix.EINVAL
	}
	raw := make([]byte, siginfoLen)
	if err := t.tg.mm.CopyIn(a[3], raw); err != nil {
		return 0, err
	}
	code := int32(binary.LittleEndian.Uint32(raw[8:]))
	if (code >= 0 || code == siTkill) && tid != t.tid {
		return 0, unix.EPERM
	}
	target, err := t.taskByTID(tid)
	if err != nil {
		return 0, err
	}
	if target.tg.tgid != tgid {
		return 0, unix.ESRCH
	}
	if sig == 0 {
		return 0, nil
	}
	if !validSigno(sig) {
		return 0, unix.EINVAL
	}
	binary.LittleEndian.PutUint32(raw[0:], uint32(sig))
	target.tg.sendSignal(sigInfo{Signo: sig, Code: code, Raw: raw}, target)
	return 0, nil
}
