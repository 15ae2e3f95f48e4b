package checkpoint

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/storage/storetest"
)

// TestSignedRestore: sleeper is saved with --sign. Its image restores with
// --verify and the matching public key. An attacker who rewrites a memory
// chunk and redoes every checksum (here: sleeper's "slept %ld" format
// turned into "SLEPT %ld") gets a restore that runs the altered memory
// without --verify, and a refusal with --verify, as do an unsigned image
// and another key, each before anything runs.
func TestSignedRestore(t *testing.T) {
	e := newEnv(t)
	keys := filepath.Join(e.dir, "keys")
	e.must("keygen", keys+".priv", keys+".pub")
	e.must("keygen", keys+"-other.priv", keys+"-other.pub")
	id, out := e.runDetached("", program(t, "sleeper"))
	waitLines(t, out, 1)
	e.must("save", id, "--leave-running", "--to", "unsigned")
	e.must("save", id, "--leave-running", "--to", "forged", "--sign", keys+".priv")
	e.must("save", id, "--to", "signed", "--sign", keys+".priv")

	store := filepath.Join(e.dir, "data", "snap", "images")
	n, err := storetest.RewriteChunks(filepath.Join(store, "forged"), func(raw []byte) bool {
		i := bytes.Index(raw, []byte("slept %ld\n"))
		if i >= 0 {
			copy(raw[i:], "SLEPT")
		}
		return i >= 0
	})
	if err != nil || n == 0 {
		t.Fatalf("RewriteChunks(forged) = %d, %v; want the chunk holding sleeper's format", n, err)
	}

	// Signed and verified: sleeper goes on.
	rid, rout := e.restoreDetached("signed", "", "--verify", keys+".pub")
	ls := waitLines(t, rout, 2)
	checkClean(t, "verified restore", ls)
	if !strings.HasPrefix(ls[1], "slept ") {
		t.Errorf("verified restore printed %q, want slept K", ls[1])
	}
	e.must("kill", rid, "KILL")

	// Forged, without --verify: every checksum passes and the altered
	// memory runs.
	fid, fout := e.restoreDetached("forged", "")
	ls = waitLines(t, fout, 1)
	if !strings.HasPrefix(ls[0], "SLEPT ") {
		t.Errorf("forged image restored without --verify printed %q, want SLEPT K (the altered memory)", ls[0])
	}
	e.must("kill", fid, "KILL")

	for _, tc := range []struct {
		image, key, want string
	}{
		{"forged", keys + ".pub", "does not verify"},
		{"unsigned", keys + ".pub", "not signed"},
		{"signed", keys + "-other.pub", "not by the given key"},
		{"signed", filepath.Join(e.dir, "no-such-key"), "no such file"},
		{"signed", keys + ".priv", "PRIVATE KEY"},
	} {
		for _, args := range [][]string{
			{"restore", tc.image, "--verify", tc.key},
			{"restore", tc.image, "-d", "--verify", tc.key},
			{"inspect", tc.image, "--verify", tc.key},
		} {
			msg := e.mustFail(args...)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("snap %s: stderr %q, want it to say %q", strings.Join(args, " "), msg, tc.want)
			}
		}
	}
	if got := e.must("inspect", "signed", "--verify", keys+".pub"); !strings.Contains(got, "verified") {
		t.Errorf("snap inspect --verify = %q, want the signature verified", got)
	}
}
