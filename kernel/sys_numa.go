package kernel

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The sandbox presents one NUMA node, node 0, as Linux does on a machine
// without NUMA: memory policies are checked and kept but place nothing.

// memPolicy is a thread's set_mempolicy policy.
//
// +stateify savable
type memPolicy struct {
	// Mode is an MPOL_* mode, MPOL_DEFAULT when none was set.
	Mode int32
	// Flags are the MPOL_F_STATIC_NODES, MPOL_F_RELATIVE_NODES and
	// MPOL_F_NUMA_BALANCING mode flags.
	Flags int32
	// Nodes is the node mask get_mempolicy reports (bit 0: node 0).
	Nodes uint64
}

// Memory policy modes, mode flags and get_mempolicy/mbind flags
// (linux/mempolicy.h).
const (
	mpolDefault            = 0
	mpolPreferred          = 1
	mpolBind               = 2
	mpolInterleave         = 3
	mpolLocal              = 4
	mpolPreferredMany      = 5
	mpolWeightedInterleave = 6
	mpolMax                = 7

	mpolFStaticNodes   = 1 << 15
	mpolFRelativeNodes = 1 << 14
	mpolFNumaBalancing = 1 << 13
	mpolModeFlags      = mpolFStaticNodes | mpolFRelativeNodes | mpolFNumaBalancing

	mpolFNode        = 1
	mpolFAddr        = 2
	mpolFMemsAllowed = 4

	mpolMFStrict  = 1
	mpolMFMove    = 2
	mpolMFMoveAll = 4

	// maxNumNodes is MAX_NUMNODES of a distribution kernel (NODES_SHIFT 10).
	maxNumNodes = 1 << 10
	// onlyNode is the mask of the sandbox's nodes.
	onlyNode = 1
)

// splitMode separates a mode argument into mode and flags, as Linux's
// sanitize_mpol_flags.
func splitMode(arg int32) (mode, flags int32, err error) {
	flags, mode = arg&mpolModeFlags, arg&^mpolModeFlags
	if uint32(mode) >= mpolMax || flags&(mpolFStaticNodes|mpolFRelativeNodes) == mpolFStaticNodes|mpolFRelativeNodes {
		return 0, 0, unix.EINVAL
	}
	if flags&mpolFNumaBalancing != 0 && mode != mpolBind && mode != mpolPreferredMany {
		return 0, 0, unix.EINVAL
	}
	return mode, flags, nil
}

// copyInNodes reads a node mask of maxnode-1 bits, as Linux's get_nodes:
// bits past the nodes Linux could have must be clear. It returns the first
// 64 bits.
func (t *Task) copyInNodes(addr, maxnode uint64) (uint64, error) {
	maxnode--
	if maxnode == 0 || addr == 0 {
		return 0, nil
	}
	if maxnode > pageSize*8 {
		return 0, unix.EINVAL
	}
	words := make([]byte, (maxnode+63)/64*8)
	if err := t.tg.mm.CopyIn(addr, words); err != nil {
		return 0, err
	}
	if rem := maxnode % 64; rem != 0 {
		last := len(words) - 8
		binary.LittleEndian.PutUint64(words[last:], binary.LittleEndian.Uint64(words[last:])&(1<<rem-1))
	}
	for i := maxNumNodes / 8; i < len(words); i++ {
		if words[i] != 0 {
			return 0, unix.EINVAL
		}
	}
	return binary.LittleEndian.Uint64(words), nil
}

// newMemPolicy checks a policy as Linux's mpol_new and mpol_set_nodemask
// do on a machine whose only node is 0.
func newMemPolicy(mode, flags int32, nodes uint64) (memPolicy, error) {
	switch {
	case mode == mpolDefault:
		if nodes != 0 {
			return memPolicy{}, unix.EINVAL
		}
		return memPolicy{}, nil
	case mode == mpolPreferred && nodes == 0:
		if flags&(mpolFStaticNodes|mpolFRelativeNodes) != 0 {
			return memPolicy{}, unix.EINVAL
		}
		mode = mpolLocal
	case mode == mpolLocal:
		if nodes != 0 || flags&(mpolFStaticNodes|mpolFRelativeNodes) != 0 {
			return memPolicy{}, unix.EINVAL
		}
	case nodes == 0:
		return memPolicy{}, unix.EINVAL
	}
	p := memPolicy{Mode: mode, Flags: flags}
	if mode == mpolLocal {
		return p, nil
	}
	// Relative masks name nodes by their index among the allowed ones:
	// any bit maps onto node 0.
	if flags&mpolFRelativeNodes == 0 && nodes&onlyNode == 0 {
		return memPolicy{}, unix.EINVAL
	}
	p.Nodes = onlyNode
	if flags&(mpolFStaticNodes|mpolFRelativeNodes) != 0 {
		p.Nodes = nodes // reported as the caller gave it
	}
	return p, nil
}

func sysSetMempolicy(t *Task, a *sysArgs) (uint64, error) {
	mode, flags, err := splitMode(a.Int(0))
	if err != nil {
		return 0, err
	}
	nodes, err := t.copyInNodes(a[1], a[2])
	if err != nil {
		return 0, err
	}
	p, err := newMemPolicy(mode, flags, nodes)
	if err != nil {
		return 0, err
	}
	t.mu.Lock()
	t.sched.MemPolicy = p
	t.mu.Unlock()
	return 0, nil
}

// sysGetMempolicy implements get_mempolicy(mode, nodemask, maxnode, addr,
// flags). Ranges have no policy of their own (see sysMbind), so with
// MPOL_F_ADDR the mode is MPOL_DEFAULT and the node of a page is 0.
func sysGetMempolicy(t *Task, a *sysArgs) (uint64, error) {
	modeAddr, maskAddr, maxnode, addr, flags := a[0], a[1], a[2], a[3], a[4]
	if maskAddr != 0 && maxnode < 1 {
		return 0, unix.EINVAL
	}
	if flags&^(mpolFNode|mpolFAddr|mpolFMemsAllowed) != 0 {
		return 0, unix.EINVAL
	}
	var mode int32
	var nodes uint64
	t.mu.Lock()
	own := t.sched.MemPolicy
	t.mu.Unlock()
	switch {
	case flags&mpolFMemsAllowed != 0:
		if flags&(mpolFNode|mpolFAddr) != 0 {
			return 0, unix.EINVAL
		}
		nodes = onlyNode
	case flags&mpolFAddr != 0:
		mm := t.tg.mm
		mm.mu.RLock()
		mapped := mm.vmaAtLocked(addr) != nil
		mm.mu.RUnlock()
		if !mapped {
			return 0, unix.EFAULT
		}
		// mode is MPOL_DEFAULT, or with MPOL_F_NODE the page's node, 0.
	case addr != 0:
		return 0, unix.EINVAL
	case flags&mpolFNode != 0:
		if own.Mode != mpolInterleave && own.Mode != mpolWeightedInterleave {
			return 0, unix.EINVAL
		}
		// The next interleave node is always node 0.
	default:
		mode, nodes = own.Mode|own.Flags, own.Nodes
	}
	if modeAddr != 0 {
		if err := t.copyOutUint32(modeAddr, uint32(mode)); err != nil {
			return 0, err
		}
	}
	if maskAddr == 0 {
		return 0, nil
	}
	return 0, t.copyOutNodes(maskAddr, maxnode, nodes)
}

// copyOutNodes writes a node mask as Linux's copy_nodes_to_user: maxnode-1
// bits rounded up to 64-bit words, the first word holding the nodes, the
// others zero.
func (t *Task) copyOutNodes(addr, maxnode, nodes uint64) error {
	n := (maxnode - 1 + 63) / 64 * 8
	if n > pageSize {
		return unix.EINVAL
	}
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, nodes)
	return t.tg.mm.CopyOut(addr, b)
}

// sysMbind checks a range policy as Linux does and, the range being mapped,
// succeeds. Nothing is kept: with one node every policy places memory the
// same way.
func sysMbind(t *Task, a *sysArgs) (uint64, error) {
	start, length, flags := a[0], a[1], a[5]
	mode, mflags, err := splitMode(a.Int(2))
	if err != nil {
		return 0, err
	}
	nodes, err := t.copyInNodes(a[3], a[4])
	if err != nil {
		return 0, err
	}
	if flags&^(mpolMFStrict|mpolMFMove|mpolMFMoveAll) != 0 {
		return 0, unix.EINVAL
	}
	if flags&mpolMFMoveAll != 0 && !t.hasCapSysNice() {
		return 0, unix.EPERM
	}
	if start&pageMask != 0 {
		return 0, unix.EINVAL
	}
	end, ok := pageRoundUp(start + length)
	if !ok || start+length < start {
		return 0, unix.EINVAL
	}
	if end == start {
		return 0, nil
	}
	if _, err := newMemPolicy(mode, mflags, nodes); err != nil {
		return 0, err
	}
	mm := t.tg.mm
	mm.mu.RLock()
	defer mm.mu.RUnlock()
	if !mm.coveredLocked(start, end) {
		return 0, unix.EFAULT
	}
	return 0, nil
}

// hasCapSysNice reports whether t holds CAP_SYS_NICE inside the sandbox.
//
// Preconditions: called by t's task goroutine (its own credentials).
func (t *Task) hasCapSysNice() bool { return t.creds.capable(capSysNice) }
