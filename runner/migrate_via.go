package runner

import (
	"context"
	"fmt"
	"time"
)

// viaLiveRounds is how many images a migration through a store writes
// while the sandbox runs: a full one, then ones holding what changed since
// the previous (incremental by dirty pages on a local store). The last
// image, saved with the sandbox stopped, holds what changed since those.
const viaLiveRounds = 2

// MigrateVia moves sandbox id through the image store via (snap migrate
// --via): it saves it as a chain of images there, all but the last while
// it runs, each against the previous one, then the last one stopping it,
// and returns that image's URI, for a target's snap restore. A failure
// leaves the sandbox running (a save that fails resumes it) and the
// images written so far in the store.
func MigrateVia(ctx context.Context, sd StateDir, id, via string, timeout time.Duration, progress func(Progress)) (string, error) {
	stamp := time.Now().UTC().Format("20060102-150405")
	parent := ""
	for round := 0; ; round++ {
		req := SaveRequest{
			To:           fmt.Sprintf("%s-via-%s-%d", id, stamp, round),
			Store:        via,
			LeaveRunning: round < viaLiveRounds,
			Parent:       parent,
			Track:        true,
			Timeout:      timeout,
		}
		if progress != nil {
			progress(Progress{Phase: fmt.Sprintf("image %d of %d", round+1, viaLiveRounds+1)})
		}
		uri, err := Save(ctx, sd, id, req, progress)
		if err != nil {
			return "", fmt.Errorf("migrate %s via %s: %w", id, via, err)
		}
		if round == viaLiveRounds {
			return uri, nil
		}
		parent = uri
	}
}
