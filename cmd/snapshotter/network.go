package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"snapshotter/kernel"
)

// networkFlags are --network and -p of snap run and restore.
type networkFlags struct {
	network string
	publish []string
}

// addNetworkFlags registers the network flags on cmd.
func addNetworkFlags(cmd *cobra.Command, n *networkFlags) {
	cmd.Flags().StringVar(&n.network, "network", "sandbox", "the sandbox's network: sandbox (its own loopback, 127.0.0.0/8 and ::1, where ports may be published), none (the same loopback, nothing published) or host (AF_INET and AF_INET6 sockets are the host's; on restore: as the image's)")
	cmd.Flags().StringArrayVarP(&n.publish, "publish", "p", nil, "publish the sandbox's port PORT on the host as [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp] (HOSTADDR 127.0.0.1 and tcp by default; repeatable; on restore: instead of the image's)")
}

// mappings returns the port mappings -p gives, nil if none was given
// (empty with --network none), checked against --network.
func (n *networkFlags) mappings(cmd *cobra.Command) ([]kernel.PortMapping, error) {
	switch n.network {
	case "sandbox":
	case "none":
		if len(n.publish) > 0 {
			return nil, errors.New("-p: --network none publishes no port (use --network sandbox)")
		}
		return []kernel.PortMapping{}, nil // on restore: not the image's either
	case "host":
		if len(n.publish) > 0 {
			return nil, errors.New("-p: --network host publishes no port (the sandbox's ports are the host's)")
		}
		return []kernel.PortMapping{}, nil
	default:
		return nil, fmt.Errorf("--network %q: give sandbox, none or host", n.network)
	}
	if !cmd.Flags().Changed("publish") {
		return nil, nil
	}
	ms := make([]kernel.PortMapping, 0, len(n.publish))
	for _, v := range n.publish {
		m, err := kernel.ParsePortMapping(v)
		if err != nil {
			return nil, fmt.Errorf("-p %w", err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// mode returns the network mode given, "" if --network was not (a run's
// default, a restore's image's mode).
func (n *networkFlags) mode(cmd *cobra.Command) string {
	if !cmd.Flags().Changed("network") {
		return ""
	}
	return n.network
}

// args returns the network flags given on cmd, to pass them on to a
// detached sentry.
func (n *networkFlags) args(cmd *cobra.Command) []string {
	var args []string
	if cmd.Flags().Changed("network") {
		args = append(args, "--network", n.network)
	}
	for _, p := range n.publish {
		args = append(args, "--publish", p)
	}
	return args
}
