package storage

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
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

// GenerateKeyFiles writes a new ed25519 key pair: the private key to
// privPath (mode 0600) and the public key to pubPath (0644). Neither file
// may exist (ErrAlreadyExists); on failure neither is left behind.
func GenerateKeyFiles(privPath, pubPath string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
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
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
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
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key %s: %v: %w", path, err, ErrInvalidArgument)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s: a %T, want an ed25519 private key: %w", path, k, ErrInvalidArgument)
	}
	return priv, nil
}

// ReadPublicKey reads an ed25519 public key (PEM "PUBLIC KEY", PKIX) for
// verifying images. Anything else is ErrInvalidArgument.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readKeyBlock(path, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("key %s: %v: %w", path, err, ErrInvalidArgument)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("key %s: a %T, want an ed25519 public key: %w", path, k, ErrInvalidArgument)
	}
	return pub, nil
}
