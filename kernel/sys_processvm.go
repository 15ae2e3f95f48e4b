package kernel

import (
	"golang.org/x/sys/unix"
)

// process_vm_readv and process_vm_writev copy between the caller's memory
// and another process of the sandbox, as Linux: the target is any thread
// ID, the caller needs the ptrace access Linux would require (mayAccess),
// the copy follows both iovec lists in order, and a fault ends it with the
// bytes copied so far (EFAULT when there are none).

func sysProcessVMReadv(t *Task, a *sysArgs) (uint64, error) { return t.processVM(a, false) }

func sysProcessVMWritev(t *Task, a *sysArgs) (uint64, error) { return t.processVM(a, true) }

// processVMChunk bounds one staging copy.
const processVMChunk = 64 << 10

func (t *Task) processVM(a *sysArgs, write bool) (uint64, error) {
	pid, localAddr, localCnt, remoteAddr, remoteCnt, flags := a.Int(0), a[1], a[2], a[3], a[4], a[5]
	if flags != 0 {
		return 0, unix.EINVAL
	}
	local, _, err := t.copyInIovecs(localAddr, localCnt)
	if err != nil {
		return 0, err
	}
	remote, _, err := t.copyInIovecs(remoteAddr, remoteCnt)
	if err != nil {
		return 0, err
	}
	target, err := t.taskByTID(pid)
	if pid <= 0 || err != nil {
		return 0, unix.ESRCH
	}
	tg := target.tg
	tg.mu.Lock()
	if len(tg.tasks) == 0 || tg.exiting {
		tg.mu.Unlock()
		return 0, unix.ESRCH
	}
	creds, mm := target.creds, tg.mm
	mm.addUser()
	tg.mu.Unlock()
	defer mm.Release()
	if tg != t.tg && !t.mayAccess(&creds) {
		return 0, unix.EPERM
	}
	src, dst, srcMM, dstMM := remote, local, mm, t.tg.mm
	if write {
		src, dst, srcMM, dstMM = local, remote, t.tg.mm, mm
	}
	n := copyIovecs(dstMM, dst, srcMM, src)
	if n == 0 && iovecsLen(src) > 0 && iovecsLen(dst) > 0 {
		return 0, unix.EFAULT
	}
	return n, nil
}

func iovecsLen(iovs []iovec) uint64 {
	var n uint64
	for _, v := range iovs {
		n += v.len
	}
	return n
}

// copyIovecs copies from src in srcMM to dst in dstMM, in chunks that
// never cross a page boundary on either side, until either list ends or a
// copy faults; it returns the bytes copied.
func copyIovecs(dstMM *MM, dst []iovec, srcMM *MM, src []iovec) uint64 {
	buf := make([]byte, min(processVMChunk, iovecsLen(src)))
	var done uint64
	for len(src) > 0 && len(dst) > 0 {
		if src[0].len == 0 {
			src = src[1:]
			continue
		}
		if dst[0].len == 0 {
			dst = dst[1:]
			continue
		}
		n := min(src[0].len, dst[0].len, uint64(len(buf)),
			pageSize-src[0].base%pageSize, pageSize-dst[0].base%pageSize)
		if srcMM.CopyIn(src[0].base, buf[:n]) != nil || dstMM.CopyOut(dst[0].base, buf[:n]) != nil {
			break
		}
		done += n
		src[0].base += n
		src[0].len -= n
		dst[0].base += n
		dst[0].len -= n
	}
	return done
}
