package kernel

import (
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// Interpreter scripts ("#!" files), as Linux's binfmt_script.
const (
	// binprmBufSize is how much of a file the kernel reads to recognise
	// it (Linux's BINPRM_BUF_SIZE). A "#!" line longer than this minus
	// one byte keeps its interpreter path only if a space or tab ends it
	// within the buffer; its argument is cut there.
	binprmBufSize = 256
	// maxExecRewrites is how many "#!" files one execve may pass through
	// before the program that finally runs: Linux's exec_binprm allows
	// six handler rounds (depth 0 to 5), the last of which must load a
	// binary, so a chain of five scripts runs and six fail with ELOOP.
	maxExecRewrites = 5
)

// execImage is what an execve loads once "#!" lines have been followed.
type execImage struct {
	// file is the ELF executable to load; the caller of resolveScripts
	// owns one reference to it.
	file *vfs.File
	// path is the guest path file was opened at (the last interpreter's
	// name as written, or the original path): /proc/self/exe.
	path string
	// argv is the argument vector, with the interpreters, their optional
	// arguments and the script paths spliced in front.
	argv []string
}

// shebang is a parsed "#!" line.
type shebang struct {
	interp string // the interpreter path, as written
	arg    string // the optional argument (may contain spaces)
	hasArg bool
}

// parseShebang parses buf, the first bytes of a file (at most
// binprmBufSize), as binfmt_script's load_script does. ok is false if buf
// does not start with "#!"; err wraps ErrNoExec if it does but names no
// interpreter, or if the interpreter path may have been cut by the buffer
// size. As in Linux, a NUL right after "#!" gives an empty interpreter,
// not an error.
func parseShebang(buf []byte) (s shebang, ok bool, err error) {
	if len(buf) < 2 || buf[0] != '#' || buf[1] != '!' {
		return shebang{}, false, nil
	}
	// Linux's buffer is zero-padded after a short file.
	b := make([]byte, binprmBufSize)
	copy(b, buf)
	spacetab := func(c byte) bool { return c == ' ' || c == '\t' }
	// nextNonSpacetab and nextTerminator search [first, last], inclusive,
	// and return -1 if nothing matches.
	nextNonSpacetab := func(first, last int) int {
		for ; first <= last; first++ {
			if !spacetab(b[first]) {
				return first
			}
		}
		return -1
	}
	nextTerminator := func(first, last int) int {
		for ; first <= last; first++ {
			if spacetab(b[first]) || b[first] == 0 {
				return first
			}
		}
		return -1
	}
	bufEnd := len(b) - 1
	end := bytes.IndexByte(b, '\n')
	if end < 0 {
		start := nextNonSpacetab(2, bufEnd)
		if start < 0 {
			return shebang{}, true, fmt.Errorf("\"#!\" line of only blanks: %w", ErrNoExec)
		}
		// Without a blank or NUL after the path, the path itself may be
		// cut: refuse rather than run the wrong program.
		if nextTerminator(start, bufEnd) < 0 {
			return shebang{}, true, fmt.Errorf("\"#!\" line longer than %d bytes: %w", binprmBufSize-1, ErrNoExec)
		}
		end = bufEnd
	}
	for spacetab(b[end-1]) {
		end--
	}
	name := nextNonSpacetab(2, end)
	if name < 0 || name == end {
		return shebang{}, true, fmt.Errorf("\"#!\" line names no interpreter: %w", ErrNoExec)
	}
	b[end] = 0
	arg := -1
	if sep := nextTerminator(name, end); sep >= 0 && b[sep] != 0 {
		arg = nextNonSpacetab(sep, end)
		b[sep] = 0
	}
	cstr := func(i int) string {
		if n := bytes.IndexByte(b[i:], 0); n >= 0 {
			return string(b[i : i+n])
		}
		return string(b[i:])
	}
	s.interp = cstr(name)
	if arg >= 0 {
		s.arg, s.hasArg = cstr(arg), true
	}
	return s, true, nil
}

// resolveScripts follows "#!" lines from f, the executable file opened at
// filename (the path given to execve), and returns the binary to load and
// the argument vector it gets: interpreter, optional argument, the script's
// path, argv[1:]; an interpreter that is itself a script is followed the
// same way, up to maxExecRewrites scripts (then ELOOP). Interpreters are
// looked up like any execve path, in fs (relative ones against the working
// directory). A file that is neither ELF nor script is left to the ELF
// loader, which rejects it with ErrNoExec.
//
// inaccessible says that filename will not exist in the new image (a
// /dev/fd/N path of a close-on-exec descriptor): a script then fails with
// ENOENT, as its interpreter could not open it.
//
// resolveScripts takes a new reference to f for the result; the caller
// keeps its own reference and DecRefs img.file when done. Errors wrap unix
// errnos (ENOENT, EACCES, ELOOP) or ErrNoExec.
func resolveScripts(fs *vfs.FS, f *vfs.File, filename string, inaccessible bool, argv []string) (execImage, error) {
	f.IncRef()
	img := execImage{file: f, path: filename, argv: argv}
	for rewrites := 0; ; rewrites++ {
		buf := make([]byte, binprmBufSize)
		n, err := readFull(img.file, buf)
		if err != nil {
			img.file.DecRef()
			return execImage{}, fmt.Errorf("read %s: %w", img.path, err)
		}
		s, ok, err := parseShebang(buf[:n])
		if err != nil {
			img.file.DecRef()
			return execImage{}, fmt.Errorf("%s: %w", img.path, err)
		}
		if !ok {
			return img, nil
		}
		if inaccessible {
			img.file.DecRef()
			return execImage{}, fmt.Errorf("%s: script on a close-on-exec descriptor: %w", filename, unix.ENOENT)
		}
		if rewrites == maxExecRewrites {
			img.file.DecRef()
			return execImage{}, fmt.Errorf("%s: more than %d nested interpreter scripts: %w", filename, maxExecRewrites, unix.ELOOP)
		}
		if s.interp == "" {
			// "#!" then a NUL (or the end of a short file): Linux opens
			// the empty path, which it finds to be the working directory,
			// not a regular file (measured on 6.18).
			img.file.DecRef()
			return execImage{}, fmt.Errorf("%s: empty interpreter path: %w", img.path, unix.EACCES)
		}
		next, err := openExecFile(fs, s.interp)
		if err != nil {
			img.file.DecRef()
			return execImage{}, fmt.Errorf("%s: interpreter: %w", img.path, err)
		}
		img.file.DecRef()
		na := make([]string, 0, len(img.argv)+2)
		na = append(na, s.interp)
		if s.hasArg {
			na = append(na, s.arg)
		}
		na = append(na, img.path)
		if len(img.argv) > 1 {
			na = append(na, img.argv[1:]...)
		}
		img = execImage{file: next, path: s.interp, argv: na}
	}
}

// readFull reads from the start of f into buf until buf is full or the
// file ends, and returns how many bytes it read.
func readFull(f *vfs.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := f.PRead(buf[n:], int64(n))
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// execFilename returns the name execve(2) gives the program at p relative
// to dirfd (AT_EXECFN, a script's path for its interpreter, the thread
// name): p itself if dirfd is AT_FDCWD or p is absolute, else
// "/dev/fd/<dirfd>" or "/dev/fd/<dirfd>/<p>", as Linux's
// alloc_bprm. inaccessible reports that dirfd is close-on-exec, so that
// name will not exist after the exec.
func (t *Task) execFilename(dirfd int32, p string) (filename string, inaccessible bool) {
	if dirfd == unix.AT_FDCWD || strings.HasPrefix(p, "/") {
		return p, false
	}
	flags, err := t.tg.fdTable.Flags(dirfd)
	inaccessible = err == nil && flags.CloseOnExec
	if p == "" {
		return fmt.Sprintf("/dev/fd/%d", dirfd), inaccessible
	}
	return fmt.Sprintf("/dev/fd/%d/%s", dirfd, p), inaccessible
}

// exePath is /proc/self/exe after loading img: the guest path of the file
// that runs (symbolic links resolved where the vfs knows them, "/memfd:x
// (deleted)" for a memfd), or img.path made absolute if the file has none.
func exePath(fs *vfs.FS, img execImage) string {
	if p := img.file.LinkName(); strings.HasPrefix(p, "/") {
		return p
	}
	return absGuestPath(fs, img.path)
}
