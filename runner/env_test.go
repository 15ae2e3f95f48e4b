package runner

import (
	"errors"
	"slices"
	"testing"
)

func TestStartEnv(t *testing.T) {
	base := []string{"PATH=/bin", "HOME=/root", "EMPTY="}
	tests := []struct {
		name    string
		clear   bool
		set     []string
		want    []string
		wantErr error
	}{
		{"inherit", false, nil, base, nil},
		{"add", false, []string{"K=V"}, []string{"PATH=/bin", "HOME=/root", "EMPTY=", "K=V"}, nil},
		{"replace in place", false, []string{"HOME=/x"}, []string{"PATH=/bin", "HOME=/x", "EMPTY="}, nil},
		{"value with =", false, []string{"A=b=c"}, []string{"PATH=/bin", "HOME=/root", "EMPTY=", "A=b=c"}, nil},
		{"later wins", true, []string{"A=1", "B=2", "A=3"}, []string{"A=3", "B=2"}, nil},
		{"clear", true, nil, nil, nil},
		{"clear then set", true, []string{"K="}, []string{"K="}, nil},
		{"no =", false, []string{"K"}, nil, ErrInvalidEnv},
		{"empty name", true, []string{"=v"}, nil, ErrInvalidEnv},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := StartEnv(slices.Clone(base), tc.clear, tc.set)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("StartEnv(%v, %v) error = %v, want %v", tc.clear, tc.set, err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("StartEnv(%v, %v) = %q, want %q", tc.clear, tc.set, got, tc.want)
			}
		})
	}
}
