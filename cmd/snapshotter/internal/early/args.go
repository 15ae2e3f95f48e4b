package early

// Flags snap's commands take that need a value (as the next argument or
// after "="). Boolean flags are listed in boolFlags; any other flag makes
// SandboxPlatform give up.
var valueFlags = map[string]bool{
	// global
	"--state-dir": true, "--store": true,
	// run, restore and sentry (restore refuses --tmpfs itself)
	"--rootfs": true, "--platform": true, "--pids": true, "--memory": true, "--tmpfs": true,
	// run -d and restore -d (an error without -d) and sentry
	"--id": true, "--stdin": true, "--stdout": true, "--stderr": true,
	// restore and sentry
	"--verify": true,
	// sentry
	"--ready-fd": true, "--launched-at": true, "--restore": true, "--pool": true,
}

var boolFlags = map[string]bool{"--debug": true, "--timings": true, "--no-cache": true}

// SandboxPlatform reports whether args (snap's arguments without the
// program name) start or restore a sandbox in this process — `snap run` or
// `snap restore URI` without -d, or `snap sentry` — and with which
// platform.
func SandboxPlatform(args []string) (string, bool) {
	platform := "ptrace"
	command := ""
	restoring := false // a sentry's --restore, or restore's URI
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !hasPrefix(a, "-") || a == "-" {
			if command == "" && a != "--" {
				command = a
				if command != "run" && command != "sentry" && command != "restore" {
					return "", false
				}
				continue
			}
			if command == "restore" && a != "--" && !restoring {
				// restore's URI; its flags may follow.
				restoring = true
				continue
			}
			// The program follows.
			if a == "--" {
				i++
			}
			if command == "" || command == "restore" || restoring || i >= len(args) {
				return "", false
			}
			return platform, true
		}
		name, value, hasValue := cut(a, '=')
		switch {
		case name == "--detach" || name == "-d":
			return "", false
		case boolFlags[name]:
		case valueFlags[name]:
			if !hasValue {
				i++
				if i >= len(args) {
					return "", false
				}
				value = args[i]
			}
			switch name {
			case "--platform":
				platform = value
			case "--restore":
				if command != "sentry" {
					return "", false
				}
				restoring = true
			}
		default:
			return "", false
		}
	}
	if restoring {
		return platform, true
	}
	return "", false
}

func hasPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && s[:len(prefix)] == prefix
}

// cut is strings.Cut for a one-byte separator (this package keeps its
// imports few: see the package doc).
func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
