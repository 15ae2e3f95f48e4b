package kernel

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHostMonotonic checks that hostMonotonic, which reads the Go clock,
// agrees with the host's CLOCK_MONOTONIC read by a system call: each
// reading lies between two host readings taken around it, within the
// error bound of the pairing.
func TestHostMonotonic(t *testing.T) {
	host := func() int64 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatalf("clock_gettime: %v", err)
		}
		return ts.Nano()
	}
	hostMonotonic() // pair the clocks
	slack := int64(hostClockBase.slack) + 1
	prev := int64(0)
	for i := 0; i < 1000; i++ {
		if i%100 == 99 {
			time.Sleep(time.Millisecond)
		}
		lo := host()
		got := hostMonotonic()
		hi := host()
		if got < lo-slack || got > hi+slack {
			t.Fatalf("hostMonotonic() = %d, want in [%d, %d] (slack %d ns)", got, lo-slack, hi+slack, slack)
		}
		if got < prev {
			t.Fatalf("hostMonotonic() = %d after %d: went backward", got, prev)
		}
		prev = got
	}
}
