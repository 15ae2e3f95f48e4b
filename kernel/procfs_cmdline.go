package kernel

import "bytes"

// argArea is where a program's initial stack holds its argument strings,
// [Start, End), and its environment strings, [End, EnvEnd): Linux's
// mm->arg_start, arg_end and env_end. Zero before setupStack.
//
// +stateify savable
type argArea struct {
	Start, End, EnvEnd uint64
}

// maxCmdline bounds what /proc/PID/cmdline returns; the strings never
// exceed it (buildStack caps them at maxArgStrings).
const maxCmdline = maxArgStrings

// procCmdline returns /proc/PID/cmdline for mm as Linux's get_mm_cmdline
// does: the bytes of the argument area as they are now, NUL-separated.
// If the program overwrote the final NUL (setproctitle(3) style), the
// result is what lies from the start up to the first NUL, which may be in
// the environment area, at most a page. An area
// that cannot be read (unmapped since) gives what was read before it.
func procCmdline(mm *MM) []byte {
	if mm == nil {
		return nil
	}
	a := mm.args
	if a.Start >= a.End || a.End > a.EnvEnd || a.EnvEnd-a.Start > maxCmdline {
		return nil
	}
	buf := make([]byte, a.EnvEnd-a.Start)
	n := readPrefix(mm, a.Start, buf)
	args := min(n, int(a.End-a.Start))
	if args == 0 {
		return nil
	}
	if buf[args-1] == 0 {
		return buf[:args]
	}
	// setproctitle: up to the first NUL (included), at most a page, which
	// may run on into the environment area.
	lim := min(n, pageSize)
	if i := bytes.IndexByte(buf[:lim], 0); i >= 0 {
		return buf[:i+1]
	}
	return buf[:lim]
}

// readPrefix reads mm at addr into buf page by page and returns how many
// bytes it could read before the first unreadable page.
func readPrefix(mm *MM, addr uint64, buf []byte) int {
	n := 0
	for n < len(buf) {
		chunk := min(len(buf)-n, int(pageSize-(addr+uint64(n))%pageSize))
		if mm.CopyIn(addr+uint64(n), buf[n:n+chunk]) != nil {
			break
		}
		n += chunk
	}
	return n
}
