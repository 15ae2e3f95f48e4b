package kernel

// SyscallInfo describes one row of the syscall table, for
// docs/SYSCALLS.md (tools/syscalldoc).
type SyscallInfo struct {
	Number int
	Name   string
	// Level is "full", "partial" or "unsupported".
	Level string
	// Errno is what an unsupported call returns ("ENOSYS"); empty
	// otherwise.
	Errno string
	// Note says what a partial call lacks or why a call is unsupported.
	Note string
}

// Syscalls returns the rows of the syscall table in number order.
func Syscalls() []SyscallInfo {
	var out []SyscallInfo
	for nr, e := range syscallTable {
		if e.name == "" {
			continue
		}
		si := SyscallInfo{Number: nr, Name: e.name, Level: e.level.String(), Note: e.note}
		if e.level == supportUnsupported {
			si.Errno = errnoName(e.errno)
		}
		out = append(out, si)
	}
	return out
}
