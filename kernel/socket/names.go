package socket

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// Paths binds and finds sockets by path name. The kernel supplies one per
// call, for the calling task's filesystem context.
type Paths interface {
	// BindPath makes the socket file at path for s: ENOENT for a missing
	// parent, EADDRINUSE if path exists, or what creating it fails with
	// (EROFS on a read-only filesystem).
	BindPath(path string, s *Socket) error
	// LookupPath returns the socket bound at path: ENOENT if nothing is
	// there, ECONNREFUSED if no socket of the sandbox is bound there.
	LookupPath(path string) (*Socket, error)
}

// Names is a kernel's abstract namespace. As in Linux, a name is bound per
// socket type: a stream and a datagram socket may hold the same name, and
// a lookup finds only a socket of the caller's type.
//
// +stateify savable
type Names struct {
	// abstract maps each bound name (nameKey) to its socket. Protected by
	// mu.
	abstract map[string]*Socket
	// next is the number the next autobind tries. Protected by mu.
	next uint32
	// ports maps a protocol and port (portKey) to the sockets of the
	// network bound there, in bind order. Protected by mu.
	ports map[uint32][]*Socket
	// nextPort is where the next search for an ephemeral port starts.
	// Protected by mu.
	nextPort uint32
	// hosts are the host sockets not released (host.go). Not saved: each
	// host socket adds itself again in afterLoad. Protected by mu.
	hosts map[*Socket]struct{} `state:"nosave"`
	// netlinkPorts maps each netlink port ID in use to its socket (nil
	// until the first). Protected by mu.
	netlinkPorts map[uint32]*Socket
}

// NewNames returns an empty namespace.
func NewNames() *Names { return &Names{abstract: map[string]*Socket{}} }

// autobindSpace is how many names autobind has: five hex digits.
const autobindSpace = 1 << 20

// bindLocked binds a to s. Preconditions: mu is held.
func (n *Names) bindLocked(a Addr, s *Socket) error {
	if n.abstract == nil {
		n.abstract = map[string]*Socket{}
	}
	k := nameKey(s.typ, a.Name)
	if _, ok := n.abstract[k]; ok {
		return unix.EADDRINUSE
	}
	n.abstract[k] = s
	return nil
}

// nameKey is the key of an abstract name bound by a socket of type typ.
func nameKey(typ int, name string) string { return strconv.Itoa(typ) + ":" + name }

// autobindLocked picks a free five-hex-digit abstract name for s, as
// Linux's autobind. Preconditions: mu is held.
func (n *Names) autobindLocked(s *Socket) (Addr, error) {
	for range autobindSpace {
		a := Addr{Abstract: true, Name: fmt.Sprintf("%05x", n.next%autobindSpace)}
		n.next++
		if n.bindLocked(a, s) == nil {
			return a, nil
		}
	}
	return Addr{}, unix.ENOSPC
}

// unbindLocked drops a's binding if it is s's. Preconditions: mu is held.
func (n *Names) unbindLocked(a Addr, s *Socket) {
	if k := nameKey(s.typ, a.Name); n.abstract[k] == s {
		delete(n.abstract, k)
	}
}

// lookup finds the socket of type typ bound at a. Abstract names not
// bound are ECONNREFUSED, as Linux.
func (n *Names) lookup(a Addr, typ int, paths Paths) (*Socket, error) {
	if !a.Abstract {
		if paths == nil {
			return nil, unix.ENOENT
		}
		return paths.LookupPath(a.Name)
	}
	mu.Lock()
	defer mu.Unlock()
	s, ok := n.abstract[nameKey(typ, a.Name)]
	if !ok {
		return nil, unix.ECONNREFUSED
	}
	return s, nil
}
