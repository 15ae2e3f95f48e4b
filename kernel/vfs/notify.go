package vfs

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Inotify event and flag bits (linux/inotify.h).
const (
	InAccess       = 0x1
	InModify       = 0x2
	InAttrib       = 0x4
	InCloseWrite   = 0x8
	InCloseNowrite = 0x10
	InOpen         = 0x20
	InMovedFrom    = 0x40
	InMovedTo      = 0x80
	InCreate       = 0x100
	InDelete       = 0x200
	InDeleteSelf   = 0x400
	InMoveSelf     = 0x800
	InUnmount      = 0x2000
	InQOverflow    = 0x4000
	InIgnored      = 0x8000
	InOnlydir      = 0x1000000
	InDontFollow   = 0x2000000
	InExclUnlink   = 0x4000000
	InMaskCreate   = 0x10000000
	InMaskAdd      = 0x20000000
	InIsdir        = 0x40000000
	InOneshot      = 0x80000000

	// InAllEvents is IN_ALL_EVENTS: every event a watch may ask for.
	InAllEvents = 0xfff
	// inotifyBits is Linux's ALL_INOTIFY_BITS: a mask without any of
	// them is EINVAL.
	inotifyBits = InAllEvents | InUnmount | InQOverflow | InIgnored | InOnlydir | InDontFollow |
		InExclUnlink | InMaskCreate | InMaskAdd | InIsdir | InOneshot
	// watchFlags are the flags a watch keeps with its events.
	watchFlags = InExclUnlink | InOneshot
	// parentEvents are the events on a file that a watch on its
	// directory also sees, with the file's name.
	parentEvents = InAccess | InModify | InAttrib | InCloseWrite | InCloseNowrite | InOpen
)

// inodeKey identifies a file for watches: the device and inode numbers
// stat reports.
//
// +stateify savable
type inodeKey struct {
	Dev uint64
	Ino uint64
}

func keyOf(st Stat) inodeKey {
	return inodeKey{Dev: uint64(st.DevMajor)<<32 | uint64(st.DevMinor), Ino: st.Ino}
}

// Notifier routes the events of a sandbox's files to its inotify watches
// and dnotify requests (Linux's fsnotify). The FS methods that change the tree and the File
// methods that open, read, write, change or close a file call one notify
// function per event (notify_events.go); they do nothing while the
// sandbox has no watch, so a sandbox without inotify pays one atomic load
// per operation. A filesystem calls inodeGone when a file's last link and
// last open description are gone (IN_DELETE_SELF); the FS and File
// methods deliver those after their own events, in Linux's order.
//
// Watches are keyed by device and inode number, so they follow a file
// through renames and links. Only changes made through the sentry are
// seen: the host root is read-only to the sandbox, and changes the host
// makes to it are not reported.
//
// +stateify savable
type Notifier struct {
	// root resolves the parent directories of files for File events;
	// immutable.
	root *Root

	// mu protects watches, cookie, gone and instances. Not saved: idle
	// at save time.
	mu sync.Mutex `state:"nosave"`
	// watches maps a file to the watches on it, in the order they were
	// added. Saved as one list (saveWatches).
	watches map[inodeKey][]*inotifyWatch `state:".([]*inotifyWatch)"`
	// cookie is the last cookie given to a rename's pair of events.
	cookie uint32
	// gone are files whose last link and open description went while
	// watched, waiting for the operation that dropped them to deliver
	// IN_DELETE_SELF.
	gone []inodeKey
	// instances counts the inotify instances open in the sandbox.
	instances int

	// nwatches is the number of watches; accessed atomically; writes also
	// hold mu. Not saved: afterLoad counts them.
	nwatches atomic.Int64 `state:"nosave"`
	// loaded holds the watches between loadWatches and afterLoad. Not
	// saved: empty outside a restore.
	loaded []*inotifyWatch `state:"nosave"`

	// dnotify are the F_NOTIFY watches (dnotify.go), in the order they
	// were made; protected by mu. nwatches counts them too.
	dnotify []*dnotifyWatch
	// outbox holds the signals dnotify watches send, queued while mu is
	// held and sent by unlock; protected by mu. Not saved: empty outside
	// a locked section.
	outbox []sigioMsg `state:"nosave"`
	// sigio sends those signals (the kernel); protected by mu. Not
	// saved: the kernel sets it again after a restore (SetSigioSender).
	sigio SigioSender `state:"nosave"`
}

// maxInotifyInstances is Linux's default fs.inotify.max_user_instances.
const maxInotifyInstances = 128

func newNotifier(root *Root) *Notifier {
	return &Notifier{root: root, watches: map[inodeKey][]*inotifyWatch{}}
}

// saveWatches returns the watches ordered by file, each file's in the
// order they were added. Invoked by stateify.
func (n *Notifier) saveWatches() []*inotifyWatch {
	keys := make([]inodeKey, 0, len(n.watches))
	for k := range n.watches {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Dev != keys[j].Dev {
			return keys[i].Dev < keys[j].Dev
		}
		return keys[i].Ino < keys[j].Ino
	})
	var out []*inotifyWatch
	for _, k := range keys {
		out = append(out, n.watches[k]...)
	}
	return out
}

// loadWatches keeps the saved watches for afterLoad, which keys them once
// they are loaded. Invoked by stateify.
func (n *Notifier) loadWatches(_ context.Context, ws []*inotifyWatch) {
	n.loaded = ws
}

// afterLoad indexes and counts the restored watches. Invoked by stateify.
func (n *Notifier) afterLoad(context.Context) {
	n.watches = make(map[inodeKey][]*inotifyWatch, len(n.loaded))
	for _, w := range n.loaded {
		n.watches[w.key] = append(n.watches[w.key], w)
	}
	n.nwatches.Store(int64(len(n.loaded) + len(n.dnotify)))
	n.loaded = nil
}

// active reports whether any watch exists. A nil Notifier has none.
func (n *Notifier) active() bool { return n != nil && n.nwatches.Load() > 0 }

// nextCookie returns a new cookie for a rename's events.
func (n *Notifier) nextCookie() uint32 {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cookie++
	if n.cookie == 0 {
		n.cookie++
	}
	return n.cookie
}

// event is one queued inotify event.
//
// +stateify savable
type inotifyEvent struct {
	wd     int32
	mask   uint32
	cookie uint32
	name   string
}

// size is the event's size in a read: struct inotify_event and the name,
// NUL-terminated and padded to a multiple of the struct's size.
func (e *inotifyEvent) size() int { return inotifyEventSize + e.nameLen() }

func (e *inotifyEvent) nameLen() int {
	if e.name == "" {
		return 0
	}
	return (len(e.name) + inotifyEventSize) / inotifyEventSize * inotifyEventSize
}

const inotifyEventSize = 16

// deliver sends an event to the watches of key: mask and ISDIR as the
// event's bits, name when the watch is on the directory of the file the
// event is about. unlinked says the file has no name left (IN_EXCL_UNLINK
// watches skip it).
//
// Preconditions: n.mu is held.
func (n *Notifier) deliverLocked(key inodeKey, mask uint32, cookie uint32, name string, unlinked bool) {
	ws := n.watches[key]
	for i := 0; i < len(ws); i++ {
		w := ws[i]
		if w.mask&mask&InAllEvents == 0 || unlinked && w.mask&InExclUnlink != 0 {
			continue
		}
		w.owner.queue(inotifyEvent{wd: w.wd, mask: mask, cookie: cookie, name: name})
		if w.mask&InOneshot != 0 {
			n.removeLocked(w)
			w.owner.queue(inotifyEvent{wd: w.wd, mask: InIgnored})
			ws = n.watches[key]
			i--
		}
	}
	n.dnotifyLocked(key, dnotifyBits(mask))
}

// removeLocked removes watch w from n and from its instance.
//
// Preconditions: n.mu is held.
func (n *Notifier) removeLocked(w *inotifyWatch) {
	ws := n.watches[w.key]
	for i, o := range ws {
		if o == w {
			ws = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(n.watches, w.key)
	} else {
		n.watches[w.key] = ws
	}
	w.owner.forget(w)
	n.nwatches.Add(-1)
}

// inodeGone records that file key lost its last link and open
// description; the operation that caused it delivers IN_DELETE_SELF
// (flushGone). A filesystem calls it, with its own lock held if it likes:
// it takes only n.mu.
func (n *Notifier) inodeGone(key inodeKey) {
	if !n.active() {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.watches[key]; ok {
		n.gone = append(n.gone, key)
	}
}

// flushGone delivers IN_DELETE_SELF, then IN_IGNORED, to the watches of
// every file inodeGone recorded, and removes them.
func (n *Notifier) flushGone() {
	if !n.active() {
		return
	}
	n.mu.Lock()
	defer n.unlock()
	for _, key := range n.gone {
		n.deliverLocked(key, InDeleteSelf, 0, "", false)
		for _, w := range append([]*inotifyWatch(nil), n.watches[key]...) {
			n.removeLocked(w)
			w.owner.queue(inotifyEvent{wd: w.wd, mask: InIgnored})
		}
	}
	n.gone = nil
}

// inotifyWatch is one watch: an instance's interest in a file.
//
// +stateify savable
type inotifyWatch struct {
	// owner is the instance; immutable.
	owner *inotifyFile
	// wd is the watch descriptor; immutable.
	wd int32
	// key is the watched file; immutable.
	key inodeKey
	// mask is the events and flags (watchFlags) asked for; protected by
	// the Notifier's mu.
	mask uint32
}

// inotifyFile is an inotify instance (inotify_init1(2)).
//
// +stateify savable
type inotifyFile struct {
	noImpl
	// n is the sandbox's notifier; immutable.
	n *Notifier

	// mu protects the fields below. Not saved: idle at save time.
	mu sync.Mutex `state:"nosave"`
	// watches maps watch descriptors to watches.
	watches map[int32]*inotifyWatch
	// lastWD is the last watch descriptor given (they are not reused
	// until they wrap, as Linux's cyclic allocation).
	lastWD int32
	// events is the queue; bytes the size a read of all of it takes.
	events []inotifyEvent
	bytes  int
	// changed is closed when an event is queued. Not saved: nobody
	// waits at save time.
	changed chan struct{} `state:"nosave"`
}

// maxQueuedEvents is Linux's default fs.inotify.max_queued_events.
const maxQueuedEvents = 16384

// NewInotify returns a new inotify instance of the sandbox whose root is
// root (inotify_init1(2)); flags may hold O_NONBLOCK. EMFILE past Linux's
// default limit of instances.
func NewInotify(root *Root, flags uint32) (*File, error) {
	n := root.mountTable().notifier
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.instances >= maxInotifyInstances {
		return nil, unix.EMFILE
	}
	n.instances++
	in := &inotifyFile{n: n, watches: map[int32]*inotifyWatch{}}
	return newFile(unix.O_RDONLY|flags&unix.O_NONBLOCK, in), nil
}

// queue adds ev, merged with the last event if identical, or
// IN_Q_OVERFLOW once the queue is full.
func (in *inotifyFile) queue(ev inotifyEvent) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.events) >= maxQueuedEvents {
		for i := range in.events {
			if in.events[i].mask == InQOverflow {
				return // one overflow event at a time, as Linux
			}
		}
		ev = inotifyEvent{wd: -1, mask: InQOverflow}
	} else if k := len(in.events); k > 0 {
		if last := &in.events[k-1]; last.mask&InIgnored == 0 && *last == ev {
			return
		}
	}
	in.events = append(in.events, ev)
	in.bytes += ev.size()
	if in.changed != nil {
		close(in.changed)
		in.changed = nil
	}
}

// forget drops w from the instance's descriptors.
func (in *inotifyFile) forget(w *inotifyWatch) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.watches, w.wd)
}

// read takes whole events; pread is ESPIPE, as on Linux's anonymous
// inode files.
func (in *inotifyFile) read(f *File, cancel <-chan struct{}, dst []byte, off int64) (int, error) {
	if off >= 0 {
		return 0, unix.ESPIPE
	}
	for {
		in.mu.Lock()
		if len(in.events) > 0 {
			n, err := in.readLocked(dst)
			in.mu.Unlock()
			return n, err
		}
		if f.nonblocking() {
			in.mu.Unlock()
			return 0, unix.EAGAIN
		}
		if in.changed == nil {
			in.changed = make(chan struct{})
		}
		ch := in.changed
		in.mu.Unlock()
		if err := wait(cancel, ch); err != nil {
			return 0, err
		}
	}
}

// readLocked copies whole events into dst; EINVAL if the first does not
// fit.
//
// Preconditions: in.mu is held; the queue is not empty.
func (in *inotifyFile) readLocked(dst []byte) (int, error) {
	off, k := 0, 0
	for ; k < len(in.events); k++ {
		ev := &in.events[k]
		sz := ev.size()
		if off+sz > len(dst) {
			break
		}
		b := dst[off : off+sz]
		clear(b)
		putLE32(b[0:], uint32(ev.wd))
		putLE32(b[4:], ev.mask)
		putLE32(b[8:], ev.cookie)
		putLE32(b[12:], uint32(ev.nameLen()))
		copy(b[inotifyEventSize:], ev.name)
		off += sz
	}
	if k == 0 {
		return 0, unix.EINVAL
	}
	in.events = append(in.events[:0:0], in.events[k:]...)
	in.bytes -= off
	return off, nil
}

func (in *inotifyFile) seek(*File, int64, int) (int64, error) { return 0, nil }

func (in *inotifyFile) stat(*File) (Stat, error) {
	return Stat{Mask: unix.STATX_BASIC_STATS, Blksize: pageSize, Mode: 0o600, Nlink: 1}, nil
}

func (in *inotifyFile) ioctl(_ *File, cmd uint32, arg []byte) (int, error) {
	if cmd != fionread {
		return 0, unix.ENOTTY
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	putLE32(arg, uint32(in.bytes))
	return 0, nil
}

func (in *inotifyFile) readiness(_ *File, mask uint32) uint32 {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.events) > 0 {
		return mask & (unix.POLLIN | pollRdNorm)
	}
	return 0
}

func (in *inotifyFile) watch(*File, uint32) (<-chan struct{}, func()) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.changed == nil {
		in.changed = make(chan struct{})
	}
	return in.changed, func() {}
}

func (in *inotifyFile) guestPath() string { return "anon_inode:inotify" }

// release removes the instance's watches.
func (in *inotifyFile) release() {
	n := in.n
	n.mu.Lock()
	defer n.mu.Unlock()
	in.mu.Lock()
	ws := make([]*inotifyWatch, 0, len(in.watches))
	for _, w := range in.watches {
		ws = append(ws, w)
	}
	in.mu.Unlock()
	for _, w := range ws {
		n.removeLocked(w)
	}
	n.instances--
}

// InotifyMaskValid reports whether mask is a valid inotify_add_watch
// mask: some inotify bit, and not both IN_MASK_ADD and IN_MASK_CREATE.
// Linux checks it before the descriptor.
func InotifyMaskValid(mask uint32) bool {
	return mask&inotifyBits != 0 && mask&(InMaskAdd|InMaskCreate) != InMaskAdd|InMaskCreate
}

// InotifyAddWatch implements inotify_add_watch(2) on instance f for the
// file at p (relative to dir, as for the *at calls) and returns the
// watch descriptor: the existing one for a file the instance already
// watches, whose mask it replaces (extends with IN_MASK_ADD; EEXIST with
// IN_MASK_CREATE). EINVAL if f is not an inotify instance.
func (fs *FS) InotifyAddWatch(f *File, dir *File, p string, mask uint32) (int32, error) {
	in, ok := f.impl.(*inotifyFile)
	if !ok {
		return 0, unix.EINVAL
	}
	flags := 0
	if mask&InDontFollow != 0 {
		flags = unix.AT_SYMLINK_NOFOLLOW
	}
	st, err := fs.Fstatat(dir, p, flags)
	if err != nil {
		return 0, err
	}
	if mask&InOnlydir != 0 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, unix.ENOTDIR
	}
	return in.addWatch(keyOf(st), mask)
}

func (in *inotifyFile) addWatch(key inodeKey, mask uint32) (int32, error) {
	n := in.n
	n.mu.Lock()
	defer n.mu.Unlock()
	want := mask & (InAllEvents | watchFlags)
	for _, w := range n.watches[key] {
		if w.owner != in {
			continue
		}
		switch {
		case mask&InMaskCreate != 0:
			return 0, unix.EEXIST
		case mask&InMaskAdd != 0:
			w.mask |= want
		default:
			w.mask = want
		}
		return w.wd, nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	wd := in.lastWD
	for {
		wd++
		if wd <= 0 {
			wd = 1
		}
		if _, used := in.watches[wd]; !used {
			break
		}
	}
	in.lastWD = wd
	w := &inotifyWatch{owner: in, wd: wd, key: key, mask: want}
	in.watches[wd] = w
	n.watches[key] = append(n.watches[key], w)
	n.nwatches.Add(1)
	return wd, nil
}

// InotifyRmWatch implements inotify_rm_watch(2): the watch goes, with
// IN_IGNORED queued. EINVAL if f is not an inotify instance or wd not one
// of its watches.
func (f *File) InotifyRmWatch(wd int32) error {
	in, ok := f.impl.(*inotifyFile)
	if !ok {
		return unix.EINVAL
	}
	n := in.n
	n.mu.Lock()
	defer n.mu.Unlock()
	in.mu.Lock()
	w := in.watches[wd]
	in.mu.Unlock()
	if w == nil {
		return unix.EINVAL
	}
	n.removeLocked(w)
	in.queue(inotifyEvent{wd: wd, mask: InIgnored})
	return nil
}
