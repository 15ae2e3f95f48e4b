package kernel

import (
	"slices"

	"golang.org/x/sys/unix"
)

// credentials are a thread's identity: its user and group IDs, supplementary
// groups, capability sets and securebits. Each thread has its own, as in
// Linux: setuid and friends change only the calling thread (libcs make a
// process-wide change by signalling every thread, which then makes the same
// call). A thread starts with a copy of its creator's; execve keeps them
// with the changes Linux makes for a file without set-ID bits or file
// capabilities (afterExec), since the sandbox never honours those bits.
//
// The sandbox's first process starts with the identity of the sentry (that
// is, of whoever ran snap), and nothing the application does changes the
// host's: these are bookkeeping, not host credentials. Ownership and
// permissions of host files are the host's.
//
// Groups is never changed in place: setgroups installs a new slice, so
// copies of a credentials value may share it.
//
// +stateify savable
type credentials struct {
	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
	Groups                 []uint32
	// Capability sets, bit N for capability N (linux/capability.h).
	CapInheritable, CapPermitted, CapEffective uint64
	CapBounding, CapAmbient                    uint64
	// Securebits are prctl's PR_SET_SECUREBITS flags, SECURE_KEEP_CAPS
	// (PR_SET_KEEPCAPS) included.
	Securebits uint32
	// NoNewPrivs is PR_SET_NO_NEW_PRIVS's flag: once set it stays, and
	// children inherit it (with nothing that grants privileges at execve,
	// it changes nothing else).
	NoNewPrivs bool
}

// Capabilities the sentry checks (linux/capability.h).
const (
	capSetgid         = 6
	capSetuid         = 7
	capSetpcap        = 8
	capNetBindService = 10
	capSysNice        = 23
	// capLastCap is CAP_CHECKPOINT_RESTORE, the last capability of the
	// kernel version uname reports.
	capLastCap = 40
	// capAll has every valid capability.
	capAll = uint64(1)<<(capLastCap+1) - 1
	// capFSSet are the capabilities that follow the filesystem user ID
	// between 0 and non-zero (CAP_FS_SET): CHOWN, DAC_OVERRIDE,
	// DAC_READ_SEARCH, FOWNER, FSETID, LINUX_IMMUTABLE, MKNOD and
	// MAC_OVERRIDE.
	capFSSet = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<9 | 1<<27 | 1<<32
)

// Securebits (linux/securebits.h). Each flag's lock is the next bit up.
const (
	secNoroot           = 1 << 0
	secNoSetuidFixup    = 1 << 2
	secKeepCaps         = 1 << 4
	secNoCapAmbientRise = 1 << 6
	secAllBits          = secNoroot | secNoSetuidFixup | secKeepCaps | secNoCapAmbientRise
	secAllLocks         = secAllBits << 1
)

// ngroupsMax is NGROUPS_MAX, the most supplementary groups.
const ngroupsMax = 65536

// noID is the -1 that leaves an ID unchanged in setreuid and friends.
const noID = ^uint32(0)

// hostCredentials returns the sentry's own identity, which the sandbox's
// first process starts with.
func hostCredentials() credentials {
	var c credentials
	r, e, s := unix.Getresuid()
	c.UID, c.EUID, c.SUID, c.FSUID = uint32(r), uint32(e), uint32(s), uint32(e)
	r, e, s = unix.Getresgid()
	c.GID, c.EGID, c.SGID, c.FSGID = uint32(r), uint32(e), uint32(s), uint32(e)
	if gs, err := unix.Getgroups(); err == nil {
		for _, g := range gs {
			c.Groups = append(c.Groups, uint32(g))
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) == nil {
		join := func(lo, hi uint32) uint64 { return (uint64(hi)<<32 | uint64(lo)) & capAll }
		c.CapEffective = join(data[0].Effective, data[1].Effective)
		c.CapPermitted = join(data[0].Permitted, data[1].Permitted)
		c.CapInheritable = join(data[0].Inheritable, data[1].Inheritable)
	}
	for i := 0; i <= capLastCap; i++ {
		if v, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(i), 0, 0, 0); err == nil && v == 1 {
			c.CapBounding |= 1 << i
		}
		if v, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(i), 0, 0); err == nil && v == 1 {
			c.CapAmbient |= 1 << i
		}
	}
	if v, err := unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0); err == nil {
		c.Securebits = uint32(v)
	}
	return c
}

// adoptLegacyCreds gives each thread of an image from before per-thread
// credentials (state version 1.0) its process's saved IDs. Such images
// saved only the six IDs (the sandbox then had no capabilities or groups
// of its own), so the thread gets what a process with those IDs starts
// with: the filesystem IDs follow the effective ones, and an effective UID
// 0 holds every capability, as the caller that started it as root did.
//
// Preconditions: called by Restore before any task runs.
func (k *Kernel) adoptLegacyCreds() {
	for _, t := range k.tasks.all() {
		old := t.tg.creds
		c := credentials{UID: old.UID, EUID: old.EUID, SUID: old.SUID, FSUID: old.EUID,
			GID: old.GID, EGID: old.EGID, SGID: old.SGID, FSGID: old.EGID, CapBounding: capAll}
		if c.EUID == 0 {
			c.CapEffective, c.CapPermitted = capAll, capAll
		}
		t.creds = c
	}
	for _, tg := range k.threadGroups() {
		tg.creds = credentials{}
	}
}

// inGroup reports whether gid is the effective group or a supplementary one.
func (c *credentials) inGroup(gid uint32) bool {
	return gid == c.EGID || slices.Contains(c.Groups, gid)
}

// capable reports whether the effective set holds capability cp.
func (c *credentials) capable(cp uint) bool { return c.CapEffective&(1<<cp) != 0 }

// fixSetuidCaps applies Linux's capability rules for a change of the user
// IDs from old to c (cap_emulate_setxuid): leaving root for all three IDs
// clears the permitted and effective sets (unless SECURE_KEEP_CAPS) and the
// ambient set; leaving effective root clears the effective set; becoming
// effective root again restores it from the permitted set.
func (c *credentials) fixSetuidCaps(old *credentials) {
	if c.Securebits&secNoSetuidFixup != 0 {
		return
	}
	wasRoot := old.UID == 0 || old.EUID == 0 || old.SUID == 0
	if wasRoot && c.UID != 0 && c.EUID != 0 && c.SUID != 0 {
		if c.Securebits&secKeepCaps == 0 {
			c.CapPermitted, c.CapEffective = 0, 0
		}
		c.CapAmbient = 0
	}
	if old.EUID == 0 && c.EUID != 0 {
		c.CapEffective = 0
	}
	if old.EUID != 0 && c.EUID == 0 {
		c.CapEffective = c.CapPermitted
	}
}

// fixSetfsuidCaps applies the rule for a change of the filesystem user ID
// alone: the filesystem capabilities leave with fsuid 0 and come back (as
// far as permitted) with it.
func (c *credentials) fixSetfsuidCaps(oldFSUID uint32) {
	if c.Securebits&secNoSetuidFixup != 0 {
		return
	}
	if oldFSUID == 0 && c.FSUID != 0 {
		c.CapEffective &^= capFSSet
	}
	if oldFSUID != 0 && c.FSUID == 0 {
		c.CapEffective |= c.CapPermitted & capFSSet
	}
}

// setresuid implements setresuid(2) (noID leaves an ID alone); setuid and
// setreuid are expressed with it by their handlers.
func (c *credentials) setresuid(r, e, s uint32) error {
	if !c.capable(capSetuid) {
		for _, id := range []uint32{r, e, s} {
			if id != noID && id != c.UID && id != c.EUID && id != c.SUID {
				return unix.EPERM
			}
		}
	}
	old := *c
	if r != noID {
		c.UID = r
	}
	if e != noID {
		c.EUID = e
	}
	if s != noID {
		c.SUID = s
	}
	c.FSUID = c.EUID
	c.fixSetuidCaps(&old)
	return nil
}

// setuid implements setuid(2): with CAP_SETUID all four IDs change,
// otherwise only the effective (and filesystem) ID, to the real or saved
// one.
func (c *credentials) setuid(uid uint32) error {
	if uid == noID {
		return unix.EINVAL
	}
	if c.capable(capSetuid) {
		return c.setresuid(uid, uid, uid)
	}
	if uid != c.UID && uid != c.SUID {
		return unix.EPERM
	}
	return c.setresuid(noID, uid, noID)
}

// setreuid implements setreuid(2): the real ID may become the effective
// one, the effective ID the real or saved one (anything with CAP_SETUID);
// the saved ID follows the new effective one when the real ID is set or
// the effective one leaves the real one.
func (c *credentials) setreuid(r, e uint32) error {
	if !c.capable(capSetuid) {
		if r != noID && r != c.UID && r != c.EUID {
			return unix.EPERM
		}
		if e != noID && e != c.UID && e != c.EUID && e != c.SUID {
			return unix.EPERM
		}
	}
	old := *c
	if r != noID {
		c.UID = r
	}
	if e != noID {
		c.EUID = e
	}
	if r != noID || (e != noID && e != old.UID) {
		c.SUID = c.EUID
	}
	c.FSUID = c.EUID
	c.fixSetuidCaps(&old)
	return nil
}

// setfsuid implements setfsuid(2), which never fails: it returns the old
// filesystem ID and changes it only when allowed.
func (c *credentials) setfsuid(uid uint32) uint32 {
	old := c.FSUID
	if uid == c.UID || uid == c.EUID || uid == c.SUID || uid == c.FSUID || c.capable(capSetuid) {
		if uid != noID {
			c.FSUID = uid
			c.fixSetfsuidCaps(old)
		}
	}
	return old
}

// setresgid, setgid, setregid and setfsgid are the group counterparts,
// checked against CAP_SETGID; they do not touch capabilities.
func (c *credentials) setresgid(r, e, s uint32) error {
	if !c.capable(capSetgid) {
		for _, id := range []uint32{r, e, s} {
			if id != noID && id != c.GID && id != c.EGID && id != c.SGID {
				return unix.EPERM
			}
		}
	}
	if r != noID {
		c.GID = r
	}
	if e != noID {
		c.EGID = e
	}
	if s != noID {
		c.SGID = s
	}
	c.FSGID = c.EGID
	return nil
}

func (c *credentials) setgid(gid uint32) error {
	if gid == noID {
		return unix.EINVAL
	}
	if c.capable(capSetgid) {
		return c.setresgid(gid, gid, gid)
	}
	if gid != c.GID && gid != c.SGID {
		return unix.EPERM
	}
	return c.setresgid(noID, gid, noID)
}

func (c *credentials) setregid(r, e uint32) error {
	if !c.capable(capSetgid) {
		if r != noID && r != c.GID && r != c.EGID {
			return unix.EPERM
		}
		if e != noID && e != c.GID && e != c.EGID && e != c.SGID {
			return unix.EPERM
		}
	}
	oldGID := c.GID
	if r != noID {
		c.GID = r
	}
	if e != noID {
		c.EGID = e
	}
	if r != noID || (e != noID && e != oldGID) {
		c.SGID = c.EGID
	}
	c.FSGID = c.EGID
	return nil
}

func (c *credentials) setfsgid(gid uint32) uint32 {
	old := c.FSGID
	if gid != noID && (gid == c.GID || gid == c.EGID || gid == c.SGID || gid == c.FSGID || c.capable(capSetgid)) {
		c.FSGID = gid
	}
	return old
}

// capset implements capset(2)'s rules (cap_capset): the inheritable set
// may only gain what is permitted (anything with CAP_SETPCAP) and what the
// bounding set allows, the permitted set may only shrink, and the
// effective set must stay within the new permitted set. The ambient set
// loses what is no longer both permitted and inheritable.
func (c *credentials) capset(eff, perm, inh uint64) error {
	allowedInh := c.CapInheritable | c.CapPermitted
	if c.capable(capSetpcap) {
		allowedInh = capAll
	}
	switch {
	case inh&^allowedInh != 0, inh&^(c.CapInheritable|c.CapBounding) != 0:
		return unix.EPERM
	case perm&^c.CapPermitted != 0, eff&^perm != 0:
		return unix.EPERM
	}
	c.CapEffective, c.CapPermitted, c.CapInheritable = eff, perm, inh
	c.CapAmbient &= perm & inh
	return nil
}

// afterExec returns the credentials after execve of a file without set-ID
// bits or file capabilities (cap_bprm_creds_from_file): the saved and
// filesystem IDs follow the effective ones; a process with real or
// effective user ID 0 gets the bounding and inheritable sets as permitted
// (and effective, for effective root) unless SECURE_NOROOT; otherwise only
// the ambient capabilities remain. SECURE_KEEP_CAPS is cleared. secure is
// AT_SECURE: the exec gained privilege the real user does not have.
func (c credentials) afterExec() (n credentials, secure bool) {
	n = c
	n.SUID, n.FSUID = n.EUID, n.EUID
	n.SGID, n.FSGID = n.EGID, n.EGID
	n.Securebits &^= secKeepCaps
	n.CapPermitted = 0
	effective := false
	if n.Securebits&secNoroot == 0 && (n.EUID == 0 || n.UID == 0) {
		n.CapPermitted = n.CapBounding | n.CapInheritable
		effective = n.EUID == 0
	}
	n.CapPermitted |= n.CapAmbient
	if effective {
		n.CapEffective = n.CapPermitted
	} else {
		n.CapEffective = n.CapAmbient
	}
	secure = n.UID != 0 && (effective || n.CapPermitted&^n.CapAmbient != 0)
	return n, secure
}

func boolToUint64(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
