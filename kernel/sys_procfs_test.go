package kernel

import "testing"

// TestProcMaps checks the /proc/PID/maps line format against lines Linux
// prints.
func TestProcMaps(t *testing.T) {
	tests := []struct {
		name string
		in   VMAInfo
		want string
	}{
		{"anonymous", VMAInfo{Start: 0x7fd28db5a000, End: 0x7fd28db5d000, Perms: "rw-", Private: true},
			"7fd28db5a000-7fd28db5d000 rw-p 00000000 00:00 0 \n"},
		{"heap", VMAInfo{Start: 0x55e283884000, End: 0x55e2838c6000, Perms: "rw-", Private: true, Name: "[heap]"},
			"55e283884000-55e2838c6000 rw-p 00000000 00:00 0                          [heap]\n"},
		{"short addresses", VMAInfo{Start: 0x400000, End: 0x401000, Perms: "r-x", Private: true, Name: "/bin/prog"},
			"00400000-00401000 r-xp 00000000 00:00 0                                  /bin/prog\n"},
		{"shared", VMAInfo{Start: 0x1000, End: 0x2000, Perms: "---"},
			"00001000-00002000 ---s 00000000 00:00 0 \n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(procMaps([]VMAInfo{tc.in})); got != tc.want {
				t.Errorf("procMaps(%+v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
