package kernel

import (
	"strings"
	"testing"
)

// TestProcStatus checks /proc/PID/status lines against the format Linux
// prints for the same values.
func TestProcStatus(t *testing.T) {
	in := procTaskInfo{
		Name: "a\\b\nc", State: 'S', Umask: 0o22, Tgid: 7, Pid: 8, PPid: 1, Pgid: 7, Sid: 7,
		Creds: credentials{UID: 1000, EUID: 1001, SUID: 1002, FSUID: 1003, GID: 100, EGID: 101, SGID: 102, FSGID: 103,
			Groups: []uint32{4, 27}, CapPermitted: 1<<40 | 1, CapEffective: 1, CapBounding: capAll, CapAmbient: 1 << 7,
			NoNewPrivs: true},
		Threads: 3, VmSize: 5616 << 10, VmRSS: 1024 << 10,
		SigBlk: 1 << 9, SigIgn: 1 << 11, SigCgt: 1<<0 | 1<<63,
	}
	got := string(procStatus(in))
	for _, want := range []string{
		"Name:\ta\\\\b\\nc\n",
		"Umask:\t0022\n",
		"State:\tS (sleeping)\n",
		"Tgid:\t7\n",
		"Pid:\t8\n",
		"PPid:\t1\n",
		"NStgid:\t7\n",
		"NSpid:\t8\n",
		"Uid:\t1000\t1001\t1002\t1003\n",
		"Gid:\t100\t101\t102\t103\n",
		"Groups:\t4 27 \n",
		"VmSize:\t    5616 kB\n",
		"VmRSS:\t    1024 kB\n",
		"Threads:\t3\n",
		"SigBlk:\t0000000000000200\n",
		"SigIgn:\t0000000000000800\n",
		"SigCgt:\t8000000000000001\n",
		"CapInh:\t0000000000000000\n",
		"CapPrm:\t0000010000000001\n",
		"CapEff:\t0000000000000001\n",
		"CapBnd:\t000001ffffffffff\n",
		"CapAmb:\t0000000000000080\n",
		"NoNewPrivs:\t1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("procStatus(%+v) = %q, want a line %q", in, got, want)
		}
	}
	if !strings.HasPrefix(got, "Name:") || !strings.HasSuffix(got, "\n") {
		t.Errorf("procStatus(%+v) = %q, want Name: first and a final newline", in, got)
	}
}

// TestProcStat checks /proc/PID/stat: 52 fields, the comm unescaped in
// parentheses, and the fields at their proc(5) positions.
func TestProcStat(t *testing.T) {
	tests := []struct {
		name string
		in   procTaskInfo
		want map[int]string // 1-based field number after splitting at the last ')'
	}{
		{"plain", procTaskInfo{Name: "prog", State: 'R', Pid: 5, PPid: 1, Pgid: 5, Sid: 4, Threads: 2,
			VmSize: 8 << 20, VmRSS: 8 << 20, UserTicks: 3, SysTicks: 4, ExitSignal: 17, RSSLimit: rlimitInfinity,
			SigPnd: 1, ShdPnd: 2, SigBlk: 4, SigIgn: 8, SigCgt: 16, StartBrk: 0x5000,
			Args: argArea{Start: 0x7000, End: 0x7010, EnvEnd: 0x7100}},
			map[int]string{1: "5", 2: "(prog)", 3: "R", 4: "1", 5: "5", 6: "4", 8: "-1", 14: "3", 15: "4",
				18: "20", 19: "0", 20: "2", 23: "8388608", 24: "2048", 25: "18446744073709551615",
				31: "3", 32: "4", 33: "8", 34: "16", 38: "17", 47: "20480",
				48: "28672", 49: "28688", 50: "28688", 51: "28928", 52: "0"}},
		{"comm with parentheses and spaces", procTaskInfo{Name: "a) b (c", State: 'S', Pid: 9, ExitSignal: -1},
			map[int]string{1: "9", 2: "(a) b (c)", 3: "S", 38: "-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(procStat(tc.in))
			if !strings.HasSuffix(got, "\n") {
				t.Fatalf("procStat(%+v) = %q, want a final newline", tc.in, got)
			}
			open, close := strings.IndexByte(got, '('), strings.LastIndexByte(got, ')')
			if open < 0 || close < open {
				t.Fatalf("procStat(%+v) = %q, want a comm in parentheses", tc.in, got)
			}
			fields := append(strings.Fields(got[:open]), got[open:close+1])
			fields = append(fields, strings.Fields(got[close+1:])...)
			if len(fields) != 52 {
				t.Fatalf("procStat(%+v) has %d fields, want 52: %q", tc.in, len(fields), got)
			}
			for n, want := range tc.want {
				if fields[n-1] != want {
					t.Errorf("procStat(%+v) field %d = %q, want %q", tc.in, n, fields[n-1], want)
				}
			}
		})
	}
}
