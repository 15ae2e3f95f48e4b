package early

// Flags snap's commands take that need a value (as the next argument or
// after "="). Boolean flags are listed in boolFlags; any other flag makes
// SandboxPlatform give up.
var valueFlags = map[string]bool{
	// global
	"--state-dir": true, "--store": true,
	// run and sentry
	"--rootfs": true, "--platform": true, "--pids": true, "--memory": true,
	// run -d (an error without -d) and sentry
	"--id": true, "--stdin": true, "--stdout": true, "--stderr": true,
	// sentry
	"--ready-fd": true, "--launched-at": true,
}

var boolFlags = map[string]bool{"--debug": true}

// SandboxPlatform reports whether args (snap's arguments without the
// program name) start a sandbox running a program in this process — `snap
// run` without -d, or `snap sentry` without --restore — and with which
// platform.
func SandboxPlatform(args []string) (string, bool) {
	platform := "ptrace"
	command := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !hasPrefix(a, "-") || a == "-" {
			if command == "" && a != "--" {
				command = a
				if command != "run" && command != "sentry" {
					return "", false
				}
				continue
			}
			// The program follows.
			if a == "--" {
				i++
			}
			if command == "" || i >= len(args) {
				return "", false
			}
			return platform, true
		}
		name, value, hasValue := cut(a, '=')
		switch {
		case name == "--detach" || name == "-d" || name == "--restore":
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
			if name == "--platform" {
				platform = value
			}
		default:
			return "", false
		}
	}
	return "", false
}

func hasPrefix(s, prefix string) bool {
	return len(s) >= len(prefix) && s[:len(prefix)] == prefix
}

// cut is strings.Cut for a one-byte separator (this package avoids
// imports: see the package doc).
func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
