package kernel

import (
	"encoding/binary"
	"slices"

	"golang.org/x/sys/unix"
)

// The set*id calls change a copy of the calling thread's credentials
// (changeCreds) under Linux's rules (creds.go).
var (
	sysSetuid    = credSetter(func(c *credentials, a *sysArgs) error { return c.setuid(uint32(a[0])) })
	sysSetgid    = credSetter(func(c *credentials, a *sysArgs) error { return c.setgid(uint32(a[0])) })
	sysSetreuid  = credSetter(func(c *credentials, a *sysArgs) error { return c.setreuid(uint32(a[0]), uint32(a[1])) })
	sysSetregid  = credSetter(func(c *credentials, a *sysArgs) error { return c.setregid(uint32(a[0]), uint32(a[1])) })
	sysSetresuid = credSetter(func(c *credentials, a *sysArgs) error {
		return c.setresuid(uint32(a[0]), uint32(a[1]), uint32(a[2]))
	})
	sysSetresgid = credSetter(func(c *credentials, a *sysArgs) error {
		return c.setresgid(uint32(a[0]), uint32(a[1]), uint32(a[2]))
	})
)

// sysSetfsuid returns the previous filesystem UID, whether or not it changed.
func sysSetfsuid(t *Task, a *sysArgs) (uint64, error) {
	var old uint32
	t.changeCreds(func(c *credentials) error { old = c.setfsuid(uint32(a[0])); return nil })
	return uint64(old), nil
}

// sysSetfsgid returns the previous filesystem GID, whether or not it changed.
func sysSetfsgid(t *Task, a *sysArgs) (uint64, error) {
	var old uint32
	t.changeCreds(func(c *credentials) error { old = c.setfsgid(uint32(a[0])); return nil })
	return uint64(old), nil
}

// changeCreds applies f to a copy of t's credentials and installs the copy
// if f succeeds, so that a failed call changes nothing.
//
// Preconditions: called by t's task goroutine.
func (t *Task) changeCreds(f func(*credentials) error) error {
	c := t.creds
	if err := f(&c); err != nil {
		return err
	}
	t.tg.mu.Lock()
	t.creds = c
	t.tg.mu.Unlock()
	return nil
}

// credSetter makes a handler of a set*id call that returns 0 or an error.
func credSetter(f func(*credentials, *sysArgs) error) syscallFn {
	return func(t *Task, a *sysArgs) (uint64, error) {
		return 0, t.changeCreds(func(c *credentials) error { return f(c, a) })
	}
}

// sysGetgroups implements getgroups(size, list): size 0 asks for the
// count; a smaller list than the groups is EINVAL.
func sysGetgroups(t *Task, a *sysArgs) (uint64, error) {
	size := a.Int(0)
	groups := t.creds.Groups
	if size < 0 {
		return 0, unix.EINVAL
	}
	if size == 0 {
		return uint64(len(groups)), nil
	}
	if int(size) < len(groups) {
		return 0, unix.EINVAL
	}
	b := make([]byte, 4*len(groups))
	for i, g := range groups {
		binary.LittleEndian.PutUint32(b[4*i:], g)
	}
	return uint64(len(groups)), t.tg.mm.CopyOut(a[1], b)
}

// sysSetgroups implements setgroups(size, list), which needs CAP_SETGID.
// Linux keeps the list sorted (getgroups returns it that way).
func sysSetgroups(t *Task, a *sysArgs) (uint64, error) {
	size := a.Int(0)
	if size < 0 || size > ngroupsMax {
		return 0, unix.EINVAL
	}
	if !t.creds.capable(capSetgid) {
		return 0, unix.EPERM
	}
	b := make([]byte, 4*int(size))
	if err := t.tg.mm.CopyIn(a[1], b); err != nil {
		return 0, err
	}
	groups := make([]uint32, size)
	for i := range groups {
		groups[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	slices.Sort(groups)
	return 0, t.changeCreds(func(c *credentials) error { c.Groups = groups; return nil })
}

// Capability header versions (linux/capability.h). Version 1 carries one
// 32-bit word per set, versions 2 and 3 two.
const (
	capVersion1 = 0x19980330
	capVersion2 = 0x20071026
	capVersion3 = 0x20080522
)

// capHeader reads a cap_user_header_t and returns the number of 32-bit
// words per set its version carries. An unknown version is EINVAL, after
// writing the preferred version back, as Linux does.
func (t *Task) capHeader(addr uint64) (words int, pid int32, err error) {
	var b [8]byte
	if err := t.tg.mm.CopyIn(addr, b[:]); err != nil {
		return 0, 0, err
	}
	pid = int32(binary.LittleEndian.Uint32(b[4:]))
	switch binary.LittleEndian.Uint32(b[:]) {
	case capVersion1:
		return 1, pid, nil
	case capVersion2, capVersion3:
		return 2, pid, nil
	}
	if err := t.copyOutUint32(addr, capVersion3); err != nil {
		return 0, 0, err
	}
	return 0, pid, unix.EINVAL
}

// sysCapget implements capget(hdr, data): the effective, permitted and
// inheritable sets of the thread hdr->pid names (0: the caller). A NULL
// data with an unknown version only reports the preferred version.
func sysCapget(t *Task, a *sysArgs) (uint64, error) {
	words, pid, err := t.capHeader(a[0])
	if a[1] == 0 {
		if err == unix.EINVAL {
			return 0, nil
		}
		return 0, err
	}
	if err != nil {
		return 0, err
	}
	if pid < 0 {
		return 0, unix.EINVAL
	}
	target, err := t.taskByTID(pid)
	if err != nil {
		return 0, err
	}
	target.tg.mu.Lock()
	c := target.creds
	target.tg.mu.Unlock()
	b := make([]byte, 12*words)
	for i := 0; i < words; i++ {
		sh := 32 * uint(i)
		binary.LittleEndian.PutUint32(b[12*i:], uint32(c.CapEffective>>sh))
		binary.LittleEndian.PutUint32(b[12*i+4:], uint32(c.CapPermitted>>sh))
		binary.LittleEndian.PutUint32(b[12*i+8:], uint32(c.CapInheritable>>sh))
	}
	return 0, t.tg.mm.CopyOut(a[1], b)
}

// sysCapset implements capset(hdr, data) for the calling thread only.
func sysCapset(t *Task, a *sysArgs) (uint64, error) {
	words, pid, err := t.capHeader(a[0])
	if err != nil {
		return 0, err
	}
	if pid != 0 && pid != t.tid {
		return 0, unix.EPERM
	}
	b := make([]byte, 12*words)
	if err := t.tg.mm.CopyIn(a[1], b); err != nil {
		return 0, err
	}
	var eff, perm, inh uint64
	for i := 0; i < words; i++ {
		sh := 32 * uint(i)
		eff |= uint64(binary.LittleEndian.Uint32(b[12*i:])) << sh
		perm |= uint64(binary.LittleEndian.Uint32(b[12*i+4:])) << sh
		inh |= uint64(binary.LittleEndian.Uint32(b[12*i+8:])) << sh
	}
	return 0, t.changeCreds(func(c *credentials) error { return c.capset(eff&capAll, perm&capAll, inh&capAll) })
}

// prctl options about credentials (linux/prctl.h).
const (
	prGetKeepcaps    = 7
	prSetKeepcaps    = 8
	prCapbsetDrop    = 24
	prGetSecurebits  = 27
	prSetSecurebits  = 28
	prCapAmbient     = 47
	prCapAmbientIs   = 1
	prCapAmbientUp   = 2
	prCapAmbientDown = 3
	prCapAmbientNone = 4
)

// prctlCreds implements the prctl options about capabilities, securebits
// and no_new_privs; handled is false for other options.
func (t *Task) prctlCreds(a *sysArgs) (r uint64, handled bool, err error) {
	c := &t.creds
	validCap := a[1] <= capLastCap
	switch a[0] {
	case prCapbsetRead:
		if !validCap {
			return 0, true, unix.EINVAL
		}
		return c.CapBounding >> a[1] & 1, true, nil
	case prCapbsetDrop:
		if !c.capable(capSetpcap) {
			return 0, true, unix.EPERM
		}
		if !validCap {
			return 0, true, unix.EINVAL
		}
		return 0, true, t.changeCreds(func(c *credentials) error { c.CapBounding &^= 1 << a[1]; return nil })
	case prGetKeepcaps:
		if c.Securebits&secKeepCaps != 0 {
			return 1, true, nil
		}
		return 0, true, nil
	case prSetKeepcaps:
		if a[1] > 1 {
			return 0, true, unix.EINVAL
		}
		if c.Securebits&(secKeepCaps<<1) != 0 {
			return 0, true, unix.EPERM // locked
		}
		return 0, true, t.changeCreds(func(c *credentials) error {
			c.Securebits = c.Securebits&^secKeepCaps | uint32(a[1])*secKeepCaps
			return nil
		})
	case prGetSecurebits:
		return uint64(c.Securebits), true, nil
	case prSetSecurebits:
		return 0, true, t.changeCreds(func(c *credentials) error { return c.setSecurebits(a[1]) })
	case prCapAmbient:
		r, err := t.prctlAmbient(a)
		return r, true, err
	case prSetNoNewPrivs:
		if a[1] != 1 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
			return 0, true, unix.EINVAL
		}
		return 0, true, t.changeCreds(func(c *credentials) error { c.NoNewPrivs = true; return nil })
	case prGetNoNewPrivs:
		if a[1] != 0 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
			return 0, true, unix.EINVAL
		}
		return boolToUint64(c.NoNewPrivs), true, nil
	}
	return 0, false, nil
}

// setSecurebits implements PR_SET_SECUREBITS: a locked flag cannot change,
// a lock cannot be released, and the caller needs CAP_SETPCAP.
func (c *credentials) setSecurebits(v uint64) error {
	old := uint64(c.Securebits)
	if (old&secAllLocks)>>1&(old^v) != 0 || old&secAllLocks&^v != 0 ||
		v&^(secAllLocks|secAllBits) != 0 || !c.capable(capSetpcap) {
		return unix.EPERM
	}
	c.Securebits = uint32(v)
	return nil
}

// prctlAmbient implements PR_CAP_AMBIENT: a capability may be raised in
// the ambient set only if it is both permitted and inheritable.
func (t *Task) prctlAmbient(a *sysArgs) (uint64, error) {
	if a[3] != 0 || a[4] != 0 {
		return 0, unix.EINVAL
	}
	c := &t.creds
	if a[1] == prCapAmbientNone {
		if a[2] != 0 {
			return 0, unix.EINVAL
		}
		return 0, t.changeCreds(func(c *credentials) error { c.CapAmbient = 0; return nil })
	}
	if a[2] > capLastCap {
		return 0, unix.EINVAL
	}
	bit := uint64(1) << a[2]
	switch a[1] {
	case prCapAmbientIs:
		return c.CapAmbient >> a[2] & 1, nil
	case prCapAmbientUp:
		if c.CapPermitted&bit == 0 || c.CapInheritable&bit == 0 || c.Securebits&secNoCapAmbientRise != 0 {
			return 0, unix.EPERM
		}
		return 0, t.changeCreds(func(c *credentials) error { c.CapAmbient |= bit; return nil })
	case prCapAmbientDown:
		return 0, t.changeCreds(func(c *credentials) error { c.CapAmbient &^= bit; return nil })
	}
	return 0, unix.EINVAL
}
