package runner

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxSunPath is the size of sockaddr_un.sun_path less the terminating NUL.
const maxSunPath = 107

// shortSocketPath returns a path for bind or connect that names path even
// when path is longer than sun_path allows: it then opens the directory and
// goes through /proc/self/fd/N. The caller must call done after bind or
// connect returns.
func shortSocketPath(path string) (addr string, done func(), err error) {
	if len(path) <= maxSunPath {
		return path, func() {}, nil
	}
	dir, base := filepath.Split(path)
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("open socket directory %s: %w", dir, err)
	}
	addr = fmt.Sprintf("/proc/self/fd/%d/%s", fd, base)
	if len(addr) > maxSunPath {
		unix.Close(fd)
		return "", nil, fmt.Errorf("socket name %q too long", base)
	}
	return addr, func() { unix.Close(fd) }, nil
}
