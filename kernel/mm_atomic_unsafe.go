package kernel

import (
	"sync/atomic"
	"unsafe"
)

// atomicUpdateUint32 replaces the uint32 at addr (4-aligned, readable and
// writable by the application) by fn(old), atomically with respect to the
// application's own atomic instructions on it, and returns old. fn may be
// called more than once.
func (mm *MM) atomicUpdateUint32(addr uint64, fn func(uint32) uint32) (uint32, error) {
	mm.backRange(addr, 4)
	if err := mm.freshenForWrite(addr, 4); err != nil {
		return 0, err
	}
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	var old uint32
	// An aligned word never spans two pages, so b is the whole word.
	err := mm.forEachLocked(addr, 4, permRead|permWrite, func(b []byte) error {
		mm.mf.willWrite(mm.mf.rangeOf(b))
		p := (*uint32)(unsafe.Pointer(&b[0]))
		for {
			old = atomic.LoadUint32(p)
			if atomic.CompareAndSwapUint32(p, old, fn(old)) {
				return nil
			}
		}
	})
	return old, err
}
