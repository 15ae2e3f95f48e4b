package runner

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ParseSignal parses a signal given as a number ("15"), a name with or
// without the SIG prefix, in any case ("TERM", "sigkill"), or a real-time
// signal relative to SIGRTMIN/SIGRTMAX ("RTMIN+2", "SIGRTMAX-1").
func ParseSignal(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("%w: %d is not in 1..64", ErrBadSignal, n)
		}
		return n, nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"SIGRTMIN", 34, 1}, {"SIGRTMAX", 64, -1}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		if rest == "" {
			return rt.base, nil
		}
		off, err := strconv.Atoi(rest)
		n := rt.base + off
		if err != nil || (rt.sign > 0) != (off > 0) || n < 34 || n > 64 {
			return 0, fmt.Errorf("%w: %q", ErrBadSignal, s)
		}
		return n, nil
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return int(sig), nil
	}
	return 0, fmt.Errorf("%w: %q", ErrBadSignal, s)
}
