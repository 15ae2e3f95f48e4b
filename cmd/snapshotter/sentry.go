package main

import (
	"fmt"
	"log"
	"time"

	"github.com/spf13/cobra"

	"snapshotter/runner"
)

func init() { registerCommand(runner.SentryCommand, newSentryCmd) }

// newSentryCmd is the hidden command a detached sandbox runs as:
// `snap sentry --state-dir D --id ID --ready-fd 3 [run flags] -- PROG ARGS`
// (started by runner.Launch; see docs/CONTROL_PROTOCOL.md).
func newSentryCmd(g *globalFlags) *cobra.Command {
	var (
		id, readyFD, restore, verify string
		pool                         string
		receiveAddr, tokenFile       string
		receiveTimeout               time.Duration
		launchedAt                   int64
		lazy, noWS, privateMem       bool
		noCache                      bool
		f                            runFlags
		s                            startFlags
	)
	cmd := &cobra.Command{
		Use:    runner.SentryCommand + " --id ID [flags] -- PROG [ARG...]",
		Short:  "Run a detached sandbox's sentry (internal; started by run -d and restore -d)",
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (restore == "" && receiveAddr == "") == (len(args) == 0) || (restore != "" && receiveAddr != "") {
				return fmt.Errorf("sentry: give one of --restore URI, --receive ADDR or -- PROG [ARG...]")
			}
			if pool != "" && restore == "" {
				return fmt.Errorf("sentry: --pool needs --restore")
			}
			fd, err := runner.ParseReadyFD(readyFD)
			if err != nil {
				return err
			}
			limits, err := f.limits(cmd)
			if err != nil {
				return err
			}
			ms, err := f.net.mappings(cmd)
			if err != nil {
				return err
			}
			sd := runner.StateDir{Root: g.stateDir}
			st, err := runner.RunSentry(runner.SentryOptions{StateDir: sd, ID: id, ReadyFD: fd, Pool: pool},
				func(m *runner.Metadata) (runner.Sandbox, error) {
					o := runner.KernelOptions{
						Platform: f.platform, Rootfs: f.rootfs, Debug: f.debug, Log: log.Writer(),
						ID: id, Version: version, Diag: log.Default(), Limits: limits, Tmpfs: f.tmpfs, ReadOnly: f.readOnly, Binds: f.volumes, Publish: ms, Network: f.net.mode(cmd),
					}
					if receiveAddr != "" {
						return receiveSentry(cmd, m, sd.Dir(id), o, fd, receiveAddr, tokenFile, receiveTimeout)
					}
					if restore == "" {
						// The launcher's working directory is ours: the
						// default --cwd resolves as in the foreground.
						so, err := s.startOptions(f.rootfs, args)
						if err != nil {
							return nil, err
						}
						o.Argv, o.Env, o.Cwd, o.RequireCwd = so.Argv, so.Env, so.Cwd, so.RequireCwd
						return runner.StartKernel(o)
					}
					if !cmd.Flags().Changed("rootfs") {
						o.Rootfs = "" // reopen the saved root
					}
					key, err := readVerifyKey(verify)
					if err != nil {
						return nil, fmt.Errorf("restore %s: %w", restore, err)
					}
					o.VerifyKey = key
					o.Lazy, o.NoWorkingSet = lazy, noWS
					o.Park = pool != ""
					if o.Park && !privateMem {
						o.BaseDir = sd.PoolBaseDir(pool)
					}
					if !o.Park {
						// As a foreground restore: over the restore
						// cache's copy of the memory, or making it.
						if o.Cache, err = restoreCache(g, noCache || lazy); err != nil {
							return nil, fmt.Errorf("restore %s: %w", restore, err)
						}
					}
					var launched time.Time
					if launchedAt > 0 {
						launched = time.Unix(0, launchedAt)
					}
					o.Timings = startTimings(launched)
					sb, man, err := runner.RestoreKernel(cmd.Context(), o, restore, g.store)
					if err != nil {
						return nil, err
					}
					m.Program = man.Metadata[runner.MetaProgram]
					m.Argv = sb.Argv()
					return sb, nil
				})
			if err != nil {
				return err
			}
			if code := st.ExitCode(); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&id, "id", "", "sandbox ID (its directory is reserved by the launcher)")
	cmd.Flags().StringVar(&readyFD, "ready-fd", "", "descriptor of the launcher's readiness pipe")
	cmd.Flags().StringVar(&restore, "restore", "", "restore the image at this URI instead of starting a program")
	cmd.Flags().StringVar(&verify, "verify", "", "with --restore: the public key file the image must be signed with")
	cmd.Flags().BoolVar(&lazy, "lazy", false, "with --restore: restore lazily")
	cmd.Flags().BoolVar(&noWS, "no-working-set", false, "with --lazy: ignore the image's working set")
	cmd.Flags().StringVar(&pool, "pool", "", "with --restore: wait, restored and parked, as a member of this pool until taken")
	cmd.Flags().BoolVar(&noCache, "no-cache", false, "with --restore: neither use nor make the restore cache's copy of the memory")
	cmd.Flags().BoolVar(&privateMem, "private-memory", false, "with --pool: load a copy of the image's memory of its own rather than share the pool's")
	cmd.Flags().StringVar(&receiveAddr, "receive", "", "wait on this address for a migrating sandbox instead of starting a program")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "with --receive: the migration token file")
	cmd.Flags().DurationVar(&receiveTimeout, "receive-timeout", 10*time.Minute, "with --receive: how long to wait for a source")
	cmd.Flags().Int64Var(&launchedAt, "launched-at", 0, "when the launcher started this process (Unix nanoseconds), for the restore's timings")
	addRunFlags(cmd, &f)
	addStartFlags(cmd, &s)
	return cmd
}
