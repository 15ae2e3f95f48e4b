package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Sandbox statuses recorded in Metadata.Status.
const (
	// StatusStarting: the directory is reserved, the sentry is starting.
	StatusStarting = "starting"
	// StatusRunning: the program runs.
	StatusRunning = "running"
	// StatusWaiting: a pool member, restored with its tasks parked,
	// waits to be taken (snap pool take); it then becomes running.
	StatusWaiting = "waiting"
	// StatusExited: the program ended; Metadata.Exit says how.
	StatusExited = "exited"
	// StatusSaved: the sandbox was saved and then stopped (save without
	// --leave-running); Metadata.SavedTo names the image.
	StatusSaved = "saved"
	// StatusDead: the sentry vanished without recording an end.
	StatusDead = "dead"
	// StatusFailed: the sentry failed to start the program.
	StatusFailed = "failed"
)

// Ended reports whether status is final: the ID may be reused.
func Ended(status string) bool {
	switch status {
	case StatusExited, StatusSaved, StatusDead, StatusFailed:
		return true
	}
	return false
}

// metaVersion is the format version of meta.json. Readers accept files up
// to this version; new fields are only ever added.
const metaVersion = 1

// Metadata describes one sandbox. It is the content of meta.json, rewritten
// atomically on every change by the sentry (and by Refresh for a dead one).
type Metadata struct {
	Version int    `json:"version" msgpack:"version"`
	ID      string `json:"id" msgpack:"id"`
	// PID is the sentry's host process ID; PIDStart its start time in
	// clock ticks since boot (/proc/PID/stat field 22), which tells a
	// reused PID apart.
	PID      int      `json:"pid" msgpack:"pid"`
	PIDStart uint64   `json:"pid_start" msgpack:"pid_start"`
	Status   string   `json:"status" msgpack:"status"`
	Program  string   `json:"program" msgpack:"program"`
	Argv     []string `json:"argv" msgpack:"argv"`
	// Created is when this sandbox (this run or this restore) started.
	Created time.Time `json:"created" msgpack:"created"`
	// RestoredFrom is the image URI the sandbox was restored from, if any.
	RestoredFrom string `json:"restored_from,omitempty" msgpack:"restored_from,omitempty"`
	// SavedTo is the last image the sandbox was saved to, if any.
	SavedTo string `json:"saved_to,omitempty" msgpack:"saved_to,omitempty"`
	// Saving is set while a save runs (the --to it was asked for, or
	// "-" for a generated name), so that snap ps shows a sandbox a save
	// may hold paused.
	Saving string `json:"saving,omitempty" msgpack:"saving,omitempty"`
	// Exit is set once the program ended.
	Exit *ExitStatus `json:"exit,omitempty" msgpack:"exit,omitempty"`
	// Error says why the sandbox failed or died.
	Error string `json:"error,omitempty" msgpack:"error,omitempty"`
	// Pool names the pool the sandbox was made for (snap pool create), while
	// it waits and after it was taken.
	Pool string `json:"pool,omitempty" msgpack:"pool,omitempty"`
	// Taken is when a pool member was taken, if it was.
	Taken *time.Time `json:"taken,omitempty" msgpack:"taken,omitempty"`
}

const (
	metaFile    = "meta.json"
	socketFile  = "control.sock"
	sentryLog   = "sentry.log"
	maxMetaSize = 1 << 20
)

// WriteMetadata replaces dir/meta.json with m atomically: a temporary file
// in dir is written, fsync'ed and renamed over the old one, so readers see
// the old or the new content, never a mix.
func WriteMetadata(dir string, m *Metadata) error {
	f, err := writeMetadata(dir, m, true)
	if err != nil {
		return err
	}
	return f.Close()
}

// writeMetadataVisible is WriteMetadata for a change that readers must see
// before the caller goes on, but whose fsync may come later: the file is
// renamed into place unsynced and returned open, for the caller to Sync
// and Close (until then a crash of the host may leave meta.json empty).
func writeMetadataVisible(dir string, m *Metadata) (*os.File, error) {
	return writeMetadata(dir, m, false)
}

// writeMetadata writes m to a temporary file of dir, fsync'ed if sync, and
// renames it to dir/meta.json; it returns the file, open.
func writeMetadata(dir string, m *Metadata, sync bool) (*os.File, error) {
	m.Version = metaVersion
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode metadata of %s: %w", m.ID, err)
	}
	b = append(b, '\n')
	f, err := os.CreateTemp(dir, ".meta-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("write metadata of %s: %w", m.ID, err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	if werr == nil && sync {
		werr = f.Sync()
	}
	if werr == nil {
		werr = os.Rename(tmp, filepath.Join(dir, metaFile))
	}
	if werr != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("write metadata of %s: %w", m.ID, werr)
	}
	return f, nil
}

// ReadMetadata reads dir/meta.json. A missing file gives an error that
// matches fs.ErrNotExist.
func ReadMetadata(dir string) (*Metadata, error) {
	f, err := os.Open(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, fmt.Errorf("read sandbox metadata: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaSize+1))
	if err != nil {
		return nil, fmt.Errorf("read sandbox metadata %s: %w", f.Name(), err)
	}
	if len(b) > maxMetaSize {
		return nil, fmt.Errorf("read sandbox metadata %s: larger than %d bytes", f.Name(), maxMetaSize)
	}
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read sandbox metadata %s: %w", f.Name(), err)
	}
	if m.Version < 1 || m.Version > metaVersion {
		return nil, fmt.Errorf("read sandbox metadata %s: unsupported version %d (want 1..%d)", f.Name(), m.Version, metaVersion)
	}
	return &m, nil
}
