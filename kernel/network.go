package kernel

import (
	"errors"
	"fmt"
)

// Network modes (snap run --network).
const (
	// NetworkSandbox is the sandbox's own loopback, where ports may be
	// published (package socket, publish.go).
	NetworkSandbox = "sandbox"
	// NetworkNone is the same loopback with nothing published.
	NetworkNone = "none"
	// NetworkHost makes the sandbox's AF_INET and AF_INET6 sockets host
	// sockets (socket.NewHost); Unix sockets stay the sentry's.
	NetworkHost = "host"
)

// ErrNetworkMode means a restore asked for a network mode the image's
// sockets cannot have (host sockets are not the loopback's, and back).
var ErrNetworkMode = errors.New("network mode differs from the image's")

// Network returns the kernel's network mode.
func (k *Kernel) Network() string {
	if k.network == "" {
		return NetworkSandbox
	}
	return k.network
}

// SetNetwork sets a restored kernel's network mode before it runs: mode
// "" keeps the saved one; sandbox and none are one network and may
// replace each other; ErrNetworkMode between host and the others.
func (k *Kernel) SetNetwork(mode string) error {
	if mode == "" || mode == k.Network() {
		return nil
	}
	if mode == NetworkHost || k.Network() == NetworkHost {
		return fmt.Errorf("--network %s: %w (%s)", mode, ErrNetworkMode, k.Network())
	}
	k.network = mode
	return nil
}

// ReopenHostSockets makes a restored sandbox's host sockets again
// (socket.Names.ReopenHost): listeners listen on their saved address and
// port, bound UDP sockets are bound again, established connections are
// reset. Call it before the program resumes.
func (k *Kernel) ReopenHostSockets() error {
	return k.unixNames.ReopenHost()
}

// ReleaseHostPorts frees the host ports of the sandbox's host sockets
// (socket.Names.ReleaseHostPorts) for a migration's target on this host,
// once the paused sandbox's state is saved for good.
func (k *Kernel) ReleaseHostPorts() { k.unixNames.ReleaseHostPorts() }

// FreePorts frees every host port the sandbox holds, its published ports
// and its host sockets' (ReleaseHostPorts), once a save that ends it has
// its state for good: a restore on this host, started as soon as the
// save returns, can take them. Preconditions: as ReleaseHostPorts.
func (k *Kernel) FreePorts() {
	if k.pub != nil {
		k.pub.close()
	}
	k.ReleaseHostPorts()
}

// ReclaimHostPorts undoes ReleaseHostPorts when a migration fails and the
// sandbox runs on here (socket.Names.ReclaimHostPorts).
func (k *Kernel) ReclaimHostPorts() error { return k.unixNames.ReclaimHostPorts() }
