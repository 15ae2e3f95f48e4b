// Package smaps reads how much of a file a process maps, from its
// /proc/PID/smaps: for tests that check that processes share pages.
package smaps

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mapped sums, over process pid's mappings of path, the resident
// kilobytes (Rss) and those of them that another process maps too
// (Shared_Clean + Shared_Dirty).
func Mapped(pid int, path string) (rss, shared uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			// A mapping's header: address, permissions, offset, device,
			// inode, then the path if it has one.
			in = len(f) >= 6 && f[len(f)-1] == path
			continue
		}
		if !in || len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss += n
		case "Shared_Clean:", "Shared_Dirty:":
			shared += n
		}
	}
	return rss, shared, nil
}
