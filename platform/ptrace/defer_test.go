//go:build linux && amd64

package ptrace

import (
	"encoding/binary"
	"errors"
	"testing"

	"snapshotter/platform"
)

// TestDeferredMappings checks the mapping changes that an address space's
// only stub thread cannot see yet (addressSpace.deferred): made at the
// first touch, which then succeeds as if they had been made at once, or
// before anything else uses the stub; and never deferred where the
// application would see the difference.
func TestDeferredMappings(t *testing.T) {
	const (
		addr  = 0x5900_0000
		other = 0x5a00_0000 // mapped before the case runs
		value = 0x5151
	)
	tests := []struct {
		name string
		// change runs on the task thread after a first Switch; it
		// reports whether it expects the change deferred.
		change func(t *testing.T, a *addressSpace) bool
		// elsewhere runs the load on a new context on another OS thread.
		elsewhere bool
		// hostPID calls HostPID before the load.
		hostPID bool
		// syscallFirst runs a system call (a Switch) before the load, as
		// the program returning from the mapping's own system call: the
		// next Switch makes readable mappings, without a fault.
		syscallFirst bool
		// wantFault is the load's expected fault; otherwise it reads
		// value, through one fault in the stub if the change was
		// deferred and nothing else made it.
		wantFault bool
	}{
		{name: "read-only map, touched", change: mapRO(addr)},
		{name: "read-only map, then unmapped", change: func(t *testing.T, a *addressSpace) bool {
			mapRO(addr)(t, a)
			if err := a.Unmap(addr, pageSize); err != nil {
				t.Fatalf("Unmap = %v", err)
			}
			return true
		}, wantFault: true},
		{name: "read-only map, then no access", change: func(t *testing.T, a *addressSpace) bool {
			mapRO(addr)(t, a)
			if err := a.Protect(addr, pageSize, platform.NoAccess); err != nil {
				t.Fatalf("Protect = %v", err)
			}
			return true
		}, wantFault: true},
		{name: "another stub thread runs first", change: mapRO(addr), elsewhere: true},
		{name: "a system call before the touch", change: mapRO(addr), syscallFirst: true},
		{name: "no access, a system call before the touch", change: func(t *testing.T, a *addressSpace) bool {
			if err := a.MapFile(addr, dataOff, pageSize, platform.NoAccess, false); err != nil {
				t.Fatalf("MapFile = %v", err)
			}
			return true
		}, syscallFirst: true, wantFault: true},
		{name: "HostPID makes them", change: mapRO(addr), hostPID: true},
		{name: "writable map not deferred", change: func(t *testing.T, a *addressSpace) bool {
			if err := a.MapFile(addr, dataOff, pageSize, platform.ReadWrite, false); err != nil {
				t.Fatalf("MapFile = %v", err)
			}
			return false
		}},
		{name: "faulting page not deferred", change: func(t *testing.T, a *addressSpace) bool {
			// As the kernel maps a page the application faulted on.
			a.faultPage.Store(addr + pageSize + 1)
			if err := a.MapFile(addr, dataOff, 2*pageSize, platform.Read, false); err != nil {
				t.Fatalf("MapFile = %v", err)
			}
			return false
		}},
		{name: "mapped range not deferred", change: func(t *testing.T, a *addressSpace) bool {
			// other maps the page before; a deferred unmap would leave
			// it readable.
			if err := a.Unmap(other, pageSize); err != nil {
				t.Fatalf("Unmap = %v", err)
			}
			return false
		}, wantFault: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			locked(t)
			e := newEnv(t, 1<<20)
			binary.LittleEndian.PutUint64(e.mem[dataOff:], value)
			a := e.newSpace(t)
			if err := a.MapFile(other, dataOff, pageSize, platform.Read, false); err != nil {
				t.Fatalf("MapFile(other) = %v", err)
			}
			c := e.newContext(t)
			st := &platform.State{}
			st.Regs.Rip = codeAddr + offSyscall
			if _, _, err := switchOnce(c, a, st); err != nil {
				t.Fatalf("first Switch = %v", err)
			}
			load := addr
			if tc.name == "mapped range not deferred" {
				load = other
			}
			deferred := tc.change(t, a)
			if got := a.deferred.Load(); got != deferred {
				t.Fatalf("deferred = %v after the change, want %v", got, deferred)
			}
			if deferred && mapped(a.pid, addr) {
				t.Errorf("%#x mapped in the stub before the touch", uint64(addr))
			}
			if tc.hostPID {
				a.HostPID()
				if a.deferred.Load() || !mapped(a.pid, addr) {
					t.Errorf("after HostPID: deferred %v, %#x mapped %v; want false, true", a.deferred.Load(), uint64(addr), mapped(a.pid, addr))
				}
			}
			if tc.syscallFirst {
				st = &platform.State{}
				st.Regs.Rip = codeAddr + offSyscall
				if _, _, err := switchOnce(c, a, st); err != nil {
					t.Fatalf("Switch (system call) = %v", err)
				}
				// (The Switch that returned from the mapping's own
				// system call is the change's first, this the
				// second: the load's Switch makes them.)
			}
			faults := e.p.counts.deferredFaults.Load()
			st = &platform.State{}
			st.Regs.Rip, st.Regs.Rdi, st.Regs.Rbx = codeAddr+offLoad, uint64(load), 0xabcdef
			var info platform.SignalInfo
			var err error
			if tc.elsewhere {
				c2 := e.newContext(t)
				onOwnThread(func() { info, _, err = switchOnce(c2, a, st) })
			} else {
				info, _, err = switchOnce(c, a, st)
			}
			if tc.wantFault {
				if !errors.Is(err, platform.ErrFault) || info.Addr != uint64(load) {
					t.Fatalf("load = %v at %#x, want ErrFault at %#x", err, info.Addr, uint64(load))
				}
			} else {
				if err != nil {
					t.Fatalf("load = %v, want nil", err)
				}
				if st.Regs.OrigRax != value || st.Regs.Rbx != 0xabcdef {
					t.Errorf("load: read %#x, rbx %#x; want %#x, 0xabcdef", st.Regs.OrigRax, st.Regs.Rbx, value)
				}
			}
			wantFaults := uint64(0)
			if deferred && !tc.elsewhere && !tc.hostPID && (!tc.syscallFirst || tc.wantFault) {
				wantFaults = 1
			}
			if got := e.p.counts.deferredFaults.Load() - faults; got != wantFaults {
				t.Errorf("faults that made deferred calls = %d, want %d", got, wantFaults)
			}
			if a.deferred.Load() {
				t.Errorf("still deferred after the load")
			}
		})
	}
}

// mapRO returns a change that maps the data page read-only at addr, which
// nothing maps: deferred.
func mapRO(addr uint64) func(t *testing.T, a *addressSpace) bool {
	return func(t *testing.T, a *addressSpace) bool {
		t.Helper()
		if err := a.MapFile(addr, dataOff, pageSize, platform.Read, false); err != nil {
			t.Fatalf("MapFile = %v", err)
		}
		return true
	}
}
