package storage_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"snapshotter/internal/prereq"
	"snapshotter/storage"
	"snapshotter/storage/storetest"
)

// keyPair writes a key pair with GenerateKeyFiles into dir and reads it
// back.
func keyPair(t *testing.T, dir, name string) (ed25519.PrivateKey, ed25519.PublicKey, string) {
	t.Helper()
	priv, pub := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := storage.GenerateKeyFiles(priv, pub); err != nil {
		t.Fatalf("GenerateKeyFiles = %v", err)
	}
	sk, err := storage.ReadPrivateKey(priv)
	if err != nil {
		t.Fatalf("ReadPrivateKey = %v", err)
	}
	pk, err := storage.ReadPublicKey(pub)
	if err != nil {
		t.Fatalf("ReadPublicKey = %v", err)
	}
	return sk, pk, pub
}

// writeSigned writes image name signed with key (nil: unsigned).
func writeSigned(t *testing.T, s storage.Store, name string, key ed25519.PrivateKey) {
	t.Helper()
	w, err := s.Create(context.Background(), name, storage.CreateOptions{SignKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.StateWriter().Write([]byte("signed state"))
	mem := make([]byte, 4*storage.PageSize)
	for i := range mem {
		mem[i] = byte(i / 7)
	}
	// Each image its own chunk: the tests alter chunks in place, and
	// images of equal memory share their chunks.
	copy(mem[64:], name)
	if err := w.WriteMemory(storage.PageSize, mem); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestSignedImages: an image signed with --sign's key verifies with the
// matching public key and is refused (ErrSignature) when unsigned, signed
// by another key, or altered after signing: the manifest, or the memory
// blob even where its chunk checksums were made to match again.
func TestSignedImages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sk, pk, _ := keyPair(t, dir, "good")
	_, otherPK, _ := keyPair(t, dir, "other")
	root := filepath.Join(dir, "store")
	s, err := storage.NewFileStore(root)
	if err != nil {
		t.Fatal(err)
	}
	store := "file://" + root
	writeSigned(t, s, "unsigned", nil)
	for _, n := range []string{"signed", "manifest-edited", "memory-edited", "memory-edited-crc", "resigned"} {
		writeSigned(t, s, n, sk)
	}
	// A metadata change with a recomputed manifest checksum: the
	// signature block is kept, the signed bytes changed.
	editSigned(t, filepath.Join(root, "manifest-edited"), func(m *storage.Manifest) { m.Metadata = map[string]string{"program": "/bin/evil"} }, true)
	// A memory byte changed: chunk CRCs no longer match either.
	flipFile(t, chunkFile(t, s, root, "memory-edited", 0), 10)
	// A memory byte changed, its chunk CRC and the index SHA-256 redone:
	// only the signature notices.
	forgeChunk(t, filepath.Join(root, "memory-edited-crc"))
	// Re-signed by an attacker's own key.
	_, _, _ = keyPair(t, dir, "evil")
	evil, _ := storage.ReadPrivateKey(filepath.Join(dir, "evil.key"))
	editSigned(t, filepath.Join(root, "resigned"), func(m *storage.Manifest) {}, false)
	resign(t, filepath.Join(root, "resigned"), evil)

	tests := []struct {
		name string
		key  ed25519.PublicKey
		want string // "" for success
	}{
		{"signed", pk, ""},
		{"signed", otherPK, "not by the given key"},
		{"unsigned", pk, "not signed"},
		{"manifest-edited", pk, "does not verify"},
		{"memory-edited", pk, "memory blob"},
		{"memory-edited-crc", pk, "does not verify"},
		{"resigned", pk, "not by the given key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// ChecksumsOnly as a restore passes it: ignored with a key.
			img, err := storage.OpenImageWith(ctx, tc.name, store, storage.OpenOptions{VerifyKey: tc.key, ChecksumsOnly: true})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("OpenImageWith(%s, verify) = %v, want success", tc.name, err)
				}
				if err := img.Verify(ctx); err != nil {
					t.Errorf("Verify(%s) = %v", tc.name, err)
				}
				img.Close()
				return
			}
			if err == nil {
				img.Close()
			}
			if !errors.Is(err, storage.ErrSignature) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("OpenImageWith(%s, verify) = %v, want ErrSignature saying %q", tc.name, err, tc.want)
			}
		})
	}
	// Without --verify, the forged chunk passes every checksum: the
	// reason signing exists.
	img, err := storage.OpenImageWith(ctx, "memory-edited-crc", store, storage.OpenOptions{})
	if err != nil {
		t.Fatalf("OpenImageWith(memory-edited-crc) = %v", err)
	}
	if err := img.Verify(ctx); err != nil {
		t.Errorf("Verify(memory-edited-crc) without a key = %v, want success (checksums redone)", err)
	}
	img.Close()
}

// TestMemoryLimit: an image whose memory is larger than the restoring
// kernel can hold is refused when opened with that limit (inspect and
// restore both open images so).
func TestMemoryLimit(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, _ := storage.NewFileStore(root)
	writeSigned(t, s, "img", nil)
	for _, tc := range []struct {
		max uint64
		ok  bool
	}{{0, true}, {5 * storage.PageSize, true}, {4 * storage.PageSize, false}} {
		img, err := storage.OpenImageWith(ctx, "img", "file://"+root, storage.OpenOptions{MaxMemorySize: tc.max})
		if err == nil {
			img.Close()
		}
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, storage.ErrInvalidArgument)) {
			t.Errorf("OpenImageWith(5 pages, max %d) = %v, want ok=%v or ErrInvalidArgument", tc.max, err, tc.ok)
		}
	}
}

// TestOpenSSLKeys: keys made by OpenSSL (genpkey -algorithm ed25519, pkey
// -pubout) sign and verify images; other files are refused.
func TestOpenSSLKeys(t *testing.T) {
	openssl := prereq.Binary(t, "openssl")
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "k.pem"), filepath.Join(dir, "pub.pem")
	for _, args := range [][]string{{"genpkey", "-algorithm", "ed25519", "-out", priv}, {"pkey", "-in", priv, "-pubout", "-out", pub}} {
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	sk, err := storage.ReadPrivateKey(priv)
	if err != nil {
		t.Fatalf("ReadPrivateKey(openssl key) = %v", err)
	}
	pk, err := storage.ReadPublicKey(pub)
	if err != nil {
		t.Fatalf("ReadPublicKey(openssl key) = %v", err)
	}
	root := filepath.Join(dir, "store")
	s, _ := storage.NewFileStore(root)
	writeSigned(t, s, "img", sk)
	img, err := storage.OpenImageWith(context.Background(), "img", "file://"+root, storage.OpenOptions{VerifyKey: pk})
	if err != nil {
		t.Fatalf("OpenImageWith(verify with openssl key) = %v", err)
	}
	img.Close()

	rsa := filepath.Join(dir, "rsa.pem")
	if out, err := exec.Command(openssl, "genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024", "-out", rsa).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey rsa: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		read func(string) error
		path string
	}{
		{"rsa private", func(p string) error { _, err := storage.ReadPrivateKey(p); return err }, rsa},
		{"public as private", func(p string) error { _, err := storage.ReadPrivateKey(p); return err }, pub},
		{"private as public", func(p string) error { _, err := storage.ReadPublicKey(p); return err }, priv},
		{"not PEM", func(p string) error { _, err := storage.ReadPublicKey(p); return err }, "/etc/hostname"},
	} {
		if err := tc.read(tc.path); !errors.Is(err, storage.ErrInvalidArgument) {
			t.Errorf("%s: read = %v, want ErrInvalidArgument", tc.name, err)
		}
	}
	if err := storage.GenerateKeyFiles(priv, filepath.Join(dir, "new.pub")); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Errorf("GenerateKeyFiles over an existing key = %v, want ErrAlreadyExists", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "new.pub")); err == nil {
		t.Errorf("GenerateKeyFiles that failed left new.pub behind")
	}
}

// editSigned rewrites the manifest of the image in dir through edit with a
// recomputed checksum, keeping its signature block if keepSig (which then
// no longer matches) or dropping it.
func editSigned(t *testing.T, dir string, edit func(m *storage.Manifest), keepSig bool) {
	t.Helper()
	p := filepath.Join(dir, "manifest")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := storage.ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := storage.MarshalManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if keepSig {
		out = append(out, b[len(b)-sigBlock:]...)
	}
	must(t, os.WriteFile(p, out, 0o600))
}

// sigBlock is the size of a manifest's signature block.
const sigBlock = 8 + ed25519.PublicKeySize + ed25519.SignatureSize

// resign signs the (unsigned) manifest of the image in dir with key.
func resign(t *testing.T, dir string, key ed25519.PrivateKey) {
	t.Helper()
	p := filepath.Join(dir, "manifest")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(p, storage.SignManifest(b, key), 0o600))
}

// flipFile flips a bit of the byte at off of file p.
func flipFile(t *testing.T, p string, off int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x20
	must(t, os.WriteFile(p, b, 0o600))
}

// forgeChunk changes a memory byte of the image in dir and redoes every
// checksum (storetest.RewriteChunk).
// chunkFile returns the path of chunk i of image name in file store root.
func chunkFile(t *testing.T, s storage.Store, root, name string, i int) string {
	t.Helper()
	img, err := s.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	sum := img.Chunks()[i].SumHex()
	return filepath.Join(root, ".chunks", sum[:2], sum)
}

func forgeChunk(t *testing.T, dir string) {
	t.Helper()
	n, err := storetest.RewriteChunks(dir, func(raw []byte) bool { raw[100] ^= 0xff; return true })
	if err != nil || n != 1 {
		t.Fatalf("RewriteChunks = %d, %v; want 1 chunk changed", n, err)
	}
}
