//go:build linux && amd64

package ptrace

import (
	"math/rand"
	"testing"

	"snapshotter/platform"
)

// TestSetMapping checks the mapping table against a page-by-page model
// after each of many random maps, protections and unmaps: same access at
// every page, and the table sorted, non-overlapping, without empty
// entries.
func TestSetMapping(t *testing.T) {
	const pages = 64
	rng := rand.New(rand.NewSource(1))
	accesses := []platform.AccessType{platform.Read, platform.ReadWrite, platform.AnyAccess}
	a := &addressSpace{}
	var model [pages]*platform.AccessType
	for step := 0; step < 5000; step++ {
		lo := rng.Intn(pages)
		hi := lo + 1 + rng.Intn(pages-lo)
		var at *platform.AccessType
		if rng.Intn(4) != 0 {
			x := accesses[rng.Intn(len(accesses))]
			at = &x
		}
		a.setMappingLocked(uint64(lo)*pageSize, uint64(hi)*pageSize, at)
		for p := lo; p < hi; p++ {
			model[p] = at
		}
		for k, m := range a.maps {
			if m.start >= m.end || (k > 0 && a.maps[k-1].end > m.start) {
				t.Fatalf("step %d: table %v is not sorted, disjoint and without empty entries", step, a.maps)
			}
		}
		for p := 0; p < pages; p++ {
			got, ok := a.accessAt(uint64(p) * pageSize)
			if ok != (model[p] != nil) || (ok && got != *model[p]) {
				t.Fatalf("step %d: page %d: access %v (mapped %v), want %v", step, p, got, ok, model[p])
			}
		}
	}
}
