package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"snapshotter/runner"
)

// receive waits up to timeout on ln for one migrating sandbox and runs it;
// refuse, if set, may refuse it before it runs (see runner.ReceiveOptions).
func receive(ctx context.Context, ln net.Listener, token []byte, timeout time.Duration, o runner.KernelOptions, refuse func(map[string]string) error) (*runner.KernelSandbox, map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return runner.Receive(ctx, runner.ReceiveOptions{Listener: ln, Token: token, Kernel: o, Refuse: refuse})
}

// receiveSentry is a detached sentry's start for snap receive -d: it
// listens, tells the launcher where (runner.ListeningLine on the readiness
// pipe, fd), and receives the sandbox.
func receiveSentry(cmd *cobra.Command, m *runner.Metadata, dir string, o runner.KernelOptions, fd int, addr, tokenFile string, timeout time.Duration) (runner.Sandbox, error) {
	token, err := readToken(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	if fd >= 0 {
		unix.Write(fd, []byte(runner.ListeningLine+ln.Addr().String()+"\n"))
	}
	if !cmd.Flags().Changed("rootfs") {
		o.Rootfs = "" // reopen the source's root
	}
	// The sandbox's metadata is written before it runs here: a target
	// whose state directory cannot take it refuses the sandbox, which then
	// runs on at the source.
	sb, _, err := receive(cmd.Context(), ln, token, timeout, o, func(meta map[string]string) error {
		m.Program = meta[runner.MetaProgram]
		json.Unmarshal([]byte(meta[runner.MetaArgv]), &m.Argv)
		return runner.WriteMetadata(dir, m)
	})
	if err != nil {
		return nil, err
	}
	return sb, nil
}
