package vfs

import "errors"

var (
	// ErrInterrupted is returned by a blocking operation whose cancel
	// channel was closed before it transferred any data. The kernel maps it
	// to ERESTARTSYS (restart after a stop or a restartable signal) or EINTR.
	ErrInterrupted = errors.New("vfs: blocking operation interrupted")

	// ErrHostFileChanged is reported (wrapped, naming the path and the
	// difference) when a host file reopened on restore is not the file that
	// was open at save time.
	ErrHostFileChanged = errors.New("host file changed since the checkpoint")

	// ErrRestore wraps every error afterLoad reports to a RestoreErrors
	// collector.
	ErrRestore = errors.New("vfs restore")

	// ErrPseudoRoot is returned (wrapped) by OpenRoot for a directory on a
	// host pseudo filesystem such as procfs or sysfs: nothing there may be
	// shown to a sandbox.
	ErrPseudoRoot = errors.New("directory is on a host pseudo filesystem (procfs, sysfs, ...), which a sandbox may not see")
)
