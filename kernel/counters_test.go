package kernel

import (
	"testing"
	"time"
)

// TestAfterSyscalls: the call arranged runs once, at the n-th system call
// counted after it was arranged, and a later arrangement replaces one not
// yet run.
func TestAfterSyscalls(t *testing.T) {
	tests := []struct {
		name    string
		before  int // system calls counted before arranging
		n       uint64
		replace bool // arrange another call before the first is due
		counted int  // system calls counted after arranging
		want    []string
	}{
		{"not yet", 0, 2, false, 1, nil},
		{"due", 0, 2, false, 2, []string{"first"}},
		{"once", 3, 2, false, 6, []string{"first"}},
		{"replaced", 0, 2, true, 4, []string{"second"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := &Kernel{}
			for range tc.before {
				k.counts.countSyscall()
			}
			ran := make(chan string, 4)
			k.AfterSyscalls(tc.n, func() { ran <- "first" })
			if tc.replace {
				k.AfterSyscalls(tc.n, func() { ran <- "second" })
			}
			for range tc.counted {
				k.counts.countSyscall()
			}
			var got []string
			for range tc.want {
				select {
				case s := <-ran:
					got = append(got, s)
				case <-time.After(10 * time.Second):
					t.Fatalf("AfterSyscalls(%d): got calls %q, want %q", tc.n, got, tc.want)
				}
			}
			// A call not due, or due only once, must not run (again):
			// looked for a little while (a wrong call may be missed,
			// never a right one reported).
			select {
			case s := <-ran:
				got = append(got, s)
			case <-time.After(20 * time.Millisecond):
			}
			if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
				t.Errorf("AfterSyscalls(%d) after %d system calls: calls %q, want %q", tc.n, tc.counted, got, tc.want)
			}
		})
	}
}
