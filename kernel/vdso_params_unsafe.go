package kernel

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// vdsoParams is the parameter page's layout (format 1, see vdso_clock.go),
// as the vDSO's struct params. Every field is accessed atomically: the
// application's vDSO reads it concurrently.
type vdsoParams struct {
	seq            atomic.Uint32
	mode           atomic.Uint32
	tscBase        atomic.Uint64
	monoBase       atomic.Int64
	mult           atomic.Uint64
	realtimeOffset atomic.Int64
}

// paramsAt returns the parameter page at the start of b, a page of the
// memory file's mapping.
func paramsAt(b []byte) *vdsoParams {
	if len(b) < int(unsafe.Sizeof(vdsoParams{})) {
		panic("parameter page too small")
	}
	return (*vdsoParams)(unsafe.Pointer(&b[0]))
}

// load returns the parameters and a TSC reading taken while they were
// current, with the vDSO's protocol: retry until the sequence is even and
// unchanged around the reads.
func (v *vdsoParams) load() (clockParams, uint64) {
	for spins := 0; ; spins++ {
		s := v.seq.Load()
		if s&1 != 0 {
			// A writer is between its two stores (a few microseconds).
			if spins > 100 {
				runtime.Gosched()
			}
			continue
		}
		p := clockParams{
			Mode:           v.mode.Load(),
			TSCBase:        v.tscBase.Load(),
			MonoBase:       v.monoBase.Load(),
			Mult:           v.mult.Load(),
			RealtimeOffset: v.realtimeOffset.Load(),
		}
		tsc := rdtsc()
		if v.seq.Load() == s {
			return p, tsc
		}
	}
}

// rewrite replaces the parameters with next(old). The sequence is odd
// while next runs and the fields are written, and ends even and different
// from any value it had before (also when the page was saved in the middle
// of a write), so a reader that began before retries.
//
// Preconditions: the caller serializes writers.
func (v *vdsoParams) rewrite(next func(old clockParams) clockParams) {
	s := v.seq.Load() | 1
	v.seq.Store(s)
	old := clockParams{
		Mode:           v.mode.Load(),
		TSCBase:        v.tscBase.Load(),
		MonoBase:       v.monoBase.Load(),
		Mult:           v.mult.Load(),
		RealtimeOffset: v.realtimeOffset.Load(),
	}
	p := next(old)
	v.mode.Store(p.Mode)
	v.tscBase.Store(p.TSCBase)
	v.monoBase.Store(p.MonoBase)
	v.mult.Store(p.Mult)
	v.realtimeOffset.Store(p.RealtimeOffset)
	v.seq.Store(s + 1)
}

// store replaces the parameters with p.
//
// Preconditions: the caller serializes writers.
func (v *vdsoParams) store(p clockParams) {
	v.rewrite(func(clockParams) clockParams { return p })
}
