package e2e

import "testing"

// TestPastDeadlines: waits whose absolute deadline has already passed
// return at once under snap as natively (clock_nanosleep TIMER_ABSTIME on
// both clocks, a futex with an absolute realtime timeout). Such deadlines
// are routine right after a restore. The deadlines are clamped at the
// clock's zero, so the output does not depend on the machine's uptime.
func TestPastDeadlines(t *testing.T) {
	want := []string{
		"clock_nanosleep(CLOCK_MONOTONIC, ABSTIME, 1 ms ago) = 0",
		"clock_nanosleep(CLOCK_MONOTONIC, ABSTIME, 1000 s ago or 0) = 0",
		"clock_nanosleep(CLOCK_REALTIME, ABSTIME, 1 ms ago) = 0",
		"clock_nanosleep(CLOCK_REALTIME, ABSTIME, 1 s ago or 0) = 0",
		"clock_nanosleep(CLOCK_REALTIME, ABSTIME, 1000 s ago or 0) = 0",
		"clock_nanosleep(CLOCK_MONOTONIC, ABSTIME, 0) = 0",
		"pthread_cond_timedwait(1 s ago) timed out: yes",
	}
	for _, lc := range libcs {
		t.Run(lc.Name, func(t *testing.T) {
			t.Parallel()
			bin := program(t, lc, "pastdeadline")
			compare(t, lc.Name+"/pastdeadline", []string{bin}, spec{want: want, zdtm: zdtmSpec{fast: true}})
		})
	}
}
