package early

import (
	"strings"
	"testing"
)

func TestSandboxPlatform(t *testing.T) {
	tests := []struct {
		args     string
		platform string
		ok       bool
	}{
		{"run -- /bin/true", "ptrace", true},
		{"run /bin/true", "ptrace", true},
		{"run --debug --rootfs /r -- prog a b", "ptrace", true},
		{"run --rootfs=/r --platform=other -- prog", "other", true},
		{"run --pids 20 --memory=1G -- prog", "ptrace", true},
		{"run --tmpfs /scratch --tmpfs=/t:size=1M -- prog", "ptrace", true},
		{"--state-dir /s --store=file:///x run --platform ptrace -- prog", "ptrace", true},
		{"run --store s3://b/p prog", "ptrace", true},
		{"sentry --state-dir /s --id abc --ready-fd 3 --rootfs / --platform ptrace -- prog", "ptrace", true},
		{"run -d -- prog", "", false},
		{"run --detach=true prog", "", false},
		{"sentry --id abc --ready-fd 3 --launched-at 17 -- prog", "ptrace", true},
		{"sentry --id abc --ready-fd 3 --restore file:///img", "ptrace", true},
		{"sentry --id abc --ready-fd 3 --pool p --platform other --restore file:///img", "other", true},
		{"sentry --id abc --ready-fd 3 --launched-at=17 --restore=img --platform other --verify k.pem", "other", true},
		{"restore file:///img", "ptrace", true},
		{"restore img --timings --platform=other", "other", true},
		{"--store /s restore --verify k.pem --rootfs / img --pids 5", "ptrace", true},
		{"restore img -d", "", false},
		{"restore -d --stdout o img", "", false},
		{"restore", "", false},
		{"restore img other", "", false},
		{"restore -- img", "", false},
		{"restore img --unknown", "", false},
		{"run --restore img -- prog", "", false},
		{"run", "", false},
		{"run --", "", false},
		{"run --rootfs", "", false},
		{"run --unknown prog", "", false},
		{"version", "", false},
		{"save abc", "", false},
		{"--help", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.args, func(t *testing.T) {
			platform, ok := SandboxPlatform(strings.Fields(tc.args))
			if platform != tc.platform || ok != tc.ok {
				t.Errorf("SandboxPlatform(%q) = %q, %v, want %q, %v", tc.args, platform, ok, tc.platform, tc.ok)
			}
		})
	}
}

func TestPoolMember(t *testing.T) {
	tests := []struct {
		args string
		want bool
	}{
		{"sentry --id a --pool p --restore img", true},
		{"sentry --id a --pool=p --restore img", true},
		{"sentry --id a --restore img", false},
		{"sentry --id a -- prog --pool p", false},
		{"restore img", false},
	}
	for _, tc := range tests {
		if got := poolMember(strings.Fields(tc.args)); got != tc.want {
			t.Errorf("poolMember(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestHeapRange(t *testing.T) {
	const maps = `00400000-008ee000 r-xp 00000000 fe:00 1 /snap
00dfe000-00e61000 rw-p 009fe000 fe:00 1 /snap
c000000000-c000400000 ---p 00000000 00:00 0
c000400000-c000c00000 rw-p 00000000 00:00 0
7ffd17fe0000-7ffd18000000 rw-p 00000000 00:00 0 [stack]
`
	tests := []struct {
		name   string
		maps   string
		addr   uint64
		lo, hi uint64
		ok     bool
	}{
		{"heap start", maps, 0xc000400010, 0xc000400000, 0xc000600000, true},
		{"inside", maps, 0xc000712345, 0xc000512000, 0xc000912000, true},
		{"near the end", maps, 0xc000bff000, 0xc0009ff000, 0xc000c00000, true},
		{"small mapping", maps, 0xdff000, 0xdfe000, 0xe61000, true},
		{"reserved, not mapped", maps, 0xc000100000, 0, 0, false},
		{"not writable", maps, 0x401000, 0, 0, false},
		{"nowhere", maps, 0x1000, 0, 0, false},
		{"no newline at the end", "c000400000-c000c00000 rw-p 0 0:0 0", 0xc000400000, 0xc000400000, 0xc000600000, true},
		{"garbage", "zz\n-\nc0-\nc000400000-c000c00000\n", 0xc000400000, 0, 0, false},
		{"empty", "", 0xc000400000, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi, ok := heapRange([]byte(tc.maps), tc.addr, 4<<20)
			if lo != tc.lo || hi != tc.hi || ok != tc.ok {
				t.Errorf("heapRange(%#x) = %#x, %#x, %v, want %#x, %#x, %v", tc.addr, lo, hi, ok, tc.lo, tc.hi, tc.ok)
			}
		})
	}
}

// TestPopulateHeap checks that populating the heap leaves it usable (the
// populated range holds the probe object, which keeps its value).
func TestPopulateHeap(t *testing.T) {
	populateHeap()
	heapProbe[0] = 42
	if heapProbe[0] != 42 {
		t.Fatalf("heap probe = %d after populateHeap, want 42", heapProbe[0])
	}
}

func TestSplitCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"snap\x00run\x00--\x00/bin/true\x00", []string{"run", "--", "/bin/true"}},
		{"snap\x00", []string{}},
		{"snap\x00\x00x\x00", []string{"", "x"}},
		{"snap\x00a", []string{"a"}},
		{"", nil},
	}
	for _, tc := range tests {
		got := splitCmdline([]byte(tc.in))
		if len(got) != len(tc.want) || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("splitCmdline(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
