package kernel

import (
	"bytes"
	"fmt"
)

// forEachLocked calls fn with the sentry's view of each piece of [addr,
// addr+length) in order, checking that vmas cover it with permissions want
// (none checked if want is 0). It stops at the first error.
//
// Preconditions: mm.mu is held.
func (mm *MM) forEachLocked(addr, length uint64, want perms, fn func(b []byte) error) error {
	end := addr + length
	if end < addr {
		return fmt.Errorf("range [%#x, +%#x) wraps: %w", addr, length, ErrBadAddress)
	}
	pos := addr
	for k := mm.findLocked(addr); pos < end; k++ {
		if k >= len(mm.vmas) || mm.vmas[k].Start > pos {
			return fmt.Errorf("access at %#x: no mapping: %w", pos, ErrBadAddress)
		}
		v := &mm.vmas[k]
		if !v.Perms.allows(want) {
			return fmt.Errorf("access at %#x: %v mapping: %w", pos, v.Perms, ErrBadAddress)
		}
		if v.Beyond {
			return fmt.Errorf("access at %#x: past the end of the mapped file: %w", pos, ErrBadAddress)
		}
		e := min(end, v.End)
		b, err := mm.mf.Bytes(v.Off+(pos-v.Start), e-pos)
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
		pos = e
	}
	return nil
}

// CopyIn copies len(dst) bytes of application memory at addr into dst. The
// memory must be readable by the application.
func (mm *MM) CopyIn(addr uint64, dst []byte) error {
	fn := func(b []byte) error {
		dst = dst[copy(dst, b):]
		return nil
	}
	mm.mu.RLock()
	if !mm.unbackedLocked(addr, uint64(len(dst))) {
		defer mm.mu.RUnlock()
		return mm.forEachLocked(addr, uint64(len(dst)), permRead, fn)
	}
	mm.mu.RUnlock()
	mm.mu.Lock()
	defer mm.mu.Unlock()
	mm.backRangeLocked(addr, uint64(len(dst)))
	return mm.forEachLocked(addr, uint64(len(dst)), permRead, fn)
}

// CopyOut copies src to application memory at addr, which must be writable
// by the application.
func (mm *MM) CopyOut(addr uint64, src []byte) error {
	return mm.forWrite(addr, uint64(len(src)), permWrite, func(b []byte) error {
		src = src[copy(b, src):]
		return nil
	})
}

// ZeroOut zeroes length bytes of writable application memory at addr.
func (mm *MM) ZeroOut(addr, length uint64) error {
	return mm.forWrite(addr, length, permWrite, func(b []byte) error {
		clear(b)
		return nil
	})
}

// writeForce copies src to application memory at addr ignoring
// permissions: the loader fills read-only segments and the stack with it.
func (mm *MM) writeForce(addr uint64, src []byte) error {
	return mm.forWrite(addr, uint64(len(src)), 0, func(b []byte) error {
		src = src[copy(b, src):]
		return nil
	})
}

// fillForce calls fill with the sentry's view of [addr, addr+length) piece
// by piece, ignoring permissions: the loader reads segments straight into
// application memory with it. Each piece is populated first
// (MADV_POPULATE_WRITE), which costs far less than faulting its pages in
// one by one during the copy.
func (mm *MM) fillForce(addr, length uint64, fill func(b []byte) error) error {
	return mm.forWrite(addr, length, 0, func(b []byte) error {
		populate(b)
		return fill(b)
	})
}

// errNameTooLong is returned by CopyInString when no NUL is found within
// the limit; syscalls turn it into ENAMETOOLONG (paths) or E2BIG (exec).
var errNameTooLong = fmt.Errorf("string too long")

// shortString is how much CopyInString reads first: most strings (paths,
// names) end within it, and then cost one copy into a buffer on the stack
// and the string itself.
const shortString = 256

// CopyInString reads a NUL-terminated string of at most maxLen bytes
// (excluding the NUL) at addr. It reads page by page so that a string at
// the end of a mapping does not fault.
func (mm *MM) CopyInString(addr uint64, maxLen int) (string, error) {
	var first [shortString]byte
	n := min(pageSize-addr&pageMask, shortString)
	if err := mm.CopyIn(addr, first[:n]); err != nil {
		return "", err
	}
	if i := bytes.IndexByte(first[:n], 0); i >= 0 {
		if i > maxLen {
			return "", errNameTooLong
		}
		return string(first[:i]), nil
	}
	buf := append([]byte(nil), first[:n]...)
	addr += n
	for len(buf) <= maxLen {
		n := pageSize - addr&pageMask
		chunk := make([]byte, n)
		if err := mm.CopyIn(addr, chunk); err != nil {
			return "", err
		}
		if i := bytes.IndexByte(chunk, 0); i >= 0 {
			buf = append(buf, chunk[:i]...)
			if len(buf) > maxLen {
				break
			}
			return string(buf), nil
		}
		buf = append(buf, chunk...)
		addr += n
	}
	return "", errNameTooLong
}
