package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// servePooled serves a waiting member id in this process and enters it
// in pool p through its server (EnterPool: it watches its entry).
func servePooled(t *testing.T, sd StateDir, id string) (*parkedSandbox, *Server) {
	t.Helper()
	sb, srv := serveMember(t, sd, id)
	if err := srv.EnterPool("p"); err != nil {
		t.Fatalf("EnterPool() = %v", err)
	}
	return sb, srv
}

// eventually waits, up to the test's deadline, for cond; what names it in
// the failure.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline, ok := t.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	for !cond() {
		if time.Now().After(deadline.Add(-time.Second)) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// listed reports whether member id has its entry in waiting/ of pool p.
func listed(sd StateDir, id string) bool {
	_, err := os.Lstat(filepath.Join(sd.pool("p").waitingDir(), id))
	return err == nil
}

// claimAndDie claims member id as a taker that dies before its take:
// it unlinks the member's entry and sends nothing.
func claimAndDie(t *testing.T, sd StateDir, id string) {
	t.Helper()
	if !sd.pool("p").claim(id) {
		t.Fatalf("claim(%s) failed: not listed", id)
	}
}

// nullStdio opens /dev/null for a take's three descriptors.
func nullStdio(t *testing.T) [3]*os.File {
	t.Helper()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { null.Close() })
	return [3]*os.File{null, null, null}
}

// TestPoolHandoverRejoin: a member claimed by a taker that dies before
// its take enters its pool again after the hand-over timeout and is then
// taken as any other; pool.log says it came back.
func TestPoolHandoverRejoin(t *testing.T) {
	t.Setenv(HandoverTimeoutEnv, "20ms")
	sd := StateDir{Root: t.TempDir()}
	makePool(t, sd, 1)
	sb, _ := servePooled(t, sd, "m1")
	for round := range 2 { // and once more: the new entry is watched too
		claimAndDie(t, sd, "m1")
		eventually(t, "the claimed member waits in its pool again", func() bool { return listed(sd, "m1") })
		if st := sb.State(); st != "waiting" {
			t.Fatalf("round %d: member %s after it came back, want waiting", round, st)
		}
	}
	id, err := TakeFromPool(context.Background(), sd, "p", TakeOptions{Stdio: nullStdio(t)})
	if err != nil || id != "m1" {
		t.Fatalf("TakeFromPool() = %q, %v, want m1", id, err)
	}
	if st := sb.State(); st != "resumed" {
		t.Errorf("member after the take: %s, want resumed", st)
	}
	if listed(sd, "m1") {
		t.Error("the member taken is still listed in waiting/")
	}
	b, _ := os.ReadFile(filepath.Join(sd.pool("p").dir, "pool.log"))
	if strings.Count(string(b), "m1 was claimed but got no take") != 2 {
		t.Errorf("pool.log = %q, want the member's two returns", b)
	}
}

// TestPoolHandoverRemoved: a member claimed by a taker that dies, whose
// pool is then removed (pool rm finds nothing of it to claim), ends
// itself once its timeout fires instead of waiting for ever outside any
// pool; a take that comes meanwhile is refused.
func TestPoolHandoverRemoved(t *testing.T) {
	t.Setenv(HandoverTimeoutEnv, "20ms")
	sd := StateDir{Root: t.TempDir()}
	ctx := context.Background()
	makePool(t, sd, 1)
	removed := make(chan struct{})
	handoverExpiringHook = func(string) { <-removed }
	defer func() { handoverExpiringHook = nil }()
	sb, srv := servePooled(t, sd, "m1")
	claimAndDie(t, sd, "m1")
	err := RemovePool(ctx, sd, "p")
	close(removed)
	if err != nil {
		t.Fatalf("RemovePool() = %v", err)
	}
	if st := sb.State(); st != "waiting" {
		t.Fatalf("member claimed by a dead taker after pool rm: %s, want waiting (not pool rm's)", st)
	}
	eventually(t, "the member out of its removed pool ends", func() bool { return sb.State() == "discarded" })
	if !srv.LeftPool() {
		t.Error("LeftPool() = false, want true (ended by itself)")
	}
	if err := TakeMember(ctx, sd, "m1", nullStdio(t)); err == nil {
		t.Error("TakeMember() of the ended member succeeded")
	}
}

// TestPoolHandoverLateTake: a taker whose take comes after its member
// entered the pool again (the taker was slower than the timeout) gets it
// only if nobody claimed it since (the member claims itself for that
// take), and otherwise is refused or served in the place of the one who
// claimed it, who is then refused: the member is taken exactly once.
func TestPoolHandoverLateTake(t *testing.T) {
	tests := []struct {
		name string
		// when the late take comes: "alone", "between" another take's
		// claim and its take, "after" another take, "during rm" (the
		// pool renamed away, the member not claimed yet), "after rm".
		when     string
		lateWins bool
	}{
		{"late take alone", "alone", true},
		{"late take between another's claim and take", "between", true},
		{"late take after another's take", "after", false},
		{"late take during pool rm", "during rm", false},
		{"late take after pool rm", "after rm", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(HandoverTimeoutEnv, "20ms")
			sd := StateDir{Root: t.TempDir()}
			ctx := context.Background()
			makePool(t, sd, 1)
			sb, _ := servePooled(t, sd, "m1")
			claimAndDie(t, sd, "m1") // the late taker's claim
			eventually(t, "the claimed member waits again", func() bool { return listed(sd, "m1") })
			lateTake := func() error { return TakeMember(ctx, sd, "m1", nullStdio(t)) }
			var lateErr, otherErr error
			served := 0
			switch tc.when {
			case "alone":
				lateErr = lateTake()
				if listed(sd, "m1") {
					t.Error("the member served to the late take is still listed: another taker or pool rm could claim it")
				}
				_, otherErr = TakeFromPool(ctx, sd, "p", TakeOptions{Stdio: nullStdio(t)})
				if !errors.Is(otherErr, ErrPoolEmpty) {
					t.Errorf("TakeFromPool() after the late take = %v, want ErrPoolEmpty", otherErr)
				}
			case "between":
				poolClaimedHook = func(string) { lateErr = lateTake() }
				defer func() { poolClaimedHook = nil }()
				_, otherErr = TakeFromPool(ctx, sd, "p", TakeOptions{Stdio: nullStdio(t)})
				if !errors.Is(otherErr, ErrPoolEmpty) {
					t.Errorf("TakeFromPool() refused by the member = %v, want ErrPoolEmpty (it tried the next)", otherErr)
				}
			case "after":
				_, otherErr = TakeFromPool(ctx, sd, "p", TakeOptions{Stdio: nullStdio(t)})
				lateErr = lateTake()
				if otherErr == nil {
					served++
				}
			case "during rm":
				poolRemovingHook = func() { lateErr = lateTake() }
				defer func() { poolRemovingHook = nil }()
				if err := RemovePool(ctx, sd, "p"); err != nil {
					t.Fatalf("RemovePool() = %v", err)
				}
				if !errors.Is(lateErr, ErrNotWaiting) {
					t.Errorf("late take while pool rm removes the pool = %v, want ErrNotWaiting", lateErr)
				}
			case "after rm":
				if err := RemovePool(ctx, sd, "p"); err != nil {
					t.Fatalf("RemovePool() = %v", err)
				}
				lateErr = lateTake()
			}
			if (lateErr == nil) != tc.lateWins {
				t.Errorf("late take = %v, want it to succeed: %v", lateErr, tc.lateWins)
			}
			if tc.when == "after" && !errors.Is(lateErr, ErrNotWaiting) {
				t.Errorf("late take after another's = %v, want ErrNotWaiting", lateErr)
			}
			if lateErr == nil {
				served++
			}
			want, wantServed := "resumed", 1
			if strings.HasSuffix(tc.when, "rm") {
				want, wantServed = "discarded", 0
			}
			if served != wantServed {
				t.Errorf("%d takes served, want %d", served, wantServed)
			}
			if st := sb.State(); st != want {
				t.Errorf("member: %s, want %s", st, want)
			}
			if listed(sd, "m1") {
				t.Error("the member is still listed in waiting/")
			}
		})
	}
}
