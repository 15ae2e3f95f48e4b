package kernel

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func init() {
	// pages: 8 MiB, every third page written with non-zero data, the
	// others never touched; then it sleeps.
	pausePrograms["pages"] = `#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
	char *p = mmap(0, 8 << 20, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
	for (long i = 0; i < (8 << 20) / 4096; i += 3) memset(p + i * 4096, 0x5a, 4096);
	printf("ready\n"); fflush(stdout);
	for (;;) sleep(1);
}`
}

func TestMemoryRangesCoverNonZero(t *testing.T) {
	s := startPauseSandbox(t, "pages")
	s.next(t)
	if _, err := s.k.MemoryRanges(); !errors.Is(err, ErrNotPaused) {
		t.Errorf("MemoryRanges() while running = %v, want ErrNotPaused", err)
	}
	if err := s.k.SaveState(context.Background(), &bytes.Buffer{}); !errors.Is(err, ErrNotPaused) {
		t.Errorf("SaveState() while running = %v, want ErrNotPaused", err)
	}
	s.k.Pause()
	defer s.k.Unpause()
	ranges, err := s.k.MemoryRanges()
	if err != nil {
		t.Fatalf("MemoryRanges() = %v", err)
	}
	covered := map[uint64]bool{}
	var returned uint64
	for i, r := range ranges {
		if r.Off%pageSize != 0 || len(r.Data)%pageSize != 0 || len(r.Data) == 0 {
			t.Fatalf("range %d = [%#x, +%#x), want page-aligned and non-empty", i, r.Off, len(r.Data))
		}
		if i > 0 && r.Off < ranges[i-1].Off+uint64(len(ranges[i-1].Data)) {
			t.Fatalf("range %d at %#x overlaps or precedes the previous one", i, r.Off)
		}
		for p := uint64(0); p < uint64(len(r.Data)); p += pageSize {
			covered[r.Off+p] = true
		}
		returned += uint64(len(r.Data))
	}
	var allocated, nonZero uint64
	zero := make([]byte, pageSize)
	for _, r := range s.k.mf.Allocated() {
		allocated += r.Length()
		b, _ := s.k.mf.Bytes(r.Start, r.Length())
		for p := uint64(0); p < r.Length(); p += pageSize {
			if !covered[r.Start+p] && !bytes.Equal(b[p:p+pageSize], zero) {
				t.Fatalf("non-zero page at memory file offset %#x is not in MemoryRanges", r.Start+p)
			}
			if !bytes.Equal(b[p:p+pageSize], zero) {
				nonZero += pageSize
			}
		}
	}
	// The 8 MiB region has about 5.3 MiB of untouched pages: they must not
	// be returned.
	if returned >= allocated-4<<20 || returned < nonZero {
		t.Errorf("MemoryRanges() returned %d bytes of %d allocated (%d non-zero), want the untouched pages left out",
			returned, allocated, nonZero)
	}
	// AllocatedMemory's reader returns the same bytes as the mapping.
	alloc, rd, err := s.k.AllocatedMemory()
	if err != nil || len(alloc) == 0 {
		t.Fatalf("AllocatedMemory() = %v, %v", alloc, err)
	}
	for _, a := range alloc {
		want, _ := s.k.mf.Bytes(a[0], a[1])
		got := make([]byte, a[1])
		if _, err := rd.ReadAt(got, int64(a[0])); err != nil {
			t.Fatalf("ReadAt(%#x, %#x) = %v", a[0], a[1], err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ReadAt(%#x, %#x) differs from the memory file's mapping", a[0], a[1])
		}
	}
	var state bytes.Buffer
	if err := s.k.SaveState(context.Background(), &state); err != nil {
		t.Fatalf("SaveState() = %v", err)
	}
	if !strings.HasPrefix(state.String(), stateMagic) {
		t.Errorf("state blob starts with %q, want %q", state.Bytes()[:8], stateMagic)
	}
}

func TestRestoreBadHeader(t *testing.T) {
	good := make([]byte, stateHeaderSize)
	copy(good, stateMagic)
	binary.LittleEndian.PutUint16(good[8:], stateMajor)
	binary.LittleEndian.PutUint16(good[10:], stateMinor)
	version := func(major, minor uint16) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint16(b[8:], major)
		binary.LittleEndian.PutUint16(b[10:], minor)
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want error // nil: any error
	}{
		{"empty", nil, ErrBadState},
		{"truncated header", good[:10], ErrBadState},
		{"bad magic", append([]byte("NOTSNAP!"), good[8:]...), ErrBadState},
		{"newer major", version(stateMajor+1, 0), ErrIncompatibleVersion},
		{"older major", version(stateMajor-1, stateMinor), ErrIncompatibleVersion},
		{"newer minor", version(stateMajor, stateMinor+1), ErrIncompatibleVersion},
		{"header only", good, nil},
		{"garbage stream", append(bytes.Clone(good), "garbage"...), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := Restore(context.Background(), bytes.NewReader(tc.in), RestoreOptions{})
			if err == nil {
				k.Release()
				t.Fatalf("Restore(%s) = nil error", tc.name)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Restore(%s) = %v, want %v", tc.name, err, tc.want)
			}
			if tc.want == nil && errors.Is(err, ErrIncompatibleVersion) {
				t.Errorf("Restore(%s) = %v, want an error other than %v", tc.name, err, ErrIncompatibleVersion)
			}
		})
	}
}

// TestCheckStateVersion applies Firecracker's rule: the same major, a
// minor up to ours.
func TestCheckStateVersion(t *testing.T) {
	for _, tc := range []struct {
		major, minor uint16
		ok           bool
	}{
		{stateMajor, stateMinor, true},
		{stateMajor, 0, true},
		{stateMajor, stateMinor + 1, false},
		{stateMajor, 0xffff, false},
		{stateMajor + 1, 0, false},
		{stateMajor - 1, 0, false},
	} {
		err := checkStateVersion(tc.major, tc.minor)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrIncompatibleVersion)) {
			t.Errorf("checkStateVersion(%d, %d) = %v, want ok %v or ErrIncompatibleVersion", tc.major, tc.minor, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("checkStateVersion(%d, %d) = %q, want one line", tc.major, tc.minor, err)
		}
	}
}
