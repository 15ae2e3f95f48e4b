// Package fasttake holds snap's ELF entry point, which takes a member of
// a pool (`snap pool take`) before the Go runtime starts: Go's own start
// and its package initialisation cost milliseconds, and a take is meant to
// cost about one.
//
// snap is linked with -ldflags=-E=_rt0_snap (make build and the tests'
// builds), so that the kernel starts it at _rt0_snap
// (entry_linux_amd64.s), which calls snap_fast_take, freestanding C
// (csrc/take.c, compiled by gen.sh into take_linux_amd64.syso, committed),
// with the initial stack pointer: argc, argv, envp and auxv are there.
// Every snap process passes through it, the sentries snap starts too: for
// anything but a `pool take` command line it returns after looking at the
// first arguments, and Go starts as it would from its own entry point. A
// binary built without the flag (a plain go build or go install) never
// runs the C code and takes through the full command
// (cmd/snapshotter/pool.go, runner.TakeFromPool): the same result, a few
// milliseconds later.
//
// The C code handles the ordinary case only, with the same meaning as the
// full command: a command line of the global --state-dir and --store,
// `pool take NAME` and take's own -d/--detach, --wait, --stdin, --stdout
// and --stderr; stdio files that open; a member that waits. Anything else
// returns to Go with nothing changed — an unknown flag (-p among them: the
// full command publishes ports), a flag before `pool take` that belongs to
// take, an argument or name longer than its bounds, a state directory whose
// socket paths are too long for sockaddr_un, a closed descriptor 0, 1 or 2
// (Go's runtime opens /dev/null there first), no pool, an empty pool
// (--wait is the full command's), a file that does not open — and the
// full command reports errors and waits. SNAP_NO_FAST_TAKE=1 turns it off
// (the tests run both paths).
//
// A take: the waiting members are the names in
// <state-dir>/.pools/NAME/waiting/, the one the pool's "primed" link names
// first; the stdio files are opened (snap's own descriptors in the
// foreground, /dev/null for those not given with -d); in the foreground
// SIGINT, SIGTERM and SIGHUP are blocked and read from a signalfd from
// before the claim, so that a signal that comes while the program starts
// reaches it too. A member is claimed by unlinking its file (of
// concurrent takers exactly one succeeds), then its control socket gets a
// take request with the three descriptors (SCM_RIGHTS); a member that
// does not answer with success is skipped (it is dead or no longer
// waiting; its replenisher drops it). The member taken starts the
// replenisher itself. With -d the sandbox ID is printed and snap exits 0.
// In the foreground snap sends a wait request on the same connection,
// passes each signal on as a kill request, and exits with the program's
// status (128+N for a death by signal N). An answer other than an exit
// status (the connection broke, the sandbox was saved and stopped) hands
// the member to Go: the C code writes its ID into entryTaken, puts the
// signal mask back and returns, and the full command waits for it
// (Taken).
//
// csrc/take.c says what the object may not contain for Go's internal
// linker; gen.sh builds it and refuses an object with relocations, and
// TestEntryObject checks the committed one against its source.
package fasttake

//go:generate ./gen.sh

// entryTaken is where the entry code writes the ID of a member it took in
// the foreground and hands over to Go, NUL-terminated (its size is
// TAKEN_SIZE in csrc/take.c). Written before the Go runtime starts, read
// only after.
var entryTaken [72]byte

// Taken returns the ID of the member the entry code took in the
// foreground and left to the full command to wait for, or "" if it did
// not take one.
func Taken() string {
	for i, c := range entryTaken {
		if c == 0 {
			return string(entryTaken[:i])
		}
	}
	return ""
}
