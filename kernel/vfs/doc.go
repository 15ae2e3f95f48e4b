// Package vfs is the sentry's file layer: open files, the per-process file
// descriptor table, the mount table, and the filesystems mounted in it: a
// writable overlay over a read-only view of a host directory tree (or that
// view alone), the sentry's /dev, /proc and /sys, memory filesystems
// (tmpfs) and host directories bind-mounted as volumes.
//
// The kernel (package kernel) imports vfs; vfs never imports the kernel. The
// API is byte-oriented: the kernel copies application memory into []byte,
// calls vfs, and copies results back. Failures are unix.Errno values (the
// kernel returns them as -errno) or ErrInterrupted.
//
// # Vocabulary
//
//   - A File is one open file description (Linux's struct file): status flags,
//     an offset where the kind of file has one, and an implementation (host
//     file or directory, host stdio, sentry device, pipe end, memfd, or a
//     file the kernel generated such as /proc/self/maps, or an Impl of
//     another package, such as a socket of package socket). Files are
//     reference counted: IncRef/DecRef; the last DecRef releases host
//     resources. Every function that returns a *File returns a new reference
//     the caller owns.
//   - An FDTable maps descriptors to Files plus the FD_CLOEXEC flag. The table
//     holds its own reference to each installed File.
//   - An FS is a process's filesystem context: the shared Root (a host
//     directory opened O_PATH, "/" by default, or --rootfs DIR) and the
//     current working directory. Paths are resolved with openat2(2) and
//     RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS from the root, so nothing resolves
//     outside the root and absolute symlinks resolve inside it.
//   - Guest paths are absolute, clean paths as the application sees them;
//     host paths are what the sentry opens.
//
// # Mounts
//
// A MountTable (one per sandbox, held by the Root) maps mount points to
// Filesystems (mount.go): "/" is the writable overlay over the host root
// (MountTable.MountOverlay; the host root itself, read-only, with snap run
// --read-only), /dev, /proc and /sys the sentry's directories, /dev/shm and
// /run a tmpfs each, /tmp a tmpfs when the host root's /tmp is empty
// (MountTmpIfEmpty), plus the --tmpfs mounts (MountTmpfs) and the volumes
// (-v, MountBind). Every path operation of FS computes the guest path,
// routes it to a mount (MountTable.route: lexically up to the first walked
// mount point on the way, as the sentry's directories always were) and
// calls one Filesystem method. A walked filesystem (overlay, tmpfs,
// volume) resolves the rest itself; when its walk leaves it (".." at its
// root, a symlink to an absolute path or out of it) the path is routed
// again. link and rename across mounts fail with EXDEV. /proc/self/mounts
// and mountinfo are generated from the table. Under the read-only root, a
// host symlink is resolved on the host; when the lookup or the write then
// fails, a symlink that leads into a tmpfs mount point (Debian's /var/run
// -> /run) is followed there (Root.redirect), but a file that exists on
// the host under it stays the host's. The overlay resolves every symlink
// itself, in the merged view.
//
// # Overlay root
//
// overlay.go: a tmpfs upper layer over the host root as the lower layer,
// as Linux's overlayfs without redirect_dir or metacopy: lookups merge the
// layers, the first change of a lower file copies it up (data, mode,
// owner, times; its device and inode numbers are kept), removals leave
// whiteouts, a directory made again over a removed one is opaque, and a
// directory with lower content cannot be renamed (EXDEV). Extended
// attributes (user.* only, xattr.go) are kept with the upper files and
// copied up with the lower ones. A description of a lower regular file
// opened before its copy-up reads, seeks and fstats the copy from then on,
// as Linux's since 4.19 (overlay_copyup.go); mappings made from it before
// keep the lower pages. The upper layer is saved like every tmpfs; lower
// files held open are saved as host files, with their copy's description
// once they have one.
//
// # Volumes
//
// bind.go: a host directory mounted with snap run -v, the one place the
// sandbox writes to the host, with the rules of "What the sandbox may open
// on the host" below; lookups are confined to the directory (openat2
// RESOLVE_IN_ROOT from its descriptor). Its files are saved as host files
// (path and identity); the directory is reopened at restore, or the one
// WithRestoreBinds names.
//
// # tmpfs
//
// tmpfs.go: directories, regular files, symlinks and hard links in
// memory, the tree savable kernel state (file data: see below); unlink
// of open files, rename with RENAME_NOREPLACE and RENAME_EXCHANGE,
// O_TMPFILE (named later with linkat AT_EMPTY_PATH), chmod, chown, utimes,
// truncate, fallocate, and a size limit past which writes fail with
// ENOSPC. File data lives in pages of the kernel's memory file (Pages,
// MountTable.SetPages), so it is saved and loaded with the application's
// memory; without a kernel it is Go memory (heapPages). New files belong
// to the caller's Owner (its fsuid and fsgid; a set-group-ID directory's
// group). Permission bits are kept and reported but only execute bits are
// checked: the permissions of callers other than root are not yet.
//
// # Read-only host
//
// The host is never modified outside volumes. Under the read-only root
// (--read-only) every write intent on a host path (O_WRONLY,
// O_RDWR, O_CREAT of a missing file, O_TRUNC, O_TMPFILE, mkdir, unlink,
// rename, link, symlink, mknod, chmod, chown, utimes, truncate) fails with
// EROFS, after the checks Linux makes first on a read-only mount (ENOENT for
// a missing path, EEXIST for mkdir of an existing one, ...).
//
// # What the sandbox may open on the host
//
// Only regular files and directories of ordinary filesystems. Every lookup
// opens the result O_PATH (which has no effect on the file) and checks it
// by what it is, never by its path:
//
//   - A file on a host pseudo filesystem (procfs, sysfs, debugfs, tracefs,
//     securityfs, cgroup, configfs, bpf, devpts, mqueue, pstore, efivarfs,
//     fusectl, hugetlbfs, ...: the f_type fstatfs reports, see
//     pseudoFilesystems) is refused with EACCES for every operation (open,
//     stat, access, readlink, chdir, statfs), wherever it is mounted: the
//     mount point is listed in its parent directory but cannot be entered.
//     A lookup that fails inside one (a missing name) is EACCES too, so
//     that which names exist there does not show (Root.failedLookup).
//   - A host FIFO, socket or device node elsewhere may be listed and
//     stat'ed, but opening it fails with EACCES.
//   - A regular file or directory is then reopened for reading with
//     O_NONBLOCK (cleared afterwards), so an open never waits.
//
// EACCES ("permission denied") is the one error for every refusal.
//
// # The sentry's /dev, /proc and /sys
//
// These three directories are never looked up on the host, whatever the
// root holds there: /dev and /sys are mounted sentryFS filesystems
// (sentryfs.go), /proc a procFS (procfs.go): /dev holds the sentry's null, zero, full,
// random and urandom devices, the links fd, stdin, stdout and stderr, and
// the pseudo-terminals: ptmx, tty and, mounted at /dev/pts, a devpts
// (devpts.go, tty.go: a TTY is a pair with its line discipline, termios,
// window size, session and foreground group; the kernel answers /dev/tty
// and the job control that needs processes through File.TTY and the
// JobControl it gives with MountTable.SetJobControl);
// /sys holds devices/system/cpu/{online,possible}. /proc is a mount like
// the others, reached only by paths the mount table routes there (a chroot
// without it has none): procFS walks the path below it and asks the
// caller's ProcView (Creds.Proc, the kernel's), which generates the
// per-process files and directories of the sandbox's own processes
// (NewSynthetic, NewSyntheticDir); a walk through a process's root, cwd or
// exe link continues at what the link leads to, from the sandbox's root,
// as Linux's magic links. The kernel answers for /dev/stdin, /dev/fd/N and
// /proc/self/fd/N through FS.FDAlias (opening one reopens the descriptor's
// file with FS.Reopen, as Linux does). Anything else under them does not
// exist (ENOENT). Paths into /dev and /sys are cleaned lexically; a host
// symlink that leads into them resolves on the host and is refused.
//
// # Memfds
//
// NewMemfd (memfd_create) makes an anonymous read-write file: an unlinked
// file of a tmpfs of its own, whose data lives in the kernel's memory file
// and is saved with it, and which enforces seals. Shared mappings of a
// memfd or a tmpfs file map the file's own pages (File.MapShared).
//
// # inotify
//
// notify.go, notify_events.go: each sandbox has one Notifier (in its
// MountTable) holding the inotify watches, keyed by the device and inode
// numbers stat reports. The FS methods that change the tree (open with
// O_CREAT, mkdir, mknod, symlink, link, unlink, rename, the attribute
// changes) and the File methods that read, write, truncate or close a
// file opened by path call one notify function per event after the
// operation, whatever filesystem served it; a filesystem reports only
// that a file lost its last link and open description (inodeGone, for
// IN_DELETE_SELF). While no watch exists they cost one atomic load.
// Watches and queued events are saved; only changes made through the
// sentry are seen, never the host's.
//
// # Blocking and interruption
//
// Operations that can block (reading a pipe or host stdio, writing a full
// pipe or a blocked host stdio) take a cancel channel. The kernel closes it
// (never sends on it) to interrupt the operation, for a signal or a Pause
// before save. An interrupted operation that transferred nothing returns
// ErrInterrupted, which the kernel maps to ERESTARTSYS/EINTR; one that
// transferred bytes returns the count and a nil error, as Linux does. A nil
// cancel channel never fires. Files with O_NONBLOCK return EAGAIN instead of
// blocking. No host system call of a task blocks: host files are regular
// files and directories only, and host stdio that can wait (a pipe, a
// terminal, a socket) is transferred on a non-blocking description of the
// sentry's own or with MSG_DONTWAIT, waiting only in waitFD. Readiness reports poll(2) events without blocking; Watch returns a
// channel closed when readiness may have changed, for the kernel's poll.
//
// # Save and restore
//
// Savable types carry `// +stateify savable`. Host file descriptors are not
// saved: a host file saves its guest path, open flags, offset and identity
// (device, inode, size, mtime) and its afterLoad reopens the path under the
// (possibly relocated) root and checks the identity. Stdio files save their
// index (0, 1, 2) and are re-bound to files the restorer supplies. Pipes
// save their buffered bytes. afterLoad reads from its context:
//
//   - WithRestoreStdio(ctx, [3]*os.File): the host files for stdio 0, 1, 2.
//     Missing entries mean /dev/null semantics for that index.
//
//   - WithRestoreStdioSet(ctx, *StdioSet): a collector of the restored stdio
//     files, whose Rebind binds them to other host files before the kernel
//     runs (a pool member's stdio, given when it is taken).
//
//   - WithRestoreRoot(ctx, dir): the host directory to use as the root instead
//     of the saved one (restoring on another machine or with another --rootfs).
//
//   - WithRestoreErrors(ctx, *RestoreErrors): a collector. A file whose host
//     side cannot be rebuilt (missing, or changed since the save: ErrHostFileChanged)
//     adds a wrapped error there and fails every later operation with EIO. The
//     restorer must check RestoreErrors.Err() after loading and abort the
//     restore if it is non-nil. The zero RestoreErrors is ready to use.
//
//   - WithRestorePortableIdentity(ctx): match host files by type,
//     permissions, size and mtime only, for a root that is a copy of the
//     saved one (another machine) made with times preserved.
//
// By default identity includes the device and inode numbers, so a file still
// open at save time restores only against the same host filesystem (a moved
// root directory is fine; a copy is not unless WithRestorePortableIdentity).
//
// # Locking
//
// Lock order (outer to inner):
//
//	FS.mu
//	  FDTable.mu
//	    File.mu
//	      hostFile.mu, stdioFile.mu, pipe.mu, tmpfsFile.mu, the lock of an Impl
//	        devpts.mu
//	        TTY.mu (released before JobControl is called)
//	        MountTable.mu
//	          tmpfs.mu (an overlay's upper layer: held across its lower lookups)
//	            Root.mu, bindFS.mu, hostFile.upMu
//	            Notifier.mu
//	              inotifyFile.mu
//
// Root.mountTable holds Root.mu while it builds a table, which takes no
// other lock.
//
// FS and FDTable methods never hold their lock while calling into a File.
// The notify functions run after an operation, with no lock held.
package vfs

//go:generate go run snapshotter/tools/stategen
// +stateify package=snapshotter/kernel/vfs
