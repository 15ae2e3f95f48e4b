package storage

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Signing keys are ed25519 keys in PEM files, the format OpenSSL uses:
//
//	private key: "PRIVATE KEY" block, PKCS #8 (openssl genpkey -algorithm ed25519)
//	public key:  "PUBLIC KEY" block, PKIX     (openssl pkey -in PRIV -pubout)
//
// GenerateKeyFiles writes such a pair; ReadPrivateKey and ReadPublicKey
// read them, whoever wrote them.

// maxKeyFile bounds a key file: a PEM ed25519 key is about 120 bytes.
const maxKeyFile = 64 << 10

// An ed25519 key's DER encodings are fixed prefixes followed by the key
// bytes (RFC 8410), so they are written and read here without
// crypto/x509, which snap would otherwise link for this alone:
//
//	PKCS #8 private key: pkcs8Prefix | 32-byte seed
//	PKIX public key:     pkixPrefix  | 32-byte public key
var (
	pkcs8Prefix = []byte{0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20}
	pkixPrefix  = []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}
)

// GenerateKeyFiles writes a new ed25519 key pair: the private key to
// privPath (mode 0600) and the public key to pubPath (0644). Neither file
// may exist (ErrAlreadyExists); on failure neither is left behind.
func GenerateKeyFiles(privPath, pubPath string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	privDER := append(append([]byte{}, pkcs8Prefix...), priv.Seed()...)
	pubDER := append(append([]byte{}, pkixPrefix...), pub...)
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		os.Remove(privPath)
		return err
	}
	return nil
}

// writeNew creates file path, which must not exist, with data and mode
// (whatever the umask).
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write key %s: %w", path, ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err = f.Chmod(mode); err != nil {
		f.Close()
	} else {
		err = writeSynced(f, data)
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return nil
}

// readKeyBlock reads the one PEM block of type typ from path.
func readKeyBlock(path, typ string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("key %s: larger than %d bytes, not a key: %w", path, maxKeyFile, ErrInvalidArgument)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("key %s: no PEM block: %w", path, ErrInvalidArgument)
	}
	if blk.Type != typ {
		return nil, fmt.Errorf("key %s: a %q PEM block, want %q: %w", path, blk.Type, typ, ErrInvalidArgument)
	}
	return blk.Bytes, nil
}

// ReadPrivateKey reads an ed25519 private key (PEM "PRIVATE KEY", PKCS #8)
// for signing images. Anything else is ErrInvalidArgument.
func ReadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readKeyBlock(path, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	seed, ok := bytes.CutPrefix(der, pkcs8Prefix)
	if !ok || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("key %s: not an ed25519 private key (PKCS #8): %w", path, ErrInvalidArgument)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ReadPublicKey reads an ed25519 public key (PEM "PUBLIC KEY", PKIX) for
// verifying images. Anything else is ErrInvalidArgument.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readKeyBlock(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	key, ok := bytes.CutPrefix(der, pkixPrefix)
	if !ok || len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key %s: not an ed25519 public key (PKIX): %w", path, ErrInvalidArgument)
	}
	return ed25519.PublicKey(bytes.Clone(key)), nil
}
