package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A startCase runs startenv under `snap run FLAGS -- PROG` from a case
// directory D that holds the program and an empty D/sub, in the foreground
// and detached (-d, output to a file, then `snap wait`), and requires the
// output of a native run of PROG in D/nativeDir with nativeEnv. Its
// knownBroken key is "cli/<name>".
type startCase struct {
	name  string
	flags func(dir string) []string
	prog  string // relative to the sandbox's initial directory
	// nativeDir is where the native run starts, relative to D.
	nativeDir string
	// nativeEnv returns the native run's whole environment.
	nativeEnv func() []string
}

var startCases = []startCase{
	{name: "start-relative", prog: "./startenv", nativeDir: ".", nativeEnv: baseEnv},
	{name: "start-cwd-relative", flags: func(string) []string { return []string{"--cwd", "sub"} },
		prog: "../startenv", nativeDir: "sub", nativeEnv: baseEnv},
	{name: "start-cwd-absolute", flags: func(dir string) []string { return []string{"--cwd", filepath.Join(dir, "sub")} },
		prog: "../startenv", nativeDir: "sub", nativeEnv: baseEnv},
	{name: "start-env", flags: func(string) []string { return []string{"--env", "E2E_A=1", "--env", "HOME=/x=y", "--env", "E2E_B="} },
		prog: "./startenv", nativeDir: ".", nativeEnv: func() []string { return replaceEnv(baseEnv(), "HOME=/x=y", "E2E_A=1", "E2E_B=") }},
	{name: "start-clear-env", flags: func(string) []string { return []string{"--clear-env"} },
		prog: "./startenv", nativeDir: ".", nativeEnv: func() []string { return nil }},
	{name: "start-clear-env-set", flags: func(string) []string { return []string{"--clear-env", "--env", "ONLY=this", "--env", "PATH=/nowhere"} },
		prog: "./startenv", nativeDir: ".", nativeEnv: func() []string { return []string{"ONLY=this", "PATH=/nowhere"} }},
}

// replaceEnv returns env with each KEY=VALUE of set replacing KEY's entry
// in place, or appended if env has none.
func replaceEnv(env []string, set ...string) []string {
	env = slices.Clone(env)
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		i := slices.IndexFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		if i < 0 {
			env = append(env, kv)
		} else {
			env[i] = kv
		}
	}
	return env
}

// TestRunStart requires snap run, foreground and detached, to find a
// relative program and start it where a shell would (or where --cwd
// says), with the caller's environment (or what --env and --clear-env
// make of it).
func TestRunStart(t *testing.T) {
	bin := program(t, libcs[0], "startenv")
	for _, c := range startCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			skipKnownBroken(t, "cli/"+c.name)
			dir := t.TempDir()
			copyExecutable(t, bin, filepath.Join(dir, "startenv"))
			if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			native := executeEnv(t, []string{c.prog}, c.nativeEnv(), filepath.Join(dir, c.nativeDir))
			if native.status != 0 || !strings.Contains(native.stdout, "variables\n") {
				t.Fatalf("native %s: status %d, stdout %q, stderr %q", c.prog, native.status, native.stdout, native.stderr)
			}
			var flags []string
			if c.flags != nil {
				flags = c.flags(dir)
			}
			t.Run("foreground", func(t *testing.T) {
				argv := append(append([]string{snap(t), "run"}, flags...), "--", c.prog)
				got := execute(t, argv, spec{}, dir)
				if got.status != 0 || got.stdout != native.stdout || got.stderr != "" {
					t.Errorf("%s: status %d, stderr %q, stdout: %s", strings.Join(argv[1:], " "), got.status, got.stderr,
						diff(native.stdout, got.stdout))
				}
			})
			t.Run("detached", func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "out")
				argv := append(append([]string{snap(t), "run", "-d", "--stdout", out}, flags...), "--", c.prog)
				started := execute(t, argv, spec{}, dir)
				if started.status != 0 {
					t.Fatalf("%s: status %d, stderr %q", strings.Join(argv[1:], " "), started.status, started.stderr)
				}
				id := strings.TrimSpace(started.stdout)
				if w := execute(t, []string{snap(t), "wait", id}, spec{}, dir); w.status != 0 {
					t.Fatalf("snap wait %s: status %d, stderr %q", id, w.status, w.stderr)
				}
				got, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != native.stdout {
					t.Errorf("%s: stdout: %s", strings.Join(argv[1:], " "), diff(native.stdout, string(got)))
				}
			})
		})
	}
}

// executeEnv runs argv natively in dir with exactly env (execute adds
// baseEnv); a relative argv[0] is found in dir, as a shell finds it.
func executeEnv(t *testing.T, argv []string, env []string, dir string) outcome {
	t.Helper()
	prog := argv[0]
	if !filepath.IsAbs(prog) {
		prog = filepath.Join(dir, prog)
	}
	sh := []string{"/usr/bin/env", "-i"}
	sh = append(append(sh, env...), prog)
	// env -i would itself be started with baseEnv; the program gets env.
	return execute(t, append(sh, argv[1:]...), spec{}, dir)
}

// copyExecutable copies the program at src to dst, mode 0755.
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
