package vfs

import (
	"context"

	"golang.org/x/sys/unix"
)

// Descriptions of lower files opened before their copy-up. Linux's
// overlayfs (since 4.19) makes read, pread, lseek and fstat of such a
// description follow the copy in the upper layer, so that a reader sees
// what a later writer wrote through another descriptor. The overlay keeps
// the open descriptions of lower regular files by the lower file's
// identity (lowerOpen), and copy-up hands each of them a read-only
// description of the new upper file (hostFile.up), which they read from
// then on. Memory mappings made from the lower file keep its pages, as
// Linux documents for read-only mappings made before a copy-up.

// lowerOpens are the open descriptions of lower regular files, by the
// lower file's identity.
type lowerOpens map[ovlOrigin]map[*hostFile]struct{}

// originOf is the lower file identity copy-up records for a file whose
// host attributes are ident.
func originOf(ident identity) ovlOrigin {
	return ovlOrigin{DevMajor: ident.DevMajor, DevMinor: ident.DevMinor, Ino: ident.Ino}
}

// trackLowerLocked records h, a lower regular file, so that its copy-up
// reaches it.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) trackLowerLocked(h *hostFile) {
	if h.pathOnly || h.mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	if o.lowerOpen == nil {
		o.lowerOpen = make(lowerOpens)
	}
	k := originOf(h.ident)
	if o.lowerOpen[k] == nil {
		o.lowerOpen[k] = make(map[*hostFile]struct{})
	}
	o.lowerOpen[k][h] = struct{}{}
}

// untrackLower forgets h (its last reference is gone).
func (o *overlayFS) untrackLower(h *hostFile) {
	o.upper.mu.Lock()
	defer o.upper.mu.Unlock()
	k := originOf(h.ident)
	delete(o.lowerOpen[k], h)
	if len(o.lowerOpen[k]) == 0 {
		delete(o.lowerOpen, k)
	}
}

// copiedUpLocked gives every open description of the lower file origin
// names a description of n, its copy at guest path p, and stops tracking
// them.
//
// Preconditions: o.upper.mu is held.
func (o *overlayFS) copiedUpLocked(origin ovlOrigin, n *tmpNode, p string) {
	for h := range o.lowerOpen[origin] {
		up, err := o.upper.openLocked(h.ovlMount, n, p, unix.O_RDONLY|oLargefile)
		if err != nil {
			continue // a description that cannot follow keeps the lower file
		}
		h.upMu.Lock()
		h.up = up
		h.upMu.Unlock()
	}
	delete(o.lowerOpen, origin)
}

// upper returns the description of h's copy-up, or nil.
func (h *hostFile) upper() *File {
	h.upMu.Lock()
	defer h.upMu.Unlock()
	return h.up
}

// readUpper reads h's copy-up up at off, or at h's offset if off < 0.
func (h *hostFile) readUpper(up *File, cancel <-chan struct{}, dst []byte, off int64) (int, error) {
	if off >= 0 {
		return up.impl.read(up, cancel, dst, off)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := up.impl.read(up, cancel, dst, h.off)
	h.off += int64(n)
	return n, err
}

// seekUpper is lseek on h after its copy-up up: h's own offset, against
// the copy's size (SEEK_DATA and SEEK_HOLE see no holes).
func (h *hostFile) seekUpper(up *File, off int64, whence int) (int64, error) {
	st, err := up.impl.stat(up)
	if err != nil {
		return 0, err
	}
	size := int64(st.Size)
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := seekNoHoles(h.off, size, off, whence)
	if err != nil {
		return 0, err
	}
	h.off = n
	return n, nil
}

// releaseLower stops tracking h and drops its copy-up's description.
func (h *hostFile) releaseLower() {
	if h.ovl == nil {
		return
	}
	h.ovl.untrackLower(h)
	if up := h.upper(); up != nil {
		up.DecRef()
	}
}

// afterLoadLower tracks a restored lower file again, unless it was copied
// up before the save (then up was saved with it).
func (h *hostFile) afterLoadLower(context.Context) {
	if h.ovl == nil || h.upper() != nil || h.broken != nil {
		return
	}
	h.ovl.upper.mu.Lock()
	defer h.ovl.upper.mu.Unlock()
	h.ovl.trackLowerLocked(h)
}
