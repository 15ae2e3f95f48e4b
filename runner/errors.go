package runner

import "errors"

// Sentinel errors. Functions wrap them with what failed; test with errors.Is.
var (
	// ErrIDTaken means a sandbox with that ID exists and has not ended.
	ErrIDTaken = errors.New("sandbox ID already in use")
	// ErrBadID means an ID has characters other than [a-zA-Z0-9_.-], is
	// empty, too long, or starts with a dot.
	ErrBadID = errors.New("invalid sandbox ID")
	// ErrUnknownSandbox means no sandbox with that ID exists.
	ErrUnknownSandbox = errors.New("no such sandbox")
	// ErrNotRunning means the sandbox exists but its sentry no longer runs
	// (it exited, was saved, or died).
	ErrNotRunning = errors.New("sandbox is not running")
	// ErrSentryDied means the sentry process vanished without recording an
	// exit status (killed, crashed).
	ErrSentryDied = errors.New("sentry process died")
	// ErrProtocol means a malformed or oversized control message.
	ErrProtocol = errors.New("control protocol error")
	// ErrBadSignal means a signal name or number that Linux does not have.
	ErrBadSignal = errors.New("invalid signal")
	// ErrBusy means the sandbox is already doing an exclusive operation
	// (such as a save) and refuses another one now.
	ErrBusy = errors.New("sandbox is busy")
	// ErrInvalidEnv means an environment entry given for a new sandbox is
	// not KEY=VALUE with a non-empty KEY.
	ErrInvalidEnv = errors.New("invalid environment entry, want KEY=VALUE")
	// ErrSaveTimeout means a save did not finish within its deadline
	// (snap save --timeout): it was aborted, nothing was published, and the
	// sandbox runs on.
	ErrSaveTimeout = errors.New("save timed out")
	// ErrUnsupported means the sandbox does not implement the request.
	ErrUnsupported = errors.New("operation not supported by this sandbox")
	// ErrUnknownPool means no pool with that name exists.
	ErrUnknownPool = errors.New("no such pool")
	// ErrPoolExists means a pool with that name exists already.
	ErrPoolExists = errors.New("pool already exists")
	// ErrPoolEmpty means a pool has no waiting member to take now.
	ErrPoolEmpty = errors.New("pool has no waiting member")
	// ErrNotWaiting means a take reached a sandbox that is not a waiting
	// pool member (taken meanwhile, or not a member at all).
	ErrNotWaiting = errors.New("sandbox is not a waiting pool member")
	// ErrTakePublish means a take could not publish the ports it asked
	// for (a host port in use), or a member of --network host could not
	// bind its own host ports again: the member waits in the pool again.
	ErrTakePublish = errors.New("the take's ports could not be published")
)
