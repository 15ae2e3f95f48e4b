package kernel

// appSeq is application memory as a vfs.IOSeq: the ranges of iovs, in
// order, reached through mm. A file that moves bytes without staging
// (vfs.File.SeqIO) copies straight between them and its own buffers.
type appSeq struct {
	mm   *MM
	iovs []iovec
	n    int
}

// appRange returns the n bytes of the caller's memory at addr.
func (t *Task) appRange(addr, n uint64) *appSeq {
	return &appSeq{mm: t.tg.mm, iovs: []iovec{{addr, n}}, n: int(n)}
}

// appIovecs returns the memory of iovs, total bytes in all.
func (t *Task) appIovecs(iovs []iovec, total uint64) *appSeq {
	return &appSeq{mm: t.tg.mm, iovs: iovs, n: int(total)}
}

// Len implements vfs.IOSeq.
func (q *appSeq) Len() int { return q.n }

// CopyIn implements vfs.IOSeq.
func (q *appSeq) CopyIn(off int, dst []byte) error {
	return q.each(off, len(dst), func(addr uint64, from, to int) error {
		return q.mm.CopyIn(addr, dst[from:to])
	})
}

// CopyOut implements vfs.IOSeq.
func (q *appSeq) CopyOut(off int, src []byte) error {
	return q.each(off, len(src), func(addr uint64, from, to int) error {
		return q.mm.CopyOut(addr, src[from:to])
	})
}

// each calls fn for each piece of the sequence's bytes [off, off+n): its
// address and its place [from, to) in those n bytes.
func (q *appSeq) each(off, n int, fn func(addr uint64, from, to int) error) error {
	done := 0
	for _, iov := range q.iovs {
		if done == n {
			break
		}
		l := int(iov.len)
		if off >= l {
			off -= l
			continue
		}
		c := min(n-done, l-off)
		if err := fn(iov.base+uint64(off), done, done+c); err != nil {
			return err
		}
		done += c
		off = 0
	}
	return nil
}
