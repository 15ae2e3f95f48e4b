package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/kernel"
	"snapshotter/storage"
)

// copyImage copies image name of the test's default file store to a new
// name and returns the new image's directory.
func (e *env) copyImage(name, to string) string {
	e.t.Helper()
	store := filepath.Join(e.dir, "data", "snap", "images")
	dst := filepath.Join(store, to)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		e.t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(store, name))
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(store, name, ent.Name()))
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, ent.Name()), b, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return dst
}

// rewriteState writes image to of the test's default file store: image
// name's memory and metadata, and its kernel state blob passed through f.
// The result is a well-formed image (checksums and sizes match) whose state
// holds what f made of it.
func (e *env) rewriteState(name, to string, f func([]byte) []byte) {
	t := e.t
	t.Helper()
	ctx := context.Background()
	s, err := storage.NewFileStore(filepath.Join(e.dir, "data", "snap", "images"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := s.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	r, err := im.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	state, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.CreateTemp(e.dir, "memory")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if err := im.ReadMemoryAt(ctx, mem); err != nil {
		t.Fatal(err)
	}
	m := im.Manifest()
	w, err := s.Create(ctx, to, storage.CreateOptions{Metadata: m.Metadata, SnapVersion: m.SnapVersion})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteState(bytes.NewReader(f(state))); err != nil {
		t.Fatal(err)
	}
	size := (m.MemorySize + storage.PageSize - 1) &^ (storage.PageSize - 1)
	if err := mem.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMemoryFrom(mem, []storage.Range{{Off: 0, Len: size}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// editManifest rewrites the manifest of the image in dir through f, with a
// valid checksum.
func editManifest(t *testing.T, dir string, f func(m *storage.Manifest)) {
	t.Helper()
	edit(t, filepath.Join(dir, "manifest"), func(b []byte) []byte {
		m, err := storage.ParseManifest(b)
		if err != nil {
			t.Fatal(err)
		}
		f(m)
		if b, err = storage.MarshalManifest(m); err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// edit rewrites file path with f.
func edit(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBadInput: every bad image or request fails with one line on stderr
// and a non-zero status, without a panic, and the running sandbox goes on
// untouched.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	id, out := e.runDetached("", program(t, "sleeper"))
	waitLines(t, out, 1)
	e.must("save", id, "--leave-running", "--to", "good")

	// Bad images: a restore fails before anything runs. Each case makes
	// image name from image good.
	copied := func(f func(dir string)) func(name string) {
		return func(name string) { f(e.copyImage("good", name)) }
	}
	for _, tc := range []struct {
		name   string
		break_ func(name string)
		want   string
	}{
		{"corrupt chunk", copied(func(dir string) {
			// The copy's chunks are good's: point its index at a
			// damaged copy of one, stored under its new address.
			repointChunk(t, dir, func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b })
		}), "corrupt"},
		{"truncated state", copied(func(dir string) {
			edit(t, filepath.Join(dir, "state.zst"), func(b []byte) []byte { return b[:len(b)/2] })
		}), "corrupt"},
		{"missing manifest", copied(func(dir string) {
			os.Remove(filepath.Join(dir, "manifest"))
		}), "not found"},
		{"newer major version", copied(func(dir string) {
			edit(t, filepath.Join(dir, "manifest"), func(b []byte) []byte { b[8]++; return b })
		}), "format 2."},
		{"newer kernel state minor", func(name string) {
			// The kernel state header: "SNAPKRNL", major u16le, minor u16le.
			e.rewriteState("good", name, func(b []byte) []byte {
				binary.LittleEndian.PutUint16(b[10:], binary.LittleEndian.Uint16(b[10:])+1)
				return b
			})
		}, "(restore it with a newer snap): incompatible kernel state version"},
		{"index names a missing chunk", copied(func(dir string) {
			repointChunk(t, dir, nil)
		}), "corrupt"},
		{"state rawSize wrong", copied(func(dir string) {
			editManifest(t, dir, func(m *storage.Manifest) { m.State.RawSize-- })
		}), "rawSize"},
		{"memory over the reservation", copied(func(dir string) {
			editManifest(t, dir, func(m *storage.Manifest) { m.MemorySize = kernel.MaxMemorySize + storage.PageSize })
		}), "over the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			tc.break_(name)
			// inspect and restore open images through one path: both
			// refuse the same images, for the same reason. The kernel
			// state is decoded by a restore only.
			cmds := [][]string{{"inspect", name}, {"restore", name}, {"restore", name, "-d", "--id", "bad-" + name}}
			if tc.name == "newer kernel state minor" {
				cmds = cmds[1:]
			}
			for _, args := range cmds {
				msg := e.mustFail(args...)
				if !strings.Contains(msg, tc.want) {
					t.Errorf("snap %s: stderr %q, want it to say %q", strings.Join(args, " "), msg, tc.want)
				}
			}
			if m := e.meta("bad-" + name); m["status"] != "failed" {
				t.Errorf("sandbox of a failed restore -d: status %v, want failed", m["status"])
			}
		})
	}

	// Bad requests: the sandbox is left running.
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown ID save", []string{"save", "nosuch"}, nil, "no such sandbox"},
		{"unknown ID kill", []string{"kill", "nosuch"}, nil, "no such sandbox"},
		{"unknown ID wait", []string{"wait", "nosuch"}, nil, "no such sandbox"},
		{"bad ID", []string{"save", "../x"}, nil, "invalid sandbox ID"},
		{"bad signal", []string{"kill", id, "NOPE"}, nil, "invalid signal"},
		{"existing --to", []string{"save", id, "--to", "good"}, nil, "exists"},
		{"unreachable S3", []string{"save", id, "--to", "s3://bucket/img"},
			[]string{"SNAP_S3_ENDPOINT=http://127.0.0.1:1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y"}, "127.0.0.1:1"},
		{"restore unreachable S3", []string{"restore", "s3://bucket/img"},
			[]string{"SNAP_S3_ENDPOINT=http://127.0.0.1:1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=y"}, "127.0.0.1:1"},
		{"taken ID", []string{"restore", "good", "-d", "--id", id}, nil, "already in use"},
		{"missing --sign key", []string{"save", id, "--sign", "/nonexistent/key.pem"}, nil, "no such file"},
		{"--sign not a key", []string{"save", id, "--sign", "/etc/hostname"}, nil, "no PEM block"},
		{"zero --timeout", []string{"save", id, "--timeout", "0s"}, nil, "not positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.extra = tc.env
			defer func() { e.extra = nil }()
			n := len(lines(out))
			msg := e.mustFail(tc.args...)
			if !strings.Contains(msg, tc.want) {
				t.Errorf("snap %s: stderr %q, want it to say %q", strings.Join(tc.args, " "), msg, tc.want)
			}
			if st := e.meta(id)["status"]; st != "running" {
				t.Fatalf("sandbox status after %s = %v, want running", tc.name, st)
			}
			ls := waitLines(t, out, n+2)
			checkClean(t, "sandbox", ls)
		})
	}
}

// repointChunk rewrites the index of the image in dir (and the index's
// SHA-256 in its manifest) so that its middle chunk's record names another
// address: that of f(the chunk's bytes), stored there, or with f nil an
// address nothing is stored at.
func repointChunk(t *testing.T, dir string, f func([]byte) []byte) {
	t.Helper()
	mb, err := os.ReadFile(filepath.Join(dir, "manifest"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := storage.ParseManifest(mb)
	if err != nil {
		t.Fatal(err)
	}
	idxPath := filepath.Join(dir, m.Index.Key)
	idx, err := os.ReadFile(idxPath)
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := storage.ParseIndex(idx, m)
	if err != nil {
		t.Fatal(err)
	}
	i := len(chunks) / 2
	chunkPath := func(sum string) string { return filepath.Join(dir, "..", ".chunks", sum[:2], sum) }
	sum := sha256.Sum256([]byte("no such chunk"))
	if f != nil {
		b, err := os.ReadFile(chunkPath(chunks[i].SumHex()))
		if err != nil {
			t.Fatal(err)
		}
		b = f(b)
		sum = sha256.Sum256(b)
		p := chunkPath(hex.EncodeToString(sum[:]))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Records are 104 bytes after a 24-byte header; the address at 72.
	copy(idx[24+i*104+72:], sum[:])
	if err := os.WriteFile(idxPath, idx, 0o600); err != nil {
		t.Fatal(err)
	}
	editManifest(t, dir, func(m *storage.Manifest) {
		d := sha256.Sum256(idx)
		m.Index.SHA256 = hex.EncodeToString(d[:])
	})
}
