//go:build linux && amd64

package ptrace

import (
	"errors"
	"runtime"
	"testing"

	"snapshotter/platform"
)

// TestRenew checks Renew: the heir's calls wait until the renewed address
// space is released, which hands the heir its stub (the same process, no
// new one made) with the old mappings gone; releasing the heir first
// leaves the stub to the renewed one.
func TestRenew(t *testing.T) {
	const old, fresh = 0x5000_0000, 0x5001_0000
	run := func(t *testing.T, c platform.Context, a platform.AddressSpace) error {
		t.Helper()
		st := &platform.State{}
		st.Regs.Rip = codeAddr + offSyscall
		_, _, err := switchOnce(c, a, st)
		return err
	}
	setup := func(t *testing.T) (*env, platform.Context, *addressSpace, *addressSpace, *int) {
		t.Helper()
		e := newEnv(t, 1<<20)
		c := e.newContext(t)
		notified := new(int)
		c.(platform.StubClocked).NotifyStub(func(int, int64) { *notified++ })
		a := e.newSpace(t)
		if err := a.MapFile(old, dataOff, pageSize, platform.Read, false); err != nil {
			t.Fatal(err)
		}
		if err := run(t, c, a); err != nil {
			t.Fatalf("Switch in the old address space: %v", err)
		}
		r, err := a.Renew()
		if err != nil {
			t.Fatalf("Renew: %v", err)
		}
		h := r.(*addressSpace)
		for _, m := range []struct{ addr, off uint64 }{{codeAddr, 0}, {fresh, dataOff}} {
			if err := h.MapFile(m.addr, m.off, pageSize, platform.AccessType{Read: true, Execute: m.addr == codeAddr}, false); err != nil {
				t.Fatal(err)
			}
		}
		if h.pid != a.pid || !mapped(a.pid, old) || mapped(a.pid, fresh) {
			t.Fatalf("after Renew: heir's stub %d (old %d), old page mapped %v, heir's %v; want the same stub, only the old page",
				h.pid, a.pid, mapped(a.pid, old), mapped(a.pid, fresh))
		}
		if _, err := a.Renew(); err == nil {
			t.Errorf("second Renew = nil error, want one")
		}
		if err := run(t, c, h); !errors.Is(err, ErrRenewing) {
			t.Errorf("Switch in the heir before the handover = %v, want ErrRenewing", err)
		}
		return e, c, a, h, notified
	}

	t.Run("handed over", func(t *testing.T) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		e, c, a, h, notified := setup(t)
		stubs := e.p.counts.stubs.Load()
		a.Release()
		if mapped(h.pid, fresh) {
			t.Errorf("after the old address space's release: the heir's page mapped before its first Switch")
		}
		before := *notified
		if err := run(t, c, h); err != nil {
			t.Fatalf("Switch in the heir: %v", err)
		}
		if !mapped(h.pid, fresh) || mapped(h.pid, old) {
			t.Errorf("after the heir's first Switch: its page mapped %v, the old one %v; want only its own", mapped(h.pid, fresh), mapped(h.pid, old))
		}
		if *notified != before+1 {
			t.Errorf("stub notifications at the heir's first Switch = %d, want 1 (its clock starts anew)", *notified-before)
		}
		if got := e.p.counts.stubs.Load(); got != stubs {
			t.Errorf("stubs started for the heir = %d, want 0", got-stubs)
		}
		if err := run(t, c, a); err == nil {
			t.Errorf("Switch in the released address space = nil error, want one")
		}
		pid := h.pid
		h.Release()
		e.p.reaping.Wait()
		if pi := readProc(pid); pi.exists && (pi.stub || pi.state == 'Z') {
			t.Errorf("after the heir's release: stub %d = %+v, want gone", pid, pi)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_, c, a, h, _ := setup(t)
		h.Release()
		if err := run(t, c, a); err != nil {
			t.Fatalf("Switch in the old address space after its heir's release: %v", err)
		}
		if !mapped(a.pid, old) || mapped(a.pid, fresh) {
			t.Errorf("after the heir's release: old page mapped %v, heir's %v; want only the old", mapped(a.pid, old), mapped(a.pid, fresh))
		}
		if _, err := a.Renew(); err != nil {
			t.Errorf("Renew after the heir's release = %v, want nil", err)
		}
		a.Release()
	})
}
