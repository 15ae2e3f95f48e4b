package vfs

import (
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzParseDirents64 checks that the decoder never panics and that what it
// accepts re-encodes to the same bytes when the records are canonical.
func FuzzParseDirents64(f *testing.F) {
	var seed []byte
	seed = AppendDirent64(seed, Dirent{Ino: 1, Off: 1, Type: unix.DT_DIR, Name: "."})
	seed = AppendDirent64(seed, Dirent{Ino: 2, Off: 2, Type: unix.DT_REG, Name: "a-longer-name.txt"})
	f.Add(seed)
	f.Add(seed[:30])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ents, err := ParseDirents64(b)
		if err != nil {
			return
		}
		var re []byte
		for _, e := range ents {
			re = AppendDirent64(re, e)
		}
		again, err := ParseDirents64(re)
		if err != nil || len(again) != len(ents) {
			t.Fatalf("re-encoded %d records parse as %d, %v", len(ents), len(again), err)
		}
		for i := range ents {
			if again[i] != ents[i] {
				t.Fatalf("record %d = %+v after re-encoding, want %+v", i, again[i], ents[i])
			}
		}
	})
}
