package kernel

import (
	"fmt"
	"math/bits"
	"os"
	"strings"
	"sync"
	"time"

	"snapshotter/kernel/vdso"
)

// The sandbox's clocks and its vDSO.
//
// The kernel maps into every address space, at exec, two things from its
// memory file: the vDSO image (kernel/vdso, "[vdso]", r-x) and right below
// it the parameter page ("[vvar]", r--), and points AT_SYSINFO_EHDR at the
// image. The C libraries call the image's __vdso_clock_gettime,
// __vdso_gettimeofday, __vdso_time, __vdso_clock_getres and __vdso_getcpu,
// which answer from the parameter page without a system call.
//
// With a usable TSC (invariant, see tscUsable), the sandbox's
// CLOCK_MONOTONIC is by definition a function of the TSC given by the
// parameter page,
//
//	mono(tsc) = MonoBase + ((tsc - TSCBase) * Mult) >> 32
//
// and CLOCK_REALTIME is mono(tsc) + RealtimeOffset. The sentry's own
// clock_gettime, timers and sleeps read the same page with the same
// formula (sandboxClock.read), so a vDSO reading and a system call always
// agree and are ordered as the TSC readings they made. The sentry rewrites
// the page once a second (sandboxClock.update): it starts the new line
// where the old one is at that instant, so the clock is continuous and
// never goes back, and picks a slope that steers it towards the host's
// CLOCK_MONOTONIC plus the kernel's monotonicOffset by at most maxSlew.
// A restore writes a fresh line that starts at the saved CLOCK_MONOTONIC,
// for the new host's TSC, in the saved page at the same addresses.
//
// Without a usable TSC the page says modeSyscall: the vDSO makes the
// system call, and the sentry reads the host's clocks as before.
//
// The parameter page, format 1 (little endian):
//
//	 0  u32 Seq             odd while the sentry writes; readers retry
//	                        until they see the same even value around
//	                        their reads
//	 4  u32 Mode            0 modeSyscall, 1 modeTSC
//	 8  u64 TSCBase
//	16  i64 MonoBase        CLOCK_MONOTONIC at TSCBase, ns
//	24  u64 Mult            ns per TSC tick, 32.32 fixed point
//	32  i64 RealtimeOffset  CLOCK_REALTIME - CLOCK_MONOTONIC, ns
//
// The image reading a restored page is the saved one (it is application
// memory, saved and restored with the rest), so the page format is part
// of the image format: vdsoPages.Format records it and a restore refuses
// a format it does not write.
const (
	vdsoParamsFormat = 1

	modeSyscall = 0
	modeTSC     = 1

	// clockUpdateInterval is how often the sentry rewrites the page.
	clockUpdateInterval = time.Second
	// maxSlew bounds how much faster or slower than the measured TSC rate
	// the sandbox clock may run while it catches up with the host's.
	maxSlew = 500e-6
	// maxStep is the largest lag behind the host that is slewed away;
	// a bigger one (a wrong first calibration) is jumped over forwards.
	maxStep = int64(10 * time.Millisecond)
	// realtimeStep is how far the host's CLOCK_REALTIME may move against
	// the sandbox's (someone set the host clock) before the offset
	// follows it backwards; forward moves are taken at once.
	realtimeStep = int64(100 * time.Microsecond)
	// minCalibration is the shortest interval over which the TSC rate is
	// measured before a first use.
	minCalibration = time.Millisecond
)

// vdsoPages is where the kernel keeps the parameter page and the vDSO
// image: one memory file range, the page first, owned by the kernel for
// its lifetime and mapped by every address space without being counted
// (vma.Special).
//
// +stateify savable
type vdsoPages struct {
	// Range holds the parameter page then the image. Immutable.
	Range fileRange
	// Format is the parameter page format the image reads. Immutable.
	Format uint32
}

// paramsRange returns the parameter page's memory file range.
func (v vdsoPages) paramsRange() fileRange {
	return fileRange{v.Range.Start, v.Range.Start + vdso.ParamsPageOffset}
}

// check validates restored pages: none (a kernel saved before there was a
// vDSO), or page-aligned room for the parameter page and an image, in the
// format this snap writes.
func (v vdsoPages) check() error {
	r := v.Range
	if r.Length() == 0 {
		return nil
	}
	if r.Start%pageSize != 0 || r.End%pageSize != 0 || r.End < r.Start || r.Length() < vdso.ParamsPageOffset+pageSize {
		return fmt.Errorf("%w: vDSO pages [%#x, %#x) not page-aligned room for a parameter page and an image", ErrBadState, r.Start, r.End)
	}
	if v.Format != vdsoParamsFormat {
		return fmt.Errorf("%w: vDSO parameter page format %d, this snap writes %d", ErrBadState, v.Format, vdsoParamsFormat)
	}
	return nil
}

// setupVDSO allocates the kernel's parameter page and vDSO image in the
// memory file.
func (k *Kernel) setupVDSO() error {
	imgLen, _ := pageRoundUp(uint64(len(vdso.Image)))
	fr, err := k.mf.Allocate(vdso.ParamsPageOffset + imgLen)
	if err != nil {
		return fmt.Errorf("allocate vDSO: %w", err)
	}
	b, err := k.mf.Bytes(fr.Start, fr.Length())
	if err != nil {
		k.mf.Free(fr)
		return fmt.Errorf("vDSO pages: %w", err)
	}
	copy(b[vdso.ParamsPageOffset:], vdso.Image)
	k.vdso = vdsoPages{Range: fr, Format: vdsoParamsFormat}
	return nil
}

// tscPair is one reading of the TSC and the host's clocks at the same
// moment.
type tscPair struct {
	tsc  uint64
	mono int64 // host CLOCK_MONOTONIC, ns
	wall int64 // host CLOCK_REALTIME, ns
}

// sampleTSC pairs the TSC with the host's clocks: the tightest of a few
// TSC readings around a clock reading, taken at their midpoint.
func sampleTSC() tscPair {
	var best tscPair
	bestWidth := ^uint64(0)
	for range 3 {
		t1 := rdtsc()
		now := time.Now()
		t2 := rdtsc()
		if w := t2 - t1; t2 >= t1 && w < bestWidth {
			bestWidth = w
			best = tscPair{tsc: t1 + w/2, mono: hostMonotonicAt(now), wall: now.UnixNano()}
		}
	}
	return best
}

// tscCal measures the TSC's rate against the host's CLOCK_MONOTONIC over
// the life of the process: from a reference pair taken at start-up to the
// latest one, so the error of a pairing weighs less and less.
var tscCal struct {
	once sync.Once
	// usable says whether the TSC may define the sandbox's clock. Set
	// once.
	usable bool

	mu sync.Mutex
	// ref is the reference pair. Protected by mu.
	ref tscPair
}

// tscRef is taken while the package initialises, so that by the time a
// kernel needs a rate some time has passed since.
var tscRef = sampleTSC()

// noTSCClockEnv, set to 1, keeps the vDSO and the sentry on the host's
// clocks through system calls (modeSyscall), as on a host without a usable
// TSC.
const noTSCClockEnv = "SNAP_NO_TSC_CLOCK"

// hostClocksource is where Linux says which clock source its own clocks
// read.
const hostClocksource = "/sys/devices/system/clocksource/clocksource0/current_clocksource"

// tscUsable reports whether the sandbox clock can be the TSC: the CPU
// says it is invariant (constant rate, not stopped in idle states); the
// host kernel, if it says, uses it for its own clocks (it stops doing so
// when it finds the TSCs of its CPUs out of step, which would let a
// thread that moves see time go back); it was not turned off with
// SNAP_NO_TSC_CLOCK=1; and it ticks at a plausible rate.
func tscUsable() bool {
	tscCal.once.Do(func() {
		tscCal.ref = tscRef
		if os.Getenv(noTSCClockEnv) == "1" || !invariantTSC() {
			return
		}
		// The sentry's own configuration, read once; without sysfs
		// the CPU's word is taken.
		if b, err := os.ReadFile(hostClocksource); err == nil && strings.TrimSpace(string(b)) != "tsc" {
			return
		}
		mult, ok := tscRate(sampleTSC())
		// Between 50 MHz and 20 GHz.
		tscCal.usable = ok && mult >= (1<<32)/20 && mult <= 20<<32
	})
	return tscCal.usable
}

// tscRate returns the TSC's rate (ns per tick, 32.32 fixed point) measured
// from the reference pair to now, waiting first if they are less than
// minCalibration apart. It reports false if the TSC did not advance.
func tscRate(now tscPair) (uint64, bool) {
	tscCal.mu.Lock()
	defer tscCal.mu.Unlock()
	ref := tscCal.ref
	if d := time.Duration(now.mono - ref.mono); d < minCalibration {
		time.Sleep(minCalibration - d)
		now = sampleTSC()
	}
	if now.tsc <= ref.tsc || now.mono <= ref.mono {
		return 0, false
	}
	ns, ticks := uint64(now.mono-ref.mono), now.tsc-ref.tsc
	if ns>>32 >= ticks { // more than 2^32 ns per tick: no rate
		return 0, false
	}
	mult, _ := bits.Div64(ns>>32, ns<<32, ticks)
	return mult, true
}

// scaleTicks returns ticks*mult >> 32 (mult is 32.32 fixed point).
func scaleTicks(ticks, mult uint64) int64 {
	hi, lo := bits.Mul64(ticks, mult)
	return int64(hi<<32 | lo>>32)
}

// clockParams is the content of the parameter page but Seq.
type clockParams struct {
	Mode           uint32
	TSCBase        uint64
	MonoBase       int64
	Mult           uint64
	RealtimeOffset int64
}

// monotonicAt returns the line's CLOCK_MONOTONIC at tsc.
func (p clockParams) monotonicAt(tsc uint64) int64 {
	if tsc < p.TSCBase {
		tsc = p.TSCBase
	}
	return p.MonoBase + scaleTicks(tsc-p.TSCBase, p.Mult)
}

// sandboxClock keeps a kernel's parameter page and reads the clocks from
// it.
type sandboxClock struct {
	// page is the parameter page in the sentry's mapping of the memory
	// file. Immutable.
	page *vdsoParams
	// tsc reports whether the page is in modeTSC. Immutable.
	tsc bool

	// stop, closed, makes the update goroutine exit; done is closed when
	// it has. Immutable.
	stop, done chan struct{}
}

// read returns CLOCK_MONOTONIC and CLOCK_REALTIME from the page, as the
// vDSO computes them.
func (c *sandboxClock) read() (mono, realtime int64) {
	p, tsc := c.page.load()
	mono = p.monotonicAt(tsc)
	return mono, mono + p.RealtimeOffset
}

// startClock makes the kernel's clock over its parameter page and starts
// the goroutine that keeps the page right. The clock starts at the host's
// CLOCK_MONOTONIC plus k.monotonicOffset, and follows that, but never
// below notBefore (a restore's saved value; MinInt64 for a new kernel).
func (k *Kernel) startClock(notBefore int64) error {
	b, err := k.mf.Bytes(k.vdso.paramsRange().Start, vdso.ParamsPageOffset)
	if err != nil {
		return fmt.Errorf("vDSO parameter page: %w", err)
	}
	c := &sandboxClock{page: paramsAt(b), tsc: tscUsable(), stop: make(chan struct{}), done: make(chan struct{})}
	if !c.tsc {
		c.page.store(clockParams{Mode: modeSyscall})
		close(c.done)
		k.clock = c
		return nil
	}
	now := sampleTSC()
	mult, _ := tscRate(now)
	mono := max(now.mono+k.monotonicOffset, notBefore)
	c.page.store(clockParams{Mode: modeTSC, TSCBase: now.tsc, MonoBase: mono, Mult: mult, RealtimeOffset: now.wall - mono})
	k.clock = c
	// S/R-SAFE: writes only the parameter page, and not while the kernel
	// is paused; stopped by stopClock before the memory file goes.
	go k.runClock(c)
	return nil
}

// runClock rewrites the parameter page every clockUpdateInterval until
// c.stop, except while a pause is requested or in effect: a save reads
// (and compresses) memory then and needs it to hold still, and a restore
// rewrites the page anyway. Holding stopMu across an update makes a Pause
// that begins meanwhile wait for its end (microseconds); no update starts
// while stopCount > 0. The updates are the page's only writer after
// startClock.
func (k *Kernel) runClock(c *sandboxClock) {
	defer close(c.done)
	tick := time.NewTicker(clockUpdateInterval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			k.clockTick(c)
		}
	}
}

// clockTick is one update of runClock, skipped while a pause is requested
// or in effect.
func (k *Kernel) clockTick(c *sandboxClock) {
	k.stopMu.Lock()
	defer k.stopMu.Unlock()
	if k.stopCount == 0 {
		k.mf.willWrite(k.vdso.paramsRange())
		c.update(k.monotonicOffset)
	}
}

// update starts a new line at the current value of the old one, with a
// slope that brings it to the host's CLOCK_MONOTONIC + hostOffset within
// a clockUpdateInterval (at most maxSlew away from the TSC's measured
// rate), and follows the host's CLOCK_REALTIME.
//
// Preconditions: the caller is the page's only writer (runClock holds
// Kernel.stopMu).
func (c *sandboxClock) update(hostOffset int64) {
	rate, ok := tscRate(sampleTSC())
	c.page.rewrite(func(old clockParams) clockParams {
		// The sequence is odd now: every reading that returns has its
		// TSC from before this sample.
		now := sampleTSC()
		if !ok {
			rate = old.Mult
		}
		cur := old.monotonicAt(now.tsc)
		target := now.mono + hostOffset
		lag := cur - target // > 0: ahead of the host
		p := old
		p.TSCBase, p.MonoBase = now.tsc, cur
		if lag < -maxStep {
			p.MonoBase = target // far behind: jump forwards
			lag = 0
		}
		adj := float64(lag) / float64(clockUpdateInterval)
		adj = min(max(adj, -maxSlew), maxSlew)
		p.Mult = uint64(float64(rate) * (1 - adj))
		wallOff := now.wall - p.MonoBase
		if d := wallOff - old.RealtimeOffset; d > 0 || d < -realtimeStep {
			p.RealtimeOffset = wallOff
		}
		return p
	})
}

// stopClock stops the update goroutine and waits for it, so that nothing
// writes the memory file afterwards.
func (k *Kernel) stopClock() {
	if k.clock == nil {
		return
	}
	select {
	case <-k.clock.stop:
	default:
		close(k.clock.stop)
	}
	<-k.clock.done
}

// mapVDSO maps the parameter page and the vDSO image at a free place of
// the mmap area and returns the image's address (AT_SYSINFO_EHDR).
func (mm *MM) mapVDSO(v vdsoPages) (uint64, error) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	addr, err := mm.findGapLocked(v.Range.Length())
	if err != nil {
		return 0, fmt.Errorf("map vDSO: %w", err)
	}
	params := v.paramsRange()
	img := fileRange{params.End, v.Range.End}
	for _, m := range []vma{
		{Start: addr, End: addr + params.Length(), Off: params.Start, Perms: permRead, MaxPerms: permRead, Private: true, Special: true, Name: "[vvar]"},
		{Start: addr + params.Length(), End: addr + v.Range.Length(), Off: img.Start, Perms: permRead | permExec, MaxPerms: permRead | permExec, Private: true, Special: true, Name: "[vdso]"},
	} {
		if err := mm.insertLocked(m, false); err != nil {
			return 0, fmt.Errorf("map vDSO: %w", err)
		}
	}
	return addr + params.Length(), nil
}
