package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/internal/prereq"
)

// writeScripts writes the "#!" cases of TestScripts into dir and returns
// their paths, in the order scriptexec runs them. show is the showargs
// program, used as a compiled interpreter.
func writeScripts(t *testing.T, dir, show string) []string {
	t.Helper()
	// busybox runs the applet named by argv[0]'s base name: a link named
	// "sh" lets a "#!" line give the shell an option as its one argument.
	sh := filepath.Join(dir, "sh")
	if err := os.Symlink(busyboxPath, sh); err != nil {
		t.Fatal(err)
	}
	exe := func(name, content string) string {
		p := writeFile(t, dir, name, content)
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var paths []string
	add := func(p string) { paths = append(paths, p) }
	add(exe("echo.sh", "#!"+busyboxPath+" sh\necho \"echo.sh: \\$0=$0 \\$#=$# [$1] [$2]\"\n"))
	add(exe("status.sh", "#!"+busyboxPath+" sh\nexit 7\n"))
	// The optional argument: "-e" makes the shell stop at the failing false.
	add(exe("opt.sh", "#!"+sh+" -e\necho \"opt.sh: $0 $*\"\nfalse\necho opt.sh: not reached\n"))
	// Blanks before the interpreter; env -S splits its one argument.
	add(exe("env.sh", "#! \t/usr/bin/env -S "+busyboxPath+" sh -e\necho \"env.sh: $0 $*\"\n"))
	// A compiled interpreter shows argv, AT_EXECFN and /proc/self/exe.
	add(exe("show.sh", "#!"+show+"  opt  arg \t\nignored\n"))
	// An interpreter that is itself a script (two levels).
	add(exe("show2.sh", "#!"+filepath.Join(dir, "show.sh")+"\n"))
	// Chains of scripts: Linux runs five nested scripts, not six.
	prev := filepath.Join(dir, "echo.sh")
	for i := 2; i <= 6; i++ {
		prev = exe(fmt.Sprintf("chain%d.sh", i), "#!"+prev+"\n")
		if i >= 5 {
			add(prev)
		}
	}
	// Lines longer than Linux's 256-byte buffer: the argument is cut, an
	// interpreter path that may be cut is refused (ENOEXEC).
	add(exe("long.sh", "#!"+show+" "+strings.Repeat("a", 300)+"\n"))
	add(exe("longpath.sh", "#!/"+strings.Repeat("p", 300)+" x\n"))
	add(exe("longblanks.sh", "#!"+show+strings.Repeat(" ", 300)+"\n"))
	add(exe("tabs.sh", "#!\t"+show+"\tx\ty \n"))
	add(exe("text.sh", "echo no interpreter line\n"))
	add(writeFile(t, dir, "noexec.sh", "#!"+busyboxPath+" sh\necho must not run\n"))
	add(exe("missing.sh", "#!"+filepath.Join(dir, "no-such-interpreter")+"\n"))
	add(exe("dirinterp.sh", "#!"+dir+"\n"))
	add(exe("empty.sh", "#!"))
	add(exe("blank.sh", "#!  \t\n"))
	return paths
}

// TestScripts: execve of "#!" scripts from a C program (both libcs), and
// `snap run` of a script, match the native run: argument splicing, the
// optional argument, nested interpreters, AT_EXECFN, /proc/self/exe, and
// the errors ELOOP, ENOEXEC, EACCES and ENOENT; fexecve and execveat of
// scripts and programs by descriptor.
func TestScripts(t *testing.T) {
	if _, err := os.Stat(busyboxPath); err != nil {
		prereq.Missing(t, "busybox-static (%s): %v", busyboxPath, err)
	}
	for _, lc := range libcs {
		t.Run(lc.Name, func(t *testing.T) {
			t.Parallel()
			runner := program(t, lc, "scriptexec")
			show := program(t, lc, "showargs")
			dir := t.TempDir()
			scripts := writeScripts(t, dir, show)
			in := func(name string) string { return filepath.Join(dir, name) }
			want := []string{
				"echo.sh: $0=" + in("echo.sh") + " $#=2 [one] [two words]",
				"echo.sh: exit 0",
				"status.sh: exit 7",
				"opt.sh: " + in("opt.sh") + " one two words",
				"opt.sh: exit 1",
				"env.sh: " + in("env.sh") + " one two words",
				"env.sh: exit 0",
				"argv[0] = [" + show + "]",
				"argv[1] = [opt  arg]",
				"argv[2] = [" + in("show.sh") + "]",
				"argv[3] = [" + in("show2.sh") + "]",
				"argv[4] = [one]",
				"AT_EXECFN = [" + in("show2.sh") + "]",
				"/proc/self/exe = [" + show + "]",
				"show2.sh: exit 0",
				"echo.sh: $0=" + in("echo.sh") + " $#=6 [" + in("chain2.sh") + "] [" + in("chain3.sh") + "]",
				"chain5.sh: exit 0",
				"chain6.sh: execve: ELOOP",
				"argv[1] = [" + strings.Repeat("a", 255-len("#!"+show+" ")) + "]",
				"long.sh: exit 0",
				"longpath.sh: execve: ENOEXEC",
				"argv[1] = [" + in("longblanks.sh") + "]",
				"longblanks.sh: exit 0",
				"argv[1] = [x\ty]",
				"tabs.sh: exit 0",
				"text.sh: execve: ENOEXEC",
				"noexec.sh: execve: EACCES",
				"missing.sh: execve: ENOENT",
				"dirinterp.sh: execve: EACCES",
				"empty.sh: execve: EACCES",
				"blank.sh: execve: ENOEXEC",
			}
			compare(t, lc.Name+"/scripts", append([]string{runner}, scripts...), spec{want: want, zdtm: zdtmSpec{fast: true}})
		})
	}
	// By descriptor: fexecve and execveat name the program /dev/fd/N[/p].
	for _, lc := range libcs {
		t.Run(lc.Name+"-fexecve", func(t *testing.T) {
			t.Parallel()
			runner := program(t, lc, "fexecscript")
			show := program(t, lc, "showargs")
			dir := t.TempDir()
			writeScripts(t, dir, show)
			want := []string{
				"argv[2] = [/dev/fd/10]",
				"AT_EXECFN = [/dev/fd/10]",
				"fexecve script: exit 0",
				"fexecve cloexec script: execveat: ENOENT",
				"argv[2] = [/dev/fd/10/show.sh]",
				"AT_EXECFN = [/dev/fd/10/show.sh]",
				"execveat dir script: exit 0",
				"argv[0] = [zero]",
				"/proc/self/exe = [" + show + "]",
				"fexecve elf: exit 0",
				"fexecve O_PATH elf: exit 0",
			}
			argv := []string{runner, filepath.Join(dir, "show.sh"), dir, "show.sh", show}
			compare(t, lc.Name+"/fexecscript", argv, spec{want: want, zdtm: zdtmSpec{fast: true}})
		})
	}
	t.Run("snap-run", func(t *testing.T) {
		t.Parallel()
		show := program(t, libcs[0], "showargs")
		dir := t.TempDir()
		writeScripts(t, dir, show)
		tests := []struct {
			name   string
			args   []string
			status int
			want   []string
		}{
			{"echo", []string{"echo.sh", "a", "b c"}, 0, []string{"echo.sh: $0=" + filepath.Join(dir, "echo.sh") + " $#=2 [a] [b c]"}},
			{"status", []string{"status.sh"}, 7, nil},
			{"nested", []string{"show2.sh", "x"}, 0, []string{
				"argv[2] = [" + filepath.Join(dir, "show.sh") + "]",
				"argv[4] = [x]",
				"AT_EXECFN = [" + filepath.Join(dir, "show2.sh") + "]",
			}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				argv := append([]string{filepath.Join(dir, tc.args[0])}, tc.args[1:]...)
				compare(t, "scripts/"+tc.name, argv, spec{status: tc.status, want: tc.want, zdtm: zdtmSpec{fast: true}})
			})
		}
	})
}
