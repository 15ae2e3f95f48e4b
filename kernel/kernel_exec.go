package kernel

import (
	"fmt"
	"os"
	"path"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// defaultPath is searched for a program name without a slash when the
// environment has no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// StartOptions describe the sandbox's first process.
type StartOptions struct {
	// Argv is the argument vector; Argv[0] is the program, looked up in
	// the environment's PATH inside the root if it has no slash.
	Argv []string
	// Env is the environment, as "KEY=value" strings.
	Env []string
	// Stdin, Stdout and Stderr back descriptors 0, 1 and 2; the sentry's
	// own if nil.
	Stdin, Stdout, Stderr *os.File
	// Cwd is the initial working directory, a path inside the root; "/"
	// if empty. If it cannot be entered there, Start fails with ErrBadCwd
	// when RequireCwd is set, and starts in "/" otherwise.
	Cwd        string
	RequireCwd bool
}

// Start loads the program and starts the init process (PID 1). Errors
// that concern the program (not found, not executable, bad ELF) wrap
// unix errnos or ErrNoExec.
func (k *Kernel) Start(o StartOptions) error {
	if len(o.Argv) == 0 {
		return fmt.Errorf("start: empty argument vector: %w", unix.EINVAL)
	}
	loadStart := time.Now()
	fs := vfs.NewFS(k.root)
	if o.Cwd != "" && o.Cwd != "/" {
		if err := fs.Chdir(nil, o.Cwd); err != nil {
			if o.RequireCwd {
				return fmt.Errorf("%w %s: %w", ErrBadCwd, o.Cwd, err)
			}
			k.debugf("working directory %s not usable in the root (%v): starting in /", o.Cwd, err)
		}
	}
	f, name, err := k.openExecutable(fs, o.Argv[0], o.Env)
	if err != nil {
		return err
	}
	defer f.DecRef()
	img, err := resolveScripts(fs, f, name, false, o.Argv)
	if err != nil {
		return err
	}
	defer img.file.DecRef()

	// The program is loaded on the goroutine that then runs it as its
	// task goroutine. Loading maps memory, which the ptrace platform does
	// by injecting system calls into a stub thread traced by the calling
	// OS thread, created on first use (a clone in the stub, a seize and a
	// wait: about as long as the whole load). The task goroutine needs one
	// on its own thread anyway, so loading there makes one instead of two.
	errc := make(chan error, 1)
	// S/R-SAFE: before newInitTask returns, this goroutine only builds the
	// init task, which nothing else sees; then it is the task goroutine
	// (see Task.start).
	go func() {
		// Locked for good, as a task goroutine is (see Task.run): if the
		// load fails, the thread ends with the goroutine, and with it the
		// stub thread it traced.
		runtime.LockOSThread()
		k.pins.pinLoader()
		t, err := k.newInitTask(o, fs, img, name)
		if err != nil {
			errc <- err
			return
		}
		// What t.start does, on this goroutine.
		k.stopMu.Lock()
		k.liveTasks++
		k.stopMu.Unlock()
		k.timings.Since(StepLoad, loadStart)
		k.startRunTiming()
		errc <- nil
		t.run()
	}()
	return <-errc
}

// newInitTask loads the program img (found at name, a script if img.path
// differs) into a new address space and makes the init process and its
// task, registered in the TaskSet but not started.
func (k *Kernel) newInitTask(o StartOptions, fs *vfs.FS, img execImage, name string) (*Task, error) {
	as, err := k.platform.NewAddressSpace()
	if err != nil {
		return nil, fmt.Errorf("create address space: %w", err)
	}
	mm, err := NewMM(k.mf, as, k.platform.MinUserAddress(), k.platform.MaxUserAddress())
	if err != nil {
		as.Release()
		return nil, err
	}
	// The sentry's identity is the first process's, as if the sentry had
	// executed it (the sentry itself went through an execve already).
	creds := hostCredentials()
	regs, err := k.loadProgram(mm, fs, img.file, img.path, name, img.argv, o.Env, creds, false)
	if err != nil {
		mm.Release()
		return nil, err
	}

	limits := hostLimits()
	fdt := vfs.NewFDTable()
	if err := fdt.SetLimit(int(limits[unix.RLIMIT_NOFILE].Cur)); err != nil {
		mm.Release()
		return nil, fmt.Errorf("descriptor limit: %w", err)
	}
	for i, host := range []*os.File{o.Stdin, o.Stdout, o.Stderr} {
		if host == nil {
			if closedAtStart(i) {
				continue // as the caller gave it: closed
			}
			host = []*os.File{os.Stdin, os.Stdout, os.Stderr}[i]
		}
		sf, err := vfs.NewStdio(i, host)
		if err != nil {
			fdt.Close()
			mm.Release()
			return nil, fmt.Errorf("stdio %d: %w", i, err)
		}
		_, err = fdt.NewFD(int32(i), sf, vfs.FDFlags{})
		sf.DecRef()
		if err != nil {
			fdt.Close()
			mm.Release()
			return nil, fmt.Errorf("install stdio %d: %w", i, err)
		}
	}

	ts := k.tasks
	ts.mu.Lock()
	tid := ts.nextTID
	ts.nextTID++
	tg := &ThreadGroup{
		k:       k,
		tgid:    tid,
		mm:      mm,
		fdTable: fdt,
		fs:      fs,
		pgid:    tid,
		sid:     tid,
		umask:   0o022,
		exe:     exePath(fs, img),
		limits:  limits,
		started: k.monotonicNow(),
	}
	t := &Task{
		k:        k,
		tg:       tg,
		tid:      tid,
		runState: stateApp,
		regs:     regs,
		name:     commName(name),
		sched:    initialSchedAttrs(),
		creds:    creds,
	}
	tg.leader = t
	tg.tasks = []*Task{t}
	ts.tids[tid] = t
	if ts.init == nil {
		ts.init = tg
	}
	ts.mu.Unlock()
	return t, nil
}

// commName is the thread name a program starts with: the base name of its
// path, cut to 15 bytes.
func commName(p string) string {
	b := path.Base(p)
	if len(b) > taskCommLen-1 {
		b = b[:taskCommLen-1]
	}
	return b
}

// openExecutable resolves prog like execvp (PATH search for a name without
// a slash) inside the root and opens it. It returns the file and the guest
// path it was found at.
func (k *Kernel) openExecutable(fs *vfs.FS, prog string, env []string) (*vfs.File, string, error) {
	if strings.Contains(prog, "/") {
		f, err := openExecFile(fs, prog)
		return f, prog, err
	}
	search := defaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			search = v
		}
	}
	firstErr := error(nil)
	for _, dir := range strings.Split(search, ":") {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, prog)
		f, err := openExecFile(fs, p)
		if err == nil {
			return f, p, nil
		}
		if firstErr == nil || !isNotFound(err) {
			if firstErr == nil || isNotFound(firstErr) {
				firstErr = err
			}
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("%s: %w", prog, unix.ENOENT)
	}
	return nil, "", firstErr
}

func isNotFound(err error) bool {
	return errorsIsAny(err, unix.ENOENT, unix.ENOTDIR)
}

// openExecFile opens p and checks that it is an executable regular file.
func openExecFile(fs *vfs.FS, p string) (*vfs.File, error) {
	return openExecFileAt(fs, nil, nil, p, 0)
}

// openExecFileAt is openExecFile relative to dir (nil: the working
// directory) with execveat's flags, /proc as proc shows it (nil: empty).
// The open itself checks no permission, as before a task existed: the
// execute bits are checked below.
func openExecFileAt(fs *vfs.FS, proc vfs.ProcView, dir *vfs.File, p string, flags int) (*vfs.File, error) {
	oflags := uint32(unix.O_RDONLY)
	if flags&unix.AT_SYMLINK_NOFOLLOW != 0 {
		oflags |= unix.O_NOFOLLOW
	}
	var f *vfs.File
	var err error
	if p == "" && flags&unix.AT_EMPTY_PATH != 0 && dir != nil {
		// fexecve: dir is the program itself (any descriptor, even
		// O_PATH or write-only), opened again for reading as Linux's
		// do_open_execat opens the descriptor's file.
		f, err = fs.Reopen(dir, unix.O_RDONLY)
	} else {
		var o vfs.Owner
		if proc != nil {
			o.Creds = &vfs.Creds{Caps: ^uint64(0), Proc: proc}
		}
		f, err = fs.OpenAtAs(o, dir, p, oflags, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.DecRef()
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	if st.FileType() != unix.S_IFREG || st.Mode&0o111 == 0 {
		f.DecRef()
		return nil, fmt.Errorf("%s: %w", p, unix.EACCES)
	}
	return f, nil
}

// execReader adapts a vfs file to io.ReaderAt for the ELF loader.
type execReader struct{ f *vfs.File }

// mapContents implements mappableReader: the file as a mapping reads it
// (past its end as zero).
func (r execReader) mapContents() cacheableContents { return fileContents(r) }

// ReadAt reads exactly len(p) bytes at off; a short read is an error.
func (r execReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.f.PRead(p, off)
	if err == nil && n < len(p) {
		return n, fmt.Errorf("short read at %d: %w", off, unix.EIO)
	}
	return n, err
}

// loadProgram loads the executable f (opened at name) into mm, builds its
// initial stack and returns the initial registers. execfn is the path
// given to execve (AT_EXECFN): name itself, or the script's path when f is
// the interpreter of a "#!" script. creds are the identity the program
// runs with (AT_UID...), secure is AT_SECURE.
//
// A dynamically linked program (PT_INTERP) gets its loader mapped too, at a
// free place in the mmap area; execution starts at the loader's entry, which
// finds the program through AT_PHDR/AT_ENTRY and the libraries through the
// filesystem, like on Linux.
func (k *Kernel) loadProgram(mm *MM, fs *vfs.FS, f *vfs.File, name, execfn string, argv, env []string, creds credentials, secure bool) (registers, error) {
	st, err := f.Stat()
	if err != nil {
		return registers{}, fmt.Errorf("stat %s: %w", name, err)
	}
	r := execReader{f}
	ef, err := parseELF(r, int64(st.Size))
	if err != nil {
		return registers{}, fmt.Errorf("%s: %w", name, err)
	}
	l, err := loadELF(mm, ef, r, name, pieLoadBase)
	if err != nil {
		return registers{}, err
	}
	mm.setBrkStart(l.End)
	entry, interpBase := l.Entry, uint64(0)
	if ef.Interp != "" {
		il, err := k.loadInterpreter(mm, fs, ef.Interp)
		if err != nil {
			return registers{}, fmt.Errorf("%s: loader %s: %w", name, ef.Interp, err)
		}
		entry, interpBase = il.Entry, il.Bias
	}
	var random [16]byte
	randomBytes(random[:])
	aux := []auxEntry{
		{atPhdr, l.Phdr},
		{atPhent, elfPhdrSize},
		{atPhnum, uint64(l.Phnum)},
		{atPagesz, pageSize},
		{atBase, interpBase},
		{atFlags, 0},
		{atEntry, l.Entry},
		{atUID, uint64(creds.UID)},
		{atEUID, uint64(creds.EUID)},
		{atGID, uint64(creds.GID)},
		{atEGID, uint64(creds.EGID)},
		{atSecure, boolToUint64(secure)},
		{atHwcap, hostAux(atHwcap)},
		{atHwcap2, hostAux(atHwcap2)},
		{atClktck, clockTicksPerSecond},
	}
	if v := hostAux(atMinSigStkSz); v != 0 {
		aux = append(aux, auxEntry{atMinSigStkSz, v})
	}
	if k.vdso.Range.Length() != 0 {
		ehdr, err := mm.mapVDSO(k.vdso)
		if err != nil {
			return registers{}, err
		}
		aux = append(aux, auxEntry{atSysinfoEhdr, ehdr})
	}
	sp, err := mm.setupStack(argv, env, execfn, random, aux)
	if err != nil {
		return registers{}, err
	}
	return registers{
		Rip:    entry,
		Rsp:    sp,
		Cs:     userCS,
		Ss:     userSS,
		Eflags: initialEflags,
	}, nil
}

// loadInterpreter maps the dynamic loader at path (inside the root).
func (k *Kernel) loadInterpreter(mm *MM, fs *vfs.FS, path string) (*loadedELF, error) {
	f, err := openExecFile(fs, path)
	if err != nil {
		return nil, err
	}
	defer f.DecRef()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	r := execReader{f}
	ef, err := parseELF(r, int64(st.Size))
	if err != nil {
		return nil, err
	}
	if ef.Interp != "" || ef.Type != etDyn {
		return nil, fmt.Errorf("not a position-independent loader without its own PT_INTERP: %w", ErrNoExec)
	}
	return loadELF(mm, ef, r, path, 0)
}

// absGuestPath makes a program path absolute against the working directory.
func absGuestPath(fs *vfs.FS, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(fs.Getcwd(), p)
}

// closedAtStart reports whether this process's standard descriptor fd was
// closed when it was executed. Go's runtime opens /dev/null read-write on
// a closed standard descriptor before main runs (so that no file opened
// later takes its number); a shell's redirections to /dev/null open it
// read-only (<) or write-only (>), so a read-write /dev/null there is
// taken for the runtime's. (Only "fd<>/dev/null" is mistaken for closed.)
func closedAtStart(fd int) bool {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		return false
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	return err == nil && fl&unix.O_ACCMODE == unix.O_RDWR
}
