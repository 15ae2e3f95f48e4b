package kernel

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"snapshotter/kernel/vfs"
)

// The host's /proc describes the sentry, so the kernel answers for the
// per-process files programs read about themselves. They are generated
// when opened (vfs.NewSynthetic).

// procSelfFile returns the guest path and (if withData) the contents of the
// per-process file that p (relative to dir) names, if the kernel generates
// it: /proc/self/maps, /proc/<own pid>/maps or /proc/thread-self/maps.
func (t *Task) procSelfFile(dir *vfs.File, p string, withData bool) (string, []byte, bool) {
	full := p
	if !strings.HasPrefix(p, "/") {
		if dir != nil && !dir.IsDir() {
			return "", nil, false // ENOTDIR, or AT_EMPTY_PATH: dir itself
		}
		if dir != nil {
			full = dir.Path() + "/" + p
		} else {
			full = t.tg.fs.Getcwd() + "/" + p
		}
	}
	full = path.Clean(full)
	rest, ok := strings.CutPrefix(full, "/proc/")
	if !ok {
		return "", nil, false
	}
	who, file, ok := strings.Cut(rest, "/")
	if !ok {
		return "", nil, false
	}
	switch who {
	case "self", "thread-self", strconv.Itoa(int(t.tg.tgid)):
	default:
		return "", nil, false
	}
	switch file {
	case "maps":
		if !withData {
			return full, nil, true
		}
		return full, procMaps(t.tg.mm.Mappings()), true
	}
	return "", nil, false
}

// procMaps formats mappings as Linux's /proc/PID/maps. The offset, device
// and inode columns are 0: the sentry copies file contents into its memory
// file and does not keep where they came from.
func procMaps(ms []VMAInfo) []byte {
	var b strings.Builder
	for _, m := range ms {
		sp := byte('s')
		if m.Private {
			sp = 'p'
		}
		line := fmt.Sprintf("%08x-%08x %s%c %08x %02x:%02x %d ", m.Start, m.End, m.Perms, sp, 0, 0, 0, 0)
		b.WriteString(line)
		if m.Name != "" {
			// Linux pads the name to column 74 (25 + 6 pointer widths).
			if pad := 73 - len(line); pad > 0 {
				b.WriteString(strings.Repeat(" ", pad))
			}
			b.WriteString(m.Name)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
