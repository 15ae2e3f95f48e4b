package runner

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// A taker claims a member by unlinking its waiting/<id> and then sends it
// a take request. A taker that dies (or is killed) in between would leave
// the member restored and parked outside any pool for ever, so a member
// watches its own entry and, once it sees it claimed, gives the taker the
// hand-over timeout to send its take:
//
//	claimed, take in time       the take is served (the ordinary case)
//	claimed, no take in time    the member enters its pool again (a new
//	                            waiting/<id>), or, if the pool was removed,
//	                            ends and removes its directory (nobody can
//	                            claim it any more)
//	take, entry still listed    a take whose claim came before the member
//	                            entered again (a slow taker), or a take
//	                            without a claim: the member claims itself
//	                            for it by unlinking its entry; if that
//	                            fails (a taker or pool rm claimed it
//	                            first), the take is refused with
//	                            ErrNotWaiting and the taker tries another
//
// Whether the entry is claimed is its link count, read through a
// descriptor of the entry kept open, under the server's lock at each take:
// the member is taken once, and never on an entry that nobody claimed for
// the take. The watch costs nothing while the member waits: an inotify
// instance watching the entry (its unlink is an IN_ATTRIB, the link count
// changing) read by a goroutine parked in the runtime's poller.
//
// A take that comes after the timeout and after another taker claimed the
// entry again may be served in that taker's place (the member cannot tell
// whose take it is); that taker is then refused and tries another member.
// A member that gets no inotify instance (fs.inotify.max_user_instances
// reached) waits without the watch, as members did before it, and says so
// in its sentry.log.

// HandoverTimeoutEnv, if set to a Go duration (such as "500ms"), replaces
// DefaultHandoverTimeout in the members started with it in their
// environment (tests set it short).
const HandoverTimeoutEnv = "SNAP_POOL_HANDOVER_TIMEOUT"

// DefaultHandoverTimeout is how long a member claimed waits for its take
// before it enters its pool again: long enough for a live taker slowed by
// a loaded machine, short enough that the pool is not short a member for
// long.
const DefaultHandoverTimeout = 10 * time.Second

// handoverTimeout returns the hand-over timeout from the environment.
func handoverTimeout() time.Duration {
	return envDuration(HandoverTimeoutEnv, DefaultHandoverTimeout)
}

// envDuration returns the duration the environment variable name gives,
// or def if it is unset (or, said in the log, not a positive duration).
func envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		log.Printf("%s=%q is not a positive duration: using %v", name, v, def)
		return def
	}
	return d
}

// handover is a waiting member's watch of its pool entry. ino is
// immutable; the other fields are protected by the member's Server.mu.
type handover struct {
	pool    poolDir
	id      string
	timeout time.Duration
	// ino is the inotify instance; watchEntry reads it until close.
	ino *os.File
	// entry is a descriptor of the current waiting file, wd its watch.
	entry, wd int
	// timer runs from a claim seen until the take, or until the timeout
	// (handoverExpired); armed counts the timers started, so that one
	// stopped too late to keep it from firing knows it is not current.
	timer *time.Timer
	armed uint64
	// ending is set once the member ends instead of entering again: a
	// take is refused from then on.
	ending bool
}

// EnterPool enters the member in pool name, where takers find it from
// now on, and watches its entry (see above). It fails if the pool is gone.
func (s *Server) EnterPool(name string) error {
	p := s.sd.pool(name)
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		log.Printf("sandbox %s: waiting without a watch of its pool entry (a taker that dies between its claim and its take leaves it outside the pool): inotify: %v", s.id, err)
		return p.enter(s.id)
	}
	h := &handover{pool: p, id: s.id, timeout: handoverTimeout(), ino: os.NewFile(uintptr(fd), "inotify"), entry: -1, wd: -1}
	s.mu.Lock()
	err = h.listLocked()
	if err == nil {
		s.pooled = h
		s.armLocked(h)
	}
	s.mu.Unlock()
	if err != nil {
		h.close()
		return err
	}
	go s.watchEntry(h)
	return nil
}

// listLocked enters the member in its pool (a new waiting file) and
// watches the file, dropping the previous one. The caller then calls
// armLocked, for a file claimed before the watch began.
//
// Preconditions: the member's Server.mu is held.
func (h *handover) listLocked() error {
	h.dropEntry()
	fd, err := h.pool.enterFile(h.id)
	if err != nil {
		return err
	}
	h.entry = fd
	var werr error
	cerr := h.rawIno(func(ino int) {
		h.wd, werr = unix.InotifyAddWatch(ino, "/proc/self/fd/"+strconv.Itoa(fd), unix.IN_ATTRIB|unix.IN_DELETE_SELF)
	})
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		// Not left listed unwatched: a claim by a dying taker would go
		// unseen.
		os.Remove(filepath.Join(h.pool.waitingDir(), h.id))
		h.dropEntry()
		return fmt.Errorf("enter pool %s: watch %s: %w", h.pool.name, h.id, werr)
	}
	return nil
}

// rawIno runs f with the inotify descriptor (without putting it in
// blocking mode, as Fd would).
func (h *handover) rawIno(f func(ino int)) error {
	rc, err := h.ino.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { f(int(fd)) })
}

// stopTimer stops the hand-over timer, if running.
func (h *handover) stopTimer() {
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
}

// dropEntry stops the timer and forgets the current waiting file.
func (h *handover) dropEntry() {
	h.stopTimer()
	if h.wd >= 0 {
		h.rawIno(func(ino int) { unix.InotifyRmWatch(ino, uint32(h.wd)) })
		h.wd = -1
	}
	if h.entry >= 0 {
		unix.Close(h.entry)
		h.entry = -1
	}
}

// claimed reports whether the current waiting file was unlinked.
func (h *handover) claimed() bool {
	var st unix.Stat_t
	return h.entry >= 0 && unix.Fstat(h.entry, &st) == nil && st.Nlink == 0
}

// close ends the watch (watchEntry returns).
func (h *handover) close() {
	h.dropEntry()
	h.ino.Close()
}

// watchEntry reads h's inotify events until h is closed; each has the
// entry looked at again.
func (s *Server) watchEntry(h *handover) {
	// Events of a watch on a file carry no name: 16 bytes each.
	buf := make([]byte, 16*unix.SizeofInotifyEvent)
	for {
		if _, err := h.ino.Read(buf); err != nil {
			return // closed: taken, ended or shut down
		}
		s.entryChanged(h)
	}
}

// entryChanged looks at the member's entry again.
func (s *Server) entryChanged(h *handover) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armLocked(h)
}

// armLocked starts the hand-over timer if the member's entry was claimed
// and no take was served yet.
//
// Preconditions: s.mu is held.
func (s *Server) armLocked(h *handover) {
	if s.pooled != h || h.ending || h.timer != nil || s.meta.Status != StatusWaiting || !h.claimed() {
		return
	}
	h.armed++
	n := h.armed
	h.timer = time.AfterFunc(h.timeout, func() {
		if handoverExpiringHook != nil {
			handoverExpiringHook(h.id)
		}
		s.handoverExpired(h, n)
	})
}

// handoverExpiringHook, nil outside tests, runs when a member's
// hand-over timer fires, before the member looks at its entry.
var handoverExpiringHook func(id string)

// handoverExpired runs when timer n of a claimed member fires: if that
// is still the current one (no take came), the member enters its pool
// again, or ends if it cannot (the pool was removed).
func (s *Server) handoverExpired(h *handover, n uint64) {
	s.mu.Lock()
	if s.pooled != h || h.timer == nil || h.armed != n {
		s.mu.Unlock()
		return // stopped: a take came, the member was listed again or ended
	}
	h.timer = nil
	if h.ending || s.meta.Status != StatusWaiting || !h.claimed() {
		s.mu.Unlock()
		return
	}
	err := h.listLocked()
	if err == nil {
		s.armLocked(h)
		s.mu.Unlock()
		h.pool.logf("member %s was claimed but got no take within %v: waiting again", s.id, h.timeout)
		return
	}
	h.ending = true
	s.leftPool = true
	s.mu.Unlock()
	log.Printf("sandbox %s: claimed but got no take within %v, and cannot wait again (%v): ending", s.id, h.timeout, err)
	if p, ok := s.sb.(Parked); ok {
		p.Discard(int(unix.SIGKILL))
	}
}

// claimForTakeLocked decides whether a take may have the member: yes if
// its entry was claimed (by this taker, as a rule), or if the member
// claims it now; ErrNotWaiting if another claimed it first or the member
// is ending. A member entered without a watch takes every take, as
// before.
//
// Preconditions: s.mu is held; the member waits.
func (s *Server) claimForTakeLocked() error {
	h := s.pooled
	if h == nil {
		return nil
	}
	if h.ending {
		return fmt.Errorf("%w: it is ending", ErrNotWaiting)
	}
	if !h.claimed() {
		// Listed again since this taker's claim, or never claimed.
		if err := os.Remove(filepath.Join(h.pool.waitingDir(), h.id)); err != nil || !h.claimed() {
			return fmt.Errorf("%w: claimed by another, or its pool removed", ErrNotWaiting)
		}
	}
	h.stopTimer()
	return nil
}

// reenterLocked has a member whose take failed wait in pool again; one
// that cannot ends (the caller discards it), and is refused to takes.
//
// Preconditions: s.mu is held.
func (s *Server) reenterLocked(pool string) error {
	h := s.pooled
	if h == nil {
		return s.sd.pool(pool).enter(s.id)
	}
	err := h.listLocked()
	if err != nil {
		h.ending = true
		return err
	}
	s.armLocked(h)
	return nil
}

// stopWatchLocked ends the member's watch of its entry: it was taken, or
// it ended.
//
// Preconditions: s.mu is held.
func (s *Server) stopWatchLocked() {
	h := s.pooled
	if h == nil {
		return
	}
	s.pooled = nil
	h.stopTimer()
	// The close of an inotify instance waits for the kernel to retire
	// its watch (an RCU grace period: milliseconds), which a take must
	// not wait for. Detached, h is no one else's: its timer's and its
	// watchEntry's callbacks find it is not s.pooled and return.
	go h.close()
}

// LeftPool reports whether the member ended itself because it could not
// enter its pool again (the pool was removed while a taker had claimed it
// and sent no take): its directory is then its own to remove.
func (s *Server) LeftPool() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leftPool
}
