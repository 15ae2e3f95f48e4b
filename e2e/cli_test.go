package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A runErrorCase is a `snap run` that must fail cleanly: a non-zero exit
// status and one line on stderr saying what failed, never a panic. Its
// knownBroken key is "cli/<name>".
type runErrorCase struct {
	name string
	// args returns the arguments after "snap run", given a scratch dir.
	args func(t *testing.T, dir string) []string
}

var runErrorCases = []runErrorCase{
	{name: "no-program", args: func(*testing.T, string) []string { return nil }},
	{name: "missing-program", args: func(_ *testing.T, dir string) []string {
		return []string{"--", filepath.Join(dir, "does-not-exist")}
	}},
	{name: "not-elf", args: func(t *testing.T, dir string) []string {
		return []string{"--", writeFile(t, dir, "text", "this is not an ELF file\n")}
	}},
	{name: "truncated-elf", args: func(t *testing.T, dir string) []string {
		return []string{"--", writeFile(t, dir, "short", "\x7fELF\x02\x01\x01")}
	}},
	{name: "directory", args: func(_ *testing.T, dir string) []string { return []string{"--", dir} }},
	{name: "missing-cwd", args: func(_ *testing.T, dir string) []string {
		return []string{"--cwd", filepath.Join(dir, "nowhere"), "--", "/bin/true"}
	}},
	{name: "cwd-not-directory", args: func(t *testing.T, dir string) []string {
		return []string{"--cwd", writeFile(t, dir, "file", ""), "--", "/bin/true"}
	}},
	{name: "missing-cwd-detached", args: func(_ *testing.T, dir string) []string {
		return []string{"-d", "--cwd", filepath.Join(dir, "nowhere"), "--", "/bin/true"}
	}},
	{name: "env-without-equals", args: func(*testing.T, string) []string { return []string{"--env", "NOEQUALS", "--", "/bin/true"} }},
	{name: "env-empty-name-detached", args: func(*testing.T, string) []string {
		return []string{"-d", "--env", "=value", "--", "/bin/true"}
	}},
	{name: "volume-missing-host", args: func(_ *testing.T, dir string) []string {
		return []string{"-v", filepath.Join(dir, "nowhere") + ":/data", "--", "/bin/true"}
	}},
	{name: "volume-missing-host-detached", args: func(_ *testing.T, dir string) []string {
		return []string{"-d", "-v", filepath.Join(dir, "nowhere") + ":/data", "--", "/bin/true"}
	}},
	{name: "volume-host-file", args: func(t *testing.T, dir string) []string {
		return []string{"-v", writeFile(t, dir, "file", "") + ":/data", "--", "/bin/true"}
	}},
	{name: "volume-relative-point", args: func(_ *testing.T, dir string) []string {
		return []string{"-v", dir + ":data", "--", "/bin/true"}
	}},
	{name: "volume-bad-option", args: func(_ *testing.T, dir string) []string {
		return []string{"-v", dir + ":/data:rx", "--", "/bin/true"}
	}},
	{name: "volume-over-proc", args: func(_ *testing.T, dir string) []string {
		return []string{"-v", dir + ":/proc/x", "--", "/bin/true"}
	}},
	{name: "pids-zero", args: limitArgs("--pids", "0")},
	{name: "pids-negative", args: limitArgs("--pids", "-3")},
	{name: "pids-too-many", args: limitArgs("--pids", "1000000")},
	{name: "memory-not-a-size", args: limitArgs("--memory", "12Q")},
	{name: "memory-zero", args: limitArgs("--memory", "0")},
	{name: "memory-too-big", args: limitArgs("--memory", "100T")},
	{name: "memory-less-than-a-page", args: limitArgs("--memory", "100")},
	{name: "publish-not-a-mapping", args: func(*testing.T, string) []string { return []string{"-p", "8080", "--", "/bin/true"} }},
	{name: "publish-port-zero", args: func(*testing.T, string) []string { return []string{"-p", "0:80", "--", "/bin/true"} }},
	{name: "publish-bad-host", args: func(*testing.T, string) []string { return []string{"-p", "localhost:8080:80", "--", "/bin/true"} }},
	{name: "publish-network-none", args: func(*testing.T, string) []string {
		return []string{"--network", "none", "-p", "8080:80", "--", "/bin/true"}
	}},
	{name: "publish-network-host", args: func(*testing.T, string) []string {
		return []string{"--network", "host", "-p", "8080:80", "--", "/bin/true"}
	}},
	{name: "publish-network-host-detached", args: func(*testing.T, string) []string {
		return []string{"-d", "--network", "host", "-p", "8080:80", "--", "/bin/true"}
	}},
	{name: "network-unknown-detached", args: func(*testing.T, string) []string {
		return []string{"-d", "--network", "bridge", "--", "/bin/true"}
	}},
	{name: "detached-bad-limit", args: func(*testing.T, string) []string {
		return []string{"-d", "--pids", "0", "--", "/bin/true"}
	}},
	{name: "detached-timings", args: func(*testing.T, string) []string {
		return []string{"-d", "--timings", "--", "/bin/true"}
	}},
}

// limitArgs returns a case's arguments: a limit flag with a bad value.
func limitArgs(flag, value string) func(*testing.T, string) []string {
	return func(*testing.T, string) []string { return []string{flag, value, "--", "/bin/true"} }
}

// TestRunErrors requires bad `snap run` invocations to fail with one line on
// stderr and a non-zero status.
func TestRunErrors(t *testing.T) {
	for _, c := range runErrorCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			key := "cli/" + c.name
			if why, ok := knownBroken[key]; ok && os.Getenv("SNAP_E2E_RUN_BROKEN") != "1" {
				t.Skipf("known broken: %s", why)
			}
			dir := t.TempDir()
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			argv := append([]string{snap(t), "run"}, c.args(t, dir)...)
			got := execute(t, argv, spec{}, dir)
			if got.status == 0 {
				t.Errorf("%s: status = 0, want non-zero", strings.Join(argv[1:], " "))
			}
			lines := strings.Split(strings.TrimSuffix(got.stderr, "\n"), "\n")
			if len(lines) != 1 || lines[0] == "" || strings.Contains(got.stderr, "goroutine ") {
				t.Errorf("%s: stderr = %q, want one line saying what failed", strings.Join(argv[1:], " "), got.stderr)
			}
		})
	}
}
