package runner

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// maxIDLen bounds IDs so that the socket path stays short.
const maxIDLen = 64

// ValidateID checks that id can name a sandbox: 1 to 64 characters from
// [a-zA-Z0-9_.-], not starting with a dot.
func ValidateID(id string) error {
	if id == "" || len(id) > maxIDLen || id[0] == '.' {
		return fmt.Errorf("%w %q: want 1-%d characters of [a-zA-Z0-9_.-], not starting with '.'", ErrBadID, id, maxIDLen)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return fmt.Errorf("%w %q: character %q not allowed", ErrBadID, id, c)
		}
	}
	return nil
}

// NewID returns a random 12-hex-digit sandbox ID.
func NewID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// StateDir is the directory holding one subdirectory per sandbox.
type StateDir struct {
	Root string
}

// Dir returns the directory of sandbox id.
func (s StateDir) Dir(id string) string { return filepath.Join(s.Root, id) }

// SocketPath returns the control socket path of sandbox id.
func (s StateDir) SocketPath(id string) string { return filepath.Join(s.Dir(id), socketFile) }

// LogPath returns the sentry log path of sandbox id.
func (s StateDir) LogPath(id string) string { return filepath.Join(s.Dir(id), sentryLog) }

// Reserve claims an ID and creates its directory with a starting Metadata
// in m (m.ID is filled in; an empty m.ID asks for a random one). It fails
// with ErrIDTaken if the ID belongs to a sandbox that has not ended; the
// directory of an ended sandbox is replaced.
func (s StateDir) Reserve(m *Metadata) error {
	if err := os.MkdirAll(s.Root, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	random := m.ID == ""
	for attempt := 0; ; attempt++ {
		if random {
			m.ID = NewID()
		} else if err := ValidateID(m.ID); err != nil {
			return err
		}
		dir := s.Dir(m.ID)
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			if m.Status == "" {
				m.Status = StatusStarting
			}
			if err := WriteMetadata(dir, m); err != nil {
				os.RemoveAll(dir)
				return err
			}
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("reserve sandbox %s: %w", m.ID, err)
		}
		if random && attempt < 8 {
			continue
		}
		if attempt > 0 || !s.reclaim(m.ID) {
			return fmt.Errorf("%w: %s", ErrIDTaken, m.ID)
		}
	}
}

// reclaim removes the directory of sandbox id if that sandbox has ended,
// and reports whether it did. Renaming first makes two reclaimers race
// safely: only one rename succeeds.
func (s StateDir) reclaim(id string) bool {
	dir := s.Dir(id)
	m, err := ReadMetadata(dir)
	if err != nil {
		return false // being created, or unreadable: not ours to remove
	}
	m = s.refresh(dir, m)
	if !Ended(m.Status) {
		return false
	}
	graveyard := filepath.Join(s.Root, fmt.Sprintf(".old-%s-%s", id, NewID()))
	if err := os.Rename(dir, graveyard); err != nil {
		return false
	}
	os.RemoveAll(graveyard)
	return true
}

// Lookup returns the metadata of sandbox id, marking it dead first if its
// sentry vanished. An unknown ID gives ErrUnknownSandbox.
func (s StateDir) Lookup(id string) (*Metadata, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := s.Dir(id)
	m, err := ReadMetadata(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownSandbox, id)
	}
	if err != nil {
		return nil, err
	}
	return s.refresh(dir, m), nil
}

// List returns every sandbox's metadata, oldest first, after marking
// vanished sentries dead. Directories without readable metadata (being
// created right now) are skipped.
func (s StateDir) List() ([]*Metadata, error) {
	ents, err := os.ReadDir(s.Root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	var out []*Metadata
	for _, e := range ents {
		if !e.IsDir() || ValidateID(e.Name()) != nil {
			continue
		}
		dir := filepath.Join(s.Root, e.Name())
		m, err := ReadMetadata(dir)
		if err != nil {
			continue
		}
		out = append(out, s.refresh(dir, m))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Remove deletes the directory of sandbox id. It refuses (ErrIDTaken) while
// the sandbox has not ended.
func (s StateDir) Remove(id string) error {
	m, err := s.Lookup(id)
	if err != nil {
		return err
	}
	if !Ended(m.Status) {
		return fmt.Errorf("remove sandbox %s: %w (status %s)", id, ErrIDTaken, m.Status)
	}
	return os.RemoveAll(s.Dir(id))
}

// deadGrace is how long a starting sandbox may go without a live process
// in its metadata before it counts as dead.
const deadGrace = 10 * time.Second

// refresh marks m dead (and rewrites its metadata) when its status says the
// sentry runs but the recorded process is gone.
func (s StateDir) refresh(dir string, m *Metadata) *Metadata {
	if Ended(m.Status) || procAlive(m.PID, m.PIDStart) {
		return m
	}
	if m.Status == StatusStarting && m.PID == 0 && time.Since(m.Created) < deadGrace {
		return m
	}
	// Re-read: the sentry may have recorded its end just now.
	if m2, err := ReadMetadata(dir); err == nil && (Ended(m2.Status) || m2.PID != m.PID) {
		return m2
	}
	m.Status = StatusDead
	if m.Error == "" {
		m.Error = fmt.Sprintf("sentry process %d vanished", m.PID)
	}
	os.Remove(filepath.Join(dir, socketFile))
	_ = WriteMetadata(dir, m) // best effort: a read-only state dir still lists
	return m
}
