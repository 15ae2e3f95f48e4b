package checkpoint

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestFirstSaveMemtouch saves memtouch into an empty store and restores
// it: the restored program checks every slice of its memory against the
// checksums it took at its start. At 8 MiB the memory file lies within
// what a save reads while the walk for holes runs; at 96 MiB the rest
// comes from the walk's ranges.
func TestFirstSaveMemtouch(t *testing.T) {
	e := newEnv(t)
	for _, mib := range []string{"8", "96"} {
		t.Run(mib+"MiB", func(t *testing.T) {
			id, out := e.runDetached("", program(t, "memtouch"), mib, "/dev/stdout")
			store := filepath.Join(e.dir, "store-"+mib)
			uri, _ := e.saveAfter(id, out, 2, "--to", fmt.Sprintf("file://%s/mt", store))
			rid, rout := e.restoreDetached(uri, "")
			// memtouch checks one slice of 16 per line.
			ls := waitLines(t, rout, 17)
			checkMemtouch(t, ls)
			e.must("kill", rid)
		})
	}
}
