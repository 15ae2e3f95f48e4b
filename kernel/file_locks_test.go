package kernel

import (
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"snapshotter/kernel/vfs"
)

// TestRecordLocks checks how one owner's record locks split, merge and
// conflict with another owner's, against what Linux does for the same
// sequence of F_SETLK calls.
func TestRecordLocks(t *testing.T) {
	a, b := lockOwner{Process: &ThreadGroup{tgid: 1}}, lockOwner{Process: &ThreadGroup{tgid: 2}}
	type set struct {
		unlock, write bool
		start, end    uint64
	}
	type span struct {
		write      bool
		start, end uint64
	}
	tests := []struct {
		name string
		sets []set // by owner a
		want []span
	}{
		{"one lock", []set{{false, true, 0, 99}}, []span{{true, 0, 99}}},
		{"unlock splits", []set{{false, true, 0, 99}, {true, false, 20, 29}}, []span{{true, 0, 19}, {true, 30, 99}}},
		{"adjacent same type merge", []set{{false, false, 0, 9}, {false, false, 10, 19}}, []span{{false, 0, 19}}},
		{"other type splits", []set{{false, false, 0, 19}, {false, true, 5, 9}}, []span{{false, 0, 4}, {true, 5, 9}, {false, 10, 19}}},
		{"overlapping same type merge", []set{{false, true, 10, 20}, {false, true, 0, 15}, {false, true, 18, maxOffset}}, []span{{true, 0, maxOffset}}},
		{"unlock everything", []set{{false, true, 0, 9}, {false, false, 20, 29}, {true, false, 0, maxOffset}}, nil},
		{"gap stays", []set{{false, false, 0, 4}, {false, false, 6, 9}}, []span{{false, 0, 4}, {false, 6, 9}}},
	}
	key := vfs.LockKey{Ino: 1}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newFileLocks()
			for _, s := range tc.sets {
				if ch, err := l.trySetRecord(key, a, s.unlock, s.write, false, s.start, s.end); ch != nil || err != nil {
					t.Fatalf("trySetRecord(%+v) conflicted with nothing held by others", s)
				}
			}
			var got []span
			if lf := l.fileLocked(key, false); lf != nil {
				for _, r := range lf.Records {
					got = append(got, span{r.Write, r.Start, r.End})
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("locks = %v, want %v", got, tc.want)
			}
			if tc.want == nil && len(l.files) != 0 {
				t.Errorf("%d files left in the table, want none", len(l.files))
			}
			// Another owner conflicts exactly where a write is involved.
			for _, w := range tc.want {
				if r, ok := l.recordConflict(key, b, true, w.start, w.start); !ok || r.Owner != a {
					t.Errorf("a write lock by another owner at %d does not conflict", w.start)
				}
				if _, ok := l.recordConflict(key, b, false, w.start, w.start); ok != w.write {
					t.Errorf("a read lock by another owner at %d conflicts: %v, want %v", w.start, ok, w.write)
				}
			}
		})
	}
}

// TestFlockConversion: a shared lock held by two descriptions blocks an
// exclusive one; converting a lock releases the old one first.
func TestFlockConversion(t *testing.T) {
	l := newFileLocks()
	key := vfs.LockKey{Ino: 1}
	f1, f2 := &vfs.File{}, &vfs.File{}
	steps := []struct {
		f         *vfs.File
		exclusive bool
		want      bool
	}{
		{f1, false, true},
		{f2, false, true},
		{f1, true, false}, // f2 shares it; f1's shared lock is gone now
		{f2, true, true},
		{f1, false, false},
	}
	for i, s := range steps {
		if _, ok := l.tryFlock(key, s.f, s.exclusive); ok != s.want {
			t.Errorf("step %d: tryFlock(exclusive %v) = %v, want %v", i, s.exclusive, ok, s.want)
		}
	}
	l.ReleaseLocks(f2)
	if len(l.files) != 0 {
		t.Errorf("after releasing the holder: %d files in the table, want none", len(l.files))
	}
}

// TestRecordLockDeadlock: a process that would wait for a lock whose owner
// waits (directly or through another process) for one of its own gets
// EDEADLK; a request that does not wait never does.
func TestRecordLockDeadlock(t *testing.T) {
	key := vfs.LockKey{Ino: 1}
	tests := []struct {
		name   string
		owners int // owner i holds byte i and waits for byte i+1, the last asks for byte 0
	}{
		{"two processes", 2},
		{"three processes", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newFileLocks()
			owners := make([]lockOwner, tc.owners)
			for i := range owners {
				owners[i] = lockOwner{Process: &ThreadGroup{tgid: int32(i + 1)}}
				if ch, err := l.trySetRecord(key, owners[i], false, true, true, uint64(i), uint64(i)); ch != nil || err != nil {
					t.Fatalf("owner %d: taking its own byte = %v, %v", i, ch, err)
				}
			}
			last := owners[tc.owners-1]
			if ch, err := l.trySetRecord(key, last, false, true, false, 0, 0); ch == nil || err != nil {
				t.Errorf("F_SETLK of a held byte = %v, %v, want a conflict without EDEADLK", ch, err)
			}
			for i := 0; i < tc.owners-1; i++ {
				if ch, err := l.trySetRecord(key, owners[i], false, true, true, uint64(i+1), uint64(i+1)); ch == nil || err != nil {
					t.Fatalf("owner %d waiting for byte %d = %v, %v, want a wait", i, i+1, ch, err)
				}
			}
			if _, err := l.trySetRecord(key, last, false, true, true, 0, 0); err != unix.EDEADLK {
				t.Errorf("closing the cycle: error %v, want EDEADLK", err)
			}
		})
	}
}
