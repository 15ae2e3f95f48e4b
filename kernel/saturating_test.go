package kernel

import (
	"math"
	"testing"
)

func TestSaturatingAdd(t *testing.T) {
	for _, c := range []struct{ a, b, want int64 }{
		{10, 5, 15},
		{10, -5, 5},
		{10, -20, -10},
		{math.MaxInt64 - 1, 5, math.MaxInt64},
		{math.MinInt64 + 1, -5, math.MinInt64},
		{0, math.MinInt64, math.MinInt64},
		{-1, math.MaxInt64, math.MaxInt64 - 1},
	} {
		if got := saturatingAdd(c.a, c.b); got != c.want {
			t.Errorf("saturatingAdd(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
