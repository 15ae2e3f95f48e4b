package kernel

// rdtsc returns the time-stamp counter, read after every earlier load
// (LFENCE; RDTSC).
func rdtsc() uint64

// cpuid executes CPUID for leaf and sub-leaf sub.
func cpuid(leaf, sub uint32) (a, b, c, d uint32)

// invariantTSC reports whether the CPU says its TSC runs at a constant
// rate in every power state (CPUID 0x80000007 EDX bit 8; Linux's
// constant_tsc and nonstop_tsc).
func invariantTSC() bool {
	if maxExt, _, _, _ := cpuid(0x80000000, 0); maxExt < 0x80000007 {
		return false
	}
	_, _, _, d := cpuid(0x80000007, 0)
	return d&(1<<8) != 0
}
