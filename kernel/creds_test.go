package kernel

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCredentialRules checks the set*id, capset and execve rules against
// what Linux does for the same calls.
func TestCredentialRules(t *testing.T) {
	root := credentials{CapPermitted: capAll, CapEffective: capAll, CapBounding: capAll}
	user := credentials{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000, GID: 100, EGID: 100, SGID: 100, FSGID: 100, CapBounding: capAll}
	keep := root
	keep.Securebits = secKeepCaps
	ids := func(c credentials) [8]uint32 {
		return [8]uint32{c.UID, c.EUID, c.SUID, c.FSUID, c.GID, c.EGID, c.SGID, c.FSGID}
	}
	tests := []struct {
		name            string
		from            credentials
		op              func(c *credentials) error
		wantErr         error
		wantIDs         [8]uint32
		wantEff, wantPr uint64
	}{
		{"root setresuid drops every capability", root, func(c *credentials) error { return c.setresuid(1000, 1000, 1000) }, nil,
			[8]uint32{1000, 1000, 1000, 1000}, 0, 0},
		{"root setuid sets all four", root, func(c *credentials) error { return c.setuid(5) }, nil,
			[8]uint32{5, 5, 5, 5}, 0, 0},
		{"keepcaps keeps the permitted set", keep, func(c *credentials) error { return c.setresuid(1000, 1000, 1000) }, nil,
			[8]uint32{1000, 1000, 1000, 1000}, 0, capAll},
		{"saved root keeps the capabilities, not effective", root, func(c *credentials) error { return c.setresuid(1000, 1000, 0) }, nil,
			[8]uint32{1000, 1000, 0, 1000}, 0, capAll},
		{"back to effective root restores effective", root, func(c *credentials) error {
			c.setresuid(1000, 1000, 0)
			return c.setresuid(noID, 0, noID)
		}, nil, [8]uint32{1000, 0, 0, 0}, capAll, capAll},
		{"user cannot regain root", user, func(c *credentials) error { return c.setuid(0) }, unix.EPERM,
			ids(user), 0, 0},
		{"user setresuid to own IDs", user, func(c *credentials) error { return c.setresuid(noID, 1000, noID) }, nil,
			ids(user), 0, 0},
		{"setreuid sets the saved ID", root, func(c *credentials) error { return c.setreuid(1000, 2000) }, nil,
			[8]uint32{1000, 2000, 2000, 2000}, 0, 0},
		{"setreuid effective to real keeps saved", credentials{UID: 1, EUID: 2, SUID: 3, FSUID: 2}, func(c *credentials) error { return c.setreuid(noID, 1) }, nil,
			[8]uint32{1, 1, 3, 1}, 0, 0},
		{"setfsuid drops the filesystem capabilities", root, func(c *credentials) error { c.setfsuid(1000); return nil }, nil,
			[8]uint32{0, 0, 0, 1000}, capAll &^ capFSSet, capAll},
		{"user setgid elsewhere", user, func(c *credentials) error { return c.setgid(0) }, unix.EPERM, ids(user), 0, 0},
		{"root setresgid", root, func(c *credentials) error { return c.setresgid(7, 8, 9) }, nil,
			[8]uint32{0, 0, 0, 0, 7, 8, 9, 8}, capAll, capAll},
		{"capset shrinks", root, func(c *credentials) error { return c.capset(1, 3, 0) }, nil,
			[8]uint32{}, 1, 3},
		{"capset cannot grow permitted", credentials{CapPermitted: 1, CapBounding: capAll}, func(c *credentials) error { return c.capset(0, 3, 0) }, unix.EPERM,
			[8]uint32{}, 0, 1},
		{"capset effective within permitted", credentials{CapPermitted: 1, CapBounding: capAll}, func(c *credentials) error { return c.capset(2, 1, 0) }, unix.EPERM,
			[8]uint32{}, 0, 1},
		{"exec as root gets bounding", credentials{CapBounding: 0xf}, func(c *credentials) error { *c, _ = c.afterExec(); return nil }, nil,
			[8]uint32{}, 0xf, 0xf},
		{"exec as user keeps ambient only", credentials{UID: 1, EUID: 1, SUID: 1, CapPermitted: 3, CapEffective: 3, CapAmbient: 1, CapBounding: capAll}, func(c *credentials) error {
			*c, _ = c.afterExec()
			return nil
		}, nil, [8]uint32{1, 1, 1, 1}, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.from
			err := c.changeCopy(tc.op)
			if !errors.Is(err, tc.wantErr) && err != tc.wantErr {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if got := ids(c); got != tc.wantIDs {
				t.Errorf("IDs = %v, want %v", got, tc.wantIDs)
			}
			if c.CapEffective != tc.wantEff || c.CapPermitted != tc.wantPr {
				t.Errorf("effective, permitted = %#x, %#x, want %#x, %#x", c.CapEffective, c.CapPermitted, tc.wantEff, tc.wantPr)
			}
		})
	}
}

// changeCopy applies op as Task.changeCreds does: nothing changes on error.
func (c *credentials) changeCopy(op func(*credentials) error) error {
	n := *c
	if err := op(&n); err != nil {
		return err
	}
	*c = n
	return nil
}

// TestExecSecure: AT_SECURE is set when a non-root user runs with
// effective root (the privilege the exec grants).
func TestExecSecure(t *testing.T) {
	tests := []struct {
		name string
		c    credentials
		want bool
	}{
		{"root", credentials{CapBounding: capAll}, false},
		{"user", credentials{UID: 1, EUID: 1, SUID: 1, CapBounding: capAll}, false},
		{"user with effective root", credentials{UID: 1, EUID: 0, CapBounding: capAll}, true},
	}
	for _, tc := range tests {
		if _, got := tc.c.afterExec(); got != tc.want {
			t.Errorf("%s: afterExec secure = %v, want %v", tc.name, got, tc.want)
		}
	}
}
