package migration

import "errors"

var (
	// ErrAuth means the handshake's proofs do not match: the peer does
	// not hold the same token, or a greeting was changed on the way.
	ErrAuth = errors.New("migration peer authentication failed")
	// ErrCorrupt means a frame failed its checksum, did not decode, or
	// broke the protocol's rules.
	ErrCorrupt = errors.New("corrupt migration stream")
	// ErrIncompatibleVersion means the peer speaks another major version.
	ErrIncompatibleVersion = errors.New("incompatible migration protocol version")
	// ErrRemote means the peer reported a failure (FrameError); the error
	// wraps its message.
	ErrRemote = errors.New("migration peer failed")
)
