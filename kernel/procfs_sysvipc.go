package kernel

import (
	"fmt"
	"slices"
	"strings"
)

// /proc/sysvipc/{shm,sem,msg}: the sandbox's System V IPC objects, one
// line each in index order under Linux's header, with Linux's columns and
// widths (ipc/shm.c, sem.c and msg.c's proc_show functions), as util-linux
// ipcs reads them.

const (
	procSysvipcShmHeader = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n"
	procSysvipcSemHeader = "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n"
	procSysvipcMsgHeader = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n"
)

// sortedIndexes returns the keys of an IPC map in increasing order.
func sortedIndexes[V any](m map[int32]V) []int32 {
	idx := make([]int32, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return idx
}

func procSysvipcSem(t *Task) []byte {
	ns := t.k.ipc()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var b strings.Builder
	b.WriteString(procSysvipcSemHeader)
	for _, i := range sortedIndexes(ns.sems) {
		s := ns.sems[i]
		p := &s.Perm
		fmt.Fprintf(&b, "%10d %10d  %4o %10d %5d %5d %5d %5d %10d %10d\n",
			p.Key, p.ID, p.Mode, len(s.Sems), p.UID, p.GID, p.CUID, p.CGID, s.Otime, p.Ctime)
	}
	return []byte(b.String())
}

func procSysvipcMsg(t *Task) []byte {
	ns := t.k.ipc()
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var b strings.Builder
	b.WriteString(procSysvipcMsgHeader)
	for _, i := range sortedIndexes(ns.msgs) {
		q := ns.msgs[i]
		p := &q.Perm
		fmt.Fprintf(&b, "%10d %10d  %4o  %10d %10d %5d %5d %5d %5d %5d %5d %10d %10d %10d\n",
			p.Key, p.ID, p.Mode, q.Bytes, len(q.Msgs), q.Lspid, q.Lrpid, p.UID, p.GID, p.CUID, p.CGID,
			q.Stime, q.Rtime, p.Ctime)
	}
	return []byte(b.String())
}

// procSysvipcShm counts a segment's attachments and resident pages after
// releasing the namespace's lock (they take the processes' and the
// memory file's locks). rss is the segment's pages that hold data in the
// memory file (written ones; a restore leaves all-zero pages out, as it
// saves none); swap is always 0.
func procSysvipcShm(t *Task) []byte {
	ns := t.k.ipc()
	ns.pruneShm(t.k)
	ns.mu.Lock()
	segs := make([]shmSegment, 0, len(ns.shms))
	for _, i := range sortedIndexes(ns.shms) {
		segs = append(segs, *ns.shms[i])
	}
	ns.mu.Unlock()
	var b strings.Builder
	b.WriteString(procSysvipcShmHeader)
	for i := range segs {
		s := &segs[i]
		p := &s.Perm
		var rss uint64
		t.k.mf.forEachData(s.Range, func(r fileRange) error {
			rss += r.End - r.Start
			return nil
		})
		fmt.Fprintf(&b, "%10d %10d  %4o %21d %5d %5d  %5d %5d %5d %5d %5d %10d %10d %10d %21d %21d\n",
			p.Key, p.ID, p.Mode, s.Size, s.Cpid, s.Lpid, t.k.shmAttachments(s.Range), p.UID, p.GID, p.CUID, p.CGID,
			s.Atime, s.Dtime, p.Ctime, rss, 0)
	}
	return []byte(b.String())
}
