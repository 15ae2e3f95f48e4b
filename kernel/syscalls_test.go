package kernel

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSyscallTableRows checks that every row is complete for its level.
func TestSyscallTableRows(t *testing.T) {
	rows := 0
	for nr, e := range syscallTable {
		if e.name == "" {
			if e.fn != nil || e.level != 0 {
				t.Errorf("row %d has no name but a handler or level", nr)
			}
			continue
		}
		rows++
		switch e.level {
		case supportFull:
			if e.fn == nil || e.note != "" || e.errno != 0 {
				t.Errorf("full row %d (%s): handler %v, note %q, errno %v; want a handler only", nr, e.name, e.fn != nil, e.note, e.errno)
			}
		case supportPartial:
			if e.fn == nil || e.note == "" || e.errno != 0 {
				t.Errorf("partial row %d (%s): handler %v, note %q, errno %v; want a handler and a note", nr, e.name, e.fn != nil, e.note, e.errno)
			}
		case supportUnsupported:
			if e.fn != nil || e.note == "" || e.errno == 0 {
				t.Errorf("unsupported row %d (%s): handler %v, note %q, errno %v; want a note and an errno only", nr, e.name, e.fn != nil, e.note, e.errno)
			}
		default:
			t.Errorf("row %d (%s) has level %d", nr, e.name, e.level)
		}
	}
	// x86-64 numbers run from 0 to 334 and from 424 on; uretprobe (335)
	// and uprobe (336) came later.
	if want := 335 + 2 + int(unix.SYS_RSEQ_SLICE_YIELD) - 424 + 1; rows != want {
		t.Errorf("table has %d rows, want %d", rows, want)
	}
}

// TestSyscallTableNames compares the table's names with the C library's
// header, which lists every number Linux defined when it was made.
func TestSyscallTableNames(t *testing.T) {
	const header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
	b, err := os.ReadFile(header)
	if err != nil {
		t.Skipf("no %s: %v", header, err)
	}
	defs := regexp.MustCompile(`(?m)^#define __NR_(\w+) (\d+)$`).FindAllSubmatch(b, -1)
	if len(defs) < 300 {
		t.Fatalf("%s: found %d definitions, want at least 300", header, len(defs))
	}
	for _, d := range defs {
		nr, _ := strconv.Atoi(string(d[2]))
		if got := syscallTable[nr].name; got != string(d[1]) {
			t.Errorf("syscallTable[%d].name = %q, want %q (%s)", nr, got, d[1], header)
		}
	}
}

func TestSyscallName(t *testing.T) {
	tests := []struct {
		nr   uint64
		want string
	}{
		{0, "read"},
		{unix.SYS_IO_URING_SETUP, "io_uring_setup"},
		{400, "#400"},
		{1 << 40, "#1099511627776"},
	}
	for _, tc := range tests {
		if got := syscallName(tc.nr); got != tc.want {
			t.Errorf("syscallName(%d) = %q, want %q", tc.nr, got, tc.want)
		}
	}
}
