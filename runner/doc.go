// Package runner runs snapshotter sandboxes in the background and talks to
// them: one sentry process per sandbox, a control socket, a metadata file,
// and the checkpoint (save) and restore wiring around the kernel.
//
// # Vocabulary
//
//   - A sandbox is one program running in one sentry process. It has an ID
//     (short lowercase hex by default, or chosen by the user), unique within a
//     state directory.
//
//   - The state directory ($SNAP_STATE_DIR, --state-dir) holds one
//     subdirectory per sandbox:
//
//     <state-dir>/<id>/meta.json      Metadata, replaced atomically (rename)
//     <state-dir>/<id>/control.sock   the control socket, mode 0600
//     <state-dir>/<id>/sentry.log     the sentry's own diagnostics
//
//   - The launcher is the `snap run -d` / `snap restore -d` process. It
//     reserves the directory (mkdir is the lock: a taken ID is ErrIDTaken),
//     starts the sentry in its own session and waits on a readiness pipe
//     until the sentry listens on its socket, then prints the ID and exits.
//
//   - The sentry serves the control protocol (docs/CONTROL_PROTOCOL.md):
//     length-prefixed msgpack frames carrying requests (info, kill, wait,
//     save) and responses, with progress events for long operations.
//
// # Lifecycle of a sandbox
//
//	reserve dir ──> starting ──> running ──> exited (exit status recorded)
//	                                │
//	                                ├──> saved  (save without --leave-running)
//	                                └──> dead   (sentry vanished; set by Refresh/ps)
//
// The metadata file always says the last known status. Once a sandbox is
// exited, saved or dead, its ID may be reused; `snap wait` on it still
// reports the recorded exit status until then.
//
// The package does not know how a program runs: the sentry hands the Server
// a Sandbox (implemented over the kernel in this package's kernel adapter or
// by the command that wires it), so the protocol, the state directory and the
// launcher are tested on their own.
package runner
