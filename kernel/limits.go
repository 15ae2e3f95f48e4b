package kernel

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// Limits bound what one sandbox may take from the host. They are saved with
// the kernel and hold after a restore unless the restore overrides them.
//
// +stateify savable
type Limits struct {
	// Tasks is the most tasks (threads, of all processes together; Linux's
	// pids.max) that may exist at once. fork, vfork and clone beyond it
	// fail with EAGAIN. A process that has exited holds none. 0 means
	// DefaultTasks.
	Tasks int
	// Memory is the most bytes the sandbox's mappings may hold in the
	// memory file. Every mapping counts in full from the mmap, brk or mremap
	// that makes it (PROT_NONE reservations too: RLIMIT_AS summed over the
	// sandbox); one that would pass the limit fails with ENOMEM. A fork
	// shares private memory copy-on-write: a copy made at a write fault
	// that would pass the limit kills the process (task_run.go), as an OOM
	// kill. 0 means the memory file's whole reservation (unlimited).
	Memory uint64
}

const (
	// DefaultTasks is the task limit of a sandbox that sets none. Each
	// task costs the host a sentry thread and a stub thread.
	DefaultTasks = 4096
	// MaxTasks is the highest task limit: more tasks would risk the host's
	// process IDs and the sentry's thread limit.
	MaxTasks = 32768
	// MaxMemory is the highest memory limit: the memory file's
	// reservation.
	MaxMemory = memoryFileReserve
)

// withDefaults returns l with zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	if l.Tasks == 0 {
		l.Tasks = DefaultTasks
	}
	if l.Memory == 0 {
		l.Memory = MaxMemory
	}
	return l
}

// override returns l with the non-zero fields of o.
func (l Limits) override(o Limits) Limits {
	if o.Tasks != 0 {
		l.Tasks = o.Tasks
	}
	if o.Memory != 0 {
		l.Memory = o.Memory
	}
	return l
}

// Validate reports limits out of range, wrapping ErrBadLimit.
func (l Limits) Validate() error {
	if l.Tasks < 0 || l.Tasks > MaxTasks {
		return fmt.Errorf("%w: task limit %d is not between 1 and %d", ErrBadLimit, l.Tasks, MaxTasks)
	}
	if l.Memory > MaxMemory {
		return fmt.Errorf("%w: memory limit %d bytes exceeds the memory file's %d GiB reservation", ErrBadLimit, l.Memory, MaxMemory>>30)
	}
	if l.Memory != 0 && l.Memory < pageSize {
		return fmt.Errorf("%w: memory limit %d bytes is less than a page", ErrBadLimit, l.Memory)
	}
	return nil
}

// threadsMu serializes raising the Go runtime's thread limit.
var (
	threadsMu sync.Mutex
	// maxThreads is the thread limit this process has set. Protected by
	// threadsMu.
	maxThreads int
)

// applyLimits makes the limits effective: the memory file's, and the Go
// runtime's thread limit, which must stay above what the tasks can use
// (a task's thread, and threads blocked in host system calls for it), so
// that the sentry never dies of it before the task limit is reached.
func (k *Kernel) applyLimits() {
	k.mf.setLimit(k.limits.Memory)
	need := 4*k.limits.Tasks + 1000
	threadsMu.Lock()
	defer threadsMu.Unlock()
	if need > maxThreads {
		prev := debug.SetMaxThreads(need)
		if prev > need {
			debug.SetMaxThreads(prev)
			need = prev
		}
		maxThreads = need
	}
}

// ParseMemoryLimit parses a memory limit as snap's --memory takes it: a
// number of bytes with an optional binary suffix K, M, G or T (KiB, MiB,
// ... and lower case too), or "unlimited" (MaxMemory). The result is at
// least a page and at most MaxMemory; errors wrap ErrBadLimit.
func ParseMemoryLimit(s string) (uint64, error) {
	if strings.EqualFold(s, "unlimited") {
		return MaxMemory, nil
	}
	num := strings.TrimRightFunc(s, unicode.IsLetter)
	unit := strings.ToUpper(s[len(num):])
	shift, ok := map[string]uint{"": 0, "B": 0, "K": 10, "KB": 10, "KIB": 10, "M": 20, "MB": 20, "MIB": 20,
		"G": 30, "GB": 30, "GIB": 30, "T": 40, "TB": 40, "TIB": 40}[unit]
	n, err := strconv.ParseUint(num, 10, 64)
	if !ok || err != nil {
		return 0, fmt.Errorf("%w: memory limit %q is not a size such as 512M, 2G or unlimited", ErrBadLimit, s)
	}
	if n > MaxMemory>>shift {
		return 0, fmt.Errorf("%w: memory limit %s exceeds the memory file's %d GiB reservation", ErrBadLimit, s, MaxMemory>>30)
	}
	l := Limits{Memory: n << shift}
	if n == 0 {
		return 0, fmt.Errorf("%w: memory limit %s is zero", ErrBadLimit, s)
	}
	if err := l.Validate(); err != nil {
		return 0, err
	}
	return l.Memory, nil
}
