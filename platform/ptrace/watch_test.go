//go:build linux && amd64

package ptrace

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"snapshotter/internal/prereq"
	"snapshotter/platform"
)

// TestWatchWrites: the stub's writes to pages WriteProtect protected are
// reported once each, with the page's address, and complete once
// Unprotect lifts the protection; a mapping replaced since, or everything
// after UnwatchAll, is no longer watched.
func TestWatchWrites(t *testing.T) {
	locked(t)
	e := newEnv(t, 1<<20)
	a := e.newSpace(t)
	c := e.newContext(t)
	const base, pages = 0x1000_0000, 8
	if err := a.MapFile(base, dataOff, pages*pageSize, platform.ReadWrite, false); err != nil {
		t.Fatalf("MapFile = %v", err)
	}
	var mu sync.Mutex
	var reported []int
	err := a.WatchWrites(func(addr uint64) {
		mu.Lock()
		reported = append(reported, int((addr-base)/pageSize))
		mu.Unlock()
		if err := a.Unprotect(addr, pageSize); err != nil {
			t.Errorf("Unprotect(%#x) = %v", addr, err)
		}
	})
	if errors.Is(err, platform.ErrWatchUnsupported) {
		prereq.Missing(t, "%v", err)
	}
	if err != nil {
		t.Fatalf("WatchWrites = %v", err)
	}
	// touch has the stub store 1 at the start of each page of ps
	// (ascending, evenly spaced), and returns the pages reported.
	touch := func(ps ...int) []int {
		for _, p := range ps {
			e.mem[dataOff+p*pageSize] = 0
		}
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offTouch
		st.Regs.Rdi = base + uint64(ps[0])*pageSize
		st.Regs.Rdx = pageSize
		if len(ps) > 1 {
			st.Regs.Rdx = uint64(ps[1]-ps[0]) * pageSize
		}
		st.Regs.Rcx = uint64(len(ps))
		if _, _, err := switchOnce(c, a, st); err != nil {
			t.Fatalf("Switch(touch %v) = %v", ps, err)
		}
		for _, p := range ps {
			if e.mem[dataOff+p*pageSize] != 1 {
				t.Errorf("page %d not written", p)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		r := reported
		reported = nil
		return r
	}
	for _, step := range []struct {
		name    string
		before  func() error
		touch   []int
		want    []int
		watched bool
	}{
		{"not protected", nil, []int{1, 5}, nil, false},
		{"protected", func() error { return a.WriteProtect(base, pages*pageSize) }, []int{1, 5}, []int{1, 5}, true},
		{"written once", nil, []int{1, 5}, nil, true},
		{"protected again", func() error { return a.WriteProtect(base+5*pageSize, pageSize) }, []int{1, 5}, []int{5}, true},
		{"mapped anew", func() error {
			if err := a.WriteProtect(base, pages*pageSize); err != nil {
				return err
			}
			return a.MapFile(base+3*pageSize, dataOff+3*pageSize, pageSize, platform.ReadWrite, false)
		}, []int{2, 3, 4}, []int{2, 4}, false},
		{"unwatched", func() error { a.UnwatchAll(); return nil }, []int{6, 7}, nil, false},
	} {
		if step.before != nil {
			if err := step.before(); err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
		}
		if got := touch(step.touch...); !slices.Equal(got, step.want) {
			t.Errorf("%s: writes to pages %v reported %v, want %v", step.name, step.touch, got, step.want)
		}
		if got := a.Watched(base, pages*pageSize); got != step.watched {
			t.Errorf("%s: Watched(all) = %v, want %v", step.name, got, step.watched)
		}
	}
}
