package kernel

import "testing"

func TestFutexRequeueLocked(t *testing.T) {
	tests := []struct {
		name          string
		waiters       int // on address 0x10
		nWake, nMove  int
		to            uint64
		want          int
		woken, moved  int
		leftOnFrom    int
		alreadyOnDest int
	}{
		{"wake one move rest", 4, 1, 10, 0x20, 4, 1, 3, 0, 0},
		{"move behind existing", 3, 0, 2, 0x20, 2, 0, 2, 1, 2},
		{"wake only", 3, 2, 0, 0x20, 2, 2, 0, 1, 0},
		{"none waiting", 0, 1, 1, 0x20, 0, 0, 0, 0, 0},
		{"same address", 3, 1, 1, 0x10, 2, 1, 0, 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ft := &futexTable{waiters: map[uint64][]*futexWaiter{}}
			var ws []*futexWaiter
			for range tc.waiters {
				w := &futexWaiter{addr: 0x10, bitset: futexBitsetMatchAny, woken: make(chan struct{})}
				ft.waiters[0x10] = append(ft.waiters[0x10], w)
				ws = append(ws, w)
			}
			for range tc.alreadyOnDest {
				w := &futexWaiter{addr: 0x20, bitset: futexBitsetMatchAny, woken: make(chan struct{})}
				ft.waiters[0x20] = append(ft.waiters[0x20], w)
			}
			if got := ft.requeueLocked(0x10, tc.to, tc.nWake, tc.nMove); got != tc.want {
				t.Errorf("requeueLocked = %d, want %d", got, tc.want)
			}
			woken := 0
			for i, w := range ws {
				select {
				case <-w.woken:
					woken++
					if i >= tc.nWake {
						t.Errorf("waiter %d woken, want only the first %d", i, tc.nWake)
					}
				default:
				}
			}
			if woken != tc.woken {
				t.Errorf("woken = %d, want %d", woken, tc.woken)
			}
			if tc.to != 0x10 {
				dest := ft.waiters[tc.to]
				if len(dest) != tc.alreadyOnDest+tc.moved {
					t.Fatalf("waiters on destination = %d, want %d", len(dest), tc.alreadyOnDest+tc.moved)
				}
				for i, w := range dest[tc.alreadyOnDest:] {
					if w != ws[tc.nWake+i] || w.addr != tc.to {
						t.Errorf("destination waiter %d is not moved waiter %d (addr %#x)", tc.alreadyOnDest+i, tc.nWake+i, w.addr)
					}
				}
			}
			if got := len(ft.waiters[0x10]); got != tc.leftOnFrom {
				t.Errorf("waiters left on source = %d, want %d", got, tc.leftOnFrom)
			}
		})
	}
}

func TestFutexWakeOpDecoding(t *testing.T) {
	tests := []struct {
		v    uint32
		want int32
	}{{0, 0}, {1, 1}, {0x7ff, 2047}, {0x800, -2048}, {0xfff, -1}, {0x1005, 5}}
	for _, tc := range tests {
		if got := signExtend12(tc.v); got != tc.want {
			t.Errorf("signExtend12(%#x) = %d, want %d", tc.v, got, tc.want)
		}
	}
	cmps := []struct {
		old  int32
		cmp  uint32
		arg  int32
		want bool
	}{
		{5, futexOpCmpEq, 5, true}, {5, futexOpCmpNe, 5, false}, {-1, futexOpCmpLt, 0, true},
		{0, futexOpCmpLe, 0, true}, {1, futexOpCmpGt, 1, false}, {1, futexOpCmpGe, 1, true},
	}
	for _, tc := range cmps {
		if got := futexCompare(tc.old, tc.cmp, tc.arg); got != tc.want {
			t.Errorf("futexCompare(%d, %d, %d) = %v, want %v", tc.old, tc.cmp, tc.arg, got, tc.want)
		}
	}
}
