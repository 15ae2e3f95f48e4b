package runner

import (
	"fmt"
	"testing"
)

func TestBeyond(t *testing.T) {
	ranges := [][2]uint64{{0, 0x1000}, {0x3000, 0x2000}, {0x8000, 0x1000}}
	tests := []struct {
		off  uint64
		want [][2]uint64
	}{
		{0, ranges},
		{0x1000, [][2]uint64{{0x3000, 0x2000}, {0x8000, 0x1000}}},
		{0x4000, [][2]uint64{{0x4000, 0x1000}, {0x8000, 0x1000}}},
		{0x5000, [][2]uint64{{0x8000, 0x1000}}},
		{0x9000, nil},
	}
	for _, tc := range tests {
		if got := beyond(ranges, tc.off); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("beyond(%v, %#x) = %v, want %v", ranges, tc.off, got, tc.want)
		}
	}
}

// TestPlanNothing checks that a plan of no memory hands the writer
// nothing (not an empty reuse, which a signed image refuses).
func TestPlanNothing(t *testing.T) {
	p := planIncremental(nil, nil, nil)
	if len(p.ops) != 0 || p.bytes() != 0 {
		t.Errorf("planIncremental(nil) = %d ops, %d bytes; want none", len(p.ops), p.bytes())
	}
}
