package vfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

type (
	restoreStdioKey    struct{}
	restoreRootKey     struct{}
	restoreErrorsKey   struct{}
	restorePortableKey struct{}
	restoreStdioSetKey struct{}
)

// WithRestorePortableIdentity returns a context in which restored host
// files are matched by file type, permissions, size and mtime only, not by
// device and inode: for a root that is a copy of the saved one (another
// machine, an unpacked image) made with times preserved.
func WithRestorePortableIdentity(ctx context.Context) context.Context {
	return context.WithValue(ctx, restorePortableKey{}, true)
}

// WithRestoreStdio returns a context that makes restored stdio files bind
// to files[0], files[1], files[2]. A nil entry makes that stream behave like
// /dev/null. The files must stay open while the sandbox runs.
func WithRestoreStdio(ctx context.Context, files [3]*os.File) context.Context {
	return context.WithValue(ctx, restoreStdioKey{}, files)
}

// StdioSet collects the stdio files a restore bound (WithRestoreStdioSet),
// so that they can be bound again to other host files before the restored
// kernel runs: a pool member gets its stdio only when it is taken. It is
// safe for concurrent use.
type StdioSet struct {
	mu    sync.Mutex
	files []*stdioFile
}

// WithRestoreStdioSet returns a context whose restored stdio files add
// themselves to set.
func WithRestoreStdioSet(ctx context.Context, set *StdioSet) context.Context {
	return context.WithValue(ctx, restoreStdioSetKey{}, set)
}

// Rebind binds every collected stream to files[its index] (nil: like
// /dev/null), as WithRestoreStdio would have. The files must stay open
// while the sandbox runs. On error the streams already bound keep their
// new file and the failing one behaves like /dev/null.
//
// Preconditions: no task of the restored kernel runs yet.
func (set *StdioSet) Rebind(files [3]*os.File) error {
	set.mu.Lock()
	defer set.mu.Unlock()
	for _, s := range set.files {
		if err := s.bind(files[s.index]); err != nil {
			s.bind(nil)
			return err
		}
	}
	return nil
}

func (set *StdioSet) add(s *stdioFile) {
	set.mu.Lock()
	set.files = append(set.files, s)
	set.mu.Unlock()
}

// WithRestoreRoot returns a context that makes a restored Root reopen dir
// instead of the host directory it was saved with.
func WithRestoreRoot(ctx context.Context, dir string) context.Context {
	return context.WithValue(ctx, restoreRootKey{}, dir)
}

// RestoreErrors collects the failures of vfs afterLoad hooks. It is safe
// for concurrent use.
type RestoreErrors struct {
	mu   sync.Mutex
	errs []error
}

// WithRestoreErrors returns a context whose vfs afterLoad hooks report to c.
func WithRestoreErrors(ctx context.Context, c *RestoreErrors) context.Context {
	return context.WithValue(ctx, restoreErrorsKey{}, c)
}

// Err returns all reported errors joined (each wraps ErrRestore), or nil.
func (c *RestoreErrors) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return errors.Join(c.errs...)
}

// reportRestoreError wraps err with ErrRestore and adds it to the context's
// collector, if any. Without a collector the failure is visible only as EIO
// from the broken file's operations.
func reportRestoreError(ctx context.Context, err error) {
	c, _ := ctx.Value(restoreErrorsKey{}).(*RestoreErrors)
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, fmt.Errorf("%w: %w", ErrRestore, err))
}

// beforeSave records the canonical guest path, which is computed lazily.
// Invoked by stateify.
func (h *hostFile) beforeSave() { h.guestPath() }

// afterLoad reopens the host file at its guest path under the root and
// checks that it is the file that was saved. Invoked by stateify.
func (h *hostFile) afterLoad(ctx context.Context) {
	h.fd = -1
	if h.bind != nil {
		portable, _ := ctx.Value(restorePortableKey{}).(bool)
		if err := h.reopenBind(ctx, portable); err != nil {
			h.broken = err
			reportRestoreError(ctx, err)
		}
		return
	}
	if err := h.root.restore(ctx); err != nil {
		err = fmt.Errorf("host file %q: %w", h.path, err)
		h.broken = err
		reportRestoreError(ctx, err)
		return
	}
	portable, _ := ctx.Value(restorePortableKey{}).(bool)
	if err := h.reopen(portable); err != nil {
		h.broken = err
		reportRestoreError(ctx, err)
	}
	h.afterLoadLower(ctx)
}

func (h *hostFile) reopen(portable bool) error {
	pfd, st, err := h.root.lookupStat(h.path, h.lookupFlags)
	if err != nil {
		return fmt.Errorf("reopen host file %q: %w", h.path, err)
	}
	got := identityOf(&st)
	if portable {
		got.DevMajor, got.DevMinor, got.Ino = h.ident.DevMajor, h.ident.DevMinor, h.ident.Ino
	}
	if got != h.ident || st.Mode != h.mode {
		unix.Close(pfd)
		return fmt.Errorf("host file %q: %w: %s", h.path, ErrHostFileChanged, identityDiff(h.ident, got, h.mode, st.Mode))
	}
	if h.pathOnly {
		h.fd = pfd
		return nil
	}
	fd, err := reopen(pfd, h.isDir())
	unix.Close(pfd)
	if err != nil {
		return fmt.Errorf("reopen host file %q: %w", h.path, err)
	}
	h.fd = fd
	return nil
}

func identityDiff(want, got identity, wantMode, gotMode uint32) string {
	switch {
	case want.DevMajor != got.DevMajor || want.DevMinor != got.DevMinor || want.Ino != got.Ino:
		return fmt.Sprintf("device:inode was %d:%d:%d, now %d:%d:%d",
			want.DevMajor, want.DevMinor, want.Ino, got.DevMajor, got.DevMinor, got.Ino)
	case wantMode != gotMode:
		return fmt.Sprintf("mode was %#o, now %#o", wantMode, gotMode)
	case want.Size != got.Size:
		return fmt.Sprintf("size was %d, now %d", want.Size, got.Size)
	default:
		return fmt.Sprintf("mtime was %d.%09d, now %d.%09d",
			want.Mtime.Sec, want.Mtime.Nsec, got.Mtime.Sec, got.Mtime.Nsec)
	}
}
