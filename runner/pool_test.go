package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"snapshotter/kernel"
)

// parkedSandbox is a Parked sandbox whose "program" writes a line to the
// stdout it is given and ends.
type parkedSandbox struct {
	mu     sync.Mutex
	state  string // waiting, resumed, discarded
	status ExitStatus
	done   chan struct{}
}

func (p *parkedSandbox) Unpark(stdio [3]*os.File, _ []kernel.PortMapping) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != "waiting" {
		closeFiles(stdio[:])
		return ErrNotWaiting
	}
	p.state = "resumed"
	stdio[1].WriteString("resumed\n")
	closeFiles(stdio[:])
	return nil
}

func (p *parkedSandbox) Discard(sig int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != "waiting" {
		return ErrNotWaiting
	}
	p.state, p.status = "discarded", ExitStatus{Signal: sig}
	close(p.done)
	return nil
}

func (p *parkedSandbox) Kill(sig int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == "resumed" {
		p.state, p.status = "killed", ExitStatus{Signal: sig}
		close(p.done)
	}
	return nil
}
func (p *parkedSandbox) Wait() ExitStatus {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}
func (p *parkedSandbox) Save(context.Context, SaveRequest, func(Progress)) (string, error) {
	return "", ErrUnsupported
}

// replenishHooks maps a test's state directory to what starting the
// replenisher of one of its pools does (func()); without one, nothing.
// TestMain installs testSpawnReplenisher once, so that no test starts the
// test binary as a replenisher, and no test writes spawnPoolReplenisher
// while a member of an earlier test (whose replenisher starts 50 ms after
// its take) may read it.
var replenishHooks sync.Map

func testSpawnReplenisher(sd StateDir, _, _ string) error {
	if f, ok := replenishHooks.Load(sd.Root); ok {
		f.(func())()
	}
	return nil
}

// onReplenish has f run when a member of sd starts its pool's
// replenisher, for the rest of the test.
func onReplenish(t *testing.T, sd StateDir, f func()) {
	replenishHooks.Store(sd.Root, f)
	t.Cleanup(func() { replenishHooks.Delete(sd.Root) })
}

// serveParked serves a waiting member id in this process.
func serveParked(t *testing.T, sd StateDir, id string) *parkedSandbox {
	t.Helper()
	sb, _ := serveMember(t, sd, id)
	return sb
}

// serveMember serves a waiting member id of pool p in this process and
// returns it with its server.
func serveMember(t *testing.T, sd StateDir, id string) (*parkedSandbox, *Server) {
	t.Helper()
	m := &Metadata{ID: id, PID: os.Getpid(), Status: StatusWaiting, Pool: "p"}
	if err := sd.Reserve(m); err != nil {
		t.Fatal(err)
	}
	sb := &parkedSandbox{state: "waiting", done: make(chan struct{})}
	srv := NewServer(sd, m, sb)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	go func() {
		srv.Finish(sb.Wait())
		srv.Shutdown(time.Second)
	}()
	t.Cleanup(func() { srv.Shutdown(time.Second) })
	return sb, srv
}

// TestTakeMember passes stdio to a waiting member over its socket: the
// member writes through the passed stdout, a second take is refused, and
// a kill of a waiting member discards it.
func TestTakeMember(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	serveParked(t, sd, "m1")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	if err := TakeMember(ctx, sd, "m1", [3]*os.File{os.Stdin, w, os.Stderr}); err != nil {
		t.Fatalf("TakeMember() = %v", err)
	}
	w.Close() // the member closed its copy
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "resumed\n" {
		t.Errorf("member wrote %q, %v, want %q", b, err, "resumed\n")
	}
	if info, err := Info(ctx, sd, "m1"); err != nil || info.Status != StatusRunning || info.Taken == nil {
		t.Errorf("Info() after take = %+v, %v, want running and taken", info, err)
	}
	if err := TakeMember(ctx, sd, "m1", [3]*os.File{os.Stdin, os.Stdout, os.Stderr}); !errors.Is(err, ErrNotWaiting) {
		t.Errorf("second TakeMember() = %v, want ErrNotWaiting", err)
	}
	if err := Kill(ctx, sd, "m1", 15); err != nil {
		t.Errorf("Kill(taken) = %v", err)
	}

	sb := serveParked(t, sd, "m2")
	if err := Kill(ctx, sd, "m2", 9); err != nil {
		t.Fatalf("Kill(waiting) = %v", err)
	}
	if st := sb.Wait(); st.Signal != 9 {
		t.Errorf("waiting member after kill: %v, want killed by signal 9", st)
	}
}

// TestPoolDirectory checks the pool files without members: a bad name or
// size, a duplicate, an empty pool, listing and removal.
func TestPoolDirectory(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	ctx := context.Background()
	if err := CreatePool(ctx, PoolOptions{StateDir: sd, Name: ".x", Size: 1}); !errors.Is(err, ErrBadID) {
		t.Errorf("CreatePool(.x) = %v, want ErrBadID", err)
	}
	if err := CreatePool(ctx, PoolOptions{StateDir: sd, Name: "x", Size: 0}); err == nil {
		t.Error("CreatePool(size 0) succeeded")
	}
	// A pool made by hand, as CreatePool leaves it before its members.
	p := sd.pool("p")
	os.MkdirAll(p.waitingDir(), 0o700)
	if err := p.writeConfig(&PoolConfig{Name: "p", Image: "img", Size: 2}); err != nil {
		t.Fatal(err)
	}
	if err := CreatePool(ctx, PoolOptions{StateDir: sd, Name: "p", Image: "img", Size: 1}); !errors.Is(err, ErrPoolExists) {
		t.Errorf("CreatePool(existing) = %v, want ErrPoolExists", err)
	}
	if _, err := TakeFromPool(ctx, sd, "p", TakeOptions{}); !errors.Is(err, ErrPoolEmpty) {
		t.Errorf("TakeFromPool(empty) = %v, want ErrPoolEmpty", err)
	}
	if _, err := TakeFromPool(ctx, sd, "q", TakeOptions{}); !errors.Is(err, ErrUnknownPool) {
		t.Errorf("TakeFromPool(unknown) = %v, want ErrUnknownPool", err)
	}
	serveParked(t, sd, "m1")
	if err := p.enter("m1"); err != nil {
		t.Fatal(err)
	}
	pools, err := ListPools(sd)
	if err != nil || len(pools) != 1 || pools[0].Name != "p" || pools[0].Size != 2 || pools[0].Waiting != 1 {
		t.Errorf("ListPools() = %+v, %v, want p of size 2 with 1 waiting", pools, err)
	}
	if err := RemovePool(ctx, sd, "p"); err != nil {
		t.Fatalf("RemovePool() = %v", err)
	}
	if _, err := sd.Lookup("m1"); !errors.Is(err, ErrUnknownSandbox) {
		t.Errorf("Lookup(member) after RemovePool = %v, want it removed", err)
	}
	if err := RemovePool(ctx, sd, "p"); !errors.Is(err, ErrUnknownPool) {
		t.Errorf("RemovePool(removed) = %v, want ErrUnknownPool", err)
	}
	if err := p.enter("m2"); !errors.Is(err, ErrUnknownPool) {
		t.Errorf("enter(removed pool) = %v, want ErrUnknownPool", err)
	}
}

// TestTakenBeforeAnswer: once a take has returned, the state directory
// says the member is taken (its metadata was written before the answer),
// so that what reads the directory at once (snap ps, a replenisher, snap
// pool rm, which ends the waiting members) never takes it for waiting.
// When the write followed the answer, a pool rm right after a take could
// kill the member just taken, and snap ps could list it as waiting.
func TestTakenBeforeAnswer(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	ctx := context.Background()
	p := sd.pool("p")
	if err := os.MkdirAll(p.waitingDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := p.writeConfig(&PoolConfig{Name: "p", Image: "img", Size: 1}); err != nil {
		t.Fatal(err)
	}
	sb := serveParked(t, sd, "m1")
	if err := p.enter("m1"); err != nil {
		t.Fatal(err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	id, err := TakeFromPool(ctx, sd, "p", TakeOptions{Stdio: [3]*os.File{null, null, null}})
	if err != nil || id != "m1" {
		t.Fatalf("TakeFromPool() = %q, %v, want m1", id, err)
	}
	if m, err := sd.Lookup("m1"); err != nil || m.Status != StatusRunning || m.Taken == nil {
		t.Fatalf("Lookup(m1) right after the take = %+v, %v, want running and taken", m, err)
	}
	if err := RemovePool(ctx, sd, "p"); err != nil {
		t.Fatalf("RemovePool() = %v", err)
	}
	sb.mu.Lock()
	state := sb.state
	sb.mu.Unlock()
	if state != "resumed" {
		t.Errorf("member taken, then its pool removed: %s, want resumed (a taken member lives on)", state)
	}
}

// setEnv sets k to v for the test, or unsets it if v is nil.
func setEnv(t *testing.T, k string, v *string) {
	t.Setenv(k, "")
	if v == nil {
		os.Unsetenv(k)
		return
	}
	os.Setenv(k, *v)
}

func strp(s string) *string { return &s }

// TestMemberProcs: a member waits with GOMAXPROCS=1 and gets back, when
// taken, the GOMAXPROCS snap was started with, also through the
// replenishers that members start (which run with a member's
// environment).
func TestMemberProcs(t *testing.T) {
	envs := []struct {
		name          string
		procs, marker *string
		want          []string
	}{
		{"Go's default", nil, nil, []string{"GOMAXPROCS=1", memberProcsEnv + "="}},
		{"the user's", strp("3"), nil, []string{"GOMAXPROCS=1", memberProcsEnv + "=3"}},
		{"a member's replenisher, the user's", strp("1"), strp("3"), []string{"GOMAXPROCS=1", memberProcsEnv + "=3"}},
		{"a member's replenisher, Go's default", strp("1"), strp(""), []string{"GOMAXPROCS=1", memberProcsEnv + "="}},
	}
	for _, tc := range envs {
		t.Run("env/"+tc.name, func(t *testing.T) {
			setEnv(t, "GOMAXPROCS", tc.procs)
			setEnv(t, memberProcsEnv, tc.marker)
			if got := memberEnv(); !slices.Equal(got, tc.want) {
				t.Errorf("memberEnv() = %q, want %q", got, tc.want)
			}
		})
	}

	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	runtime.SetDefaultGOMAXPROCS()
	goDefault := runtime.GOMAXPROCS(0)
	takes := []struct {
		name   string
		marker *string
		want   int
	}{
		{"not a member", nil, 1},
		{"the user's", strp("3"), 3},
		{"Go's default", strp(""), goDefault},
	}
	for _, tc := range takes {
		t.Run("take/"+tc.name, func(t *testing.T) {
			setEnv(t, memberProcsEnv, tc.marker)
			runtime.GOMAXPROCS(1)
			restoreMaxProcs()
			if got := runtime.GOMAXPROCS(0); got != tc.want {
				t.Errorf("GOMAXPROCS after restoreMaxProcs = %d, want %d", got, tc.want)
			}
		})
	}
}

// endingSandbox is a parked sandbox whose program ends as soon as it is
// resumed; its Unpark returns once the replenisher was started (or after
// 10 s), and says whether it was.
type endingSandbox struct {
	parkedSandbox
	spawned       chan struct{}
	startedInTake bool
}

func (e *endingSandbox) Unpark(stdio [3]*os.File, _ []kernel.PortMapping) error {
	closeFiles(stdio[:])
	e.mu.Lock()
	e.state, e.status = "resumed", ExitStatus{}
	e.mu.Unlock()
	close(e.done) // the program ended at once
	select {
	case <-e.spawned:
		e.startedInTake = true
	case <-time.After(10 * time.Second):
	}
	return nil
}

// TestReplenishProgramEndsAtOnce: a member whose program ends while its
// take is still being answered starts its pool's replenisher when it
// ends (Finish): the start used to be armed only after the answer, and a
// sentry that ended first never started one, leaving its pool short.
func TestReplenishProgramEndsAtOnce(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	spawned := make(chan struct{})
	var once sync.Once
	onReplenish(t, sd, func() { once.Do(func() { close(spawned) }) })
	m := &Metadata{ID: "m1", PID: os.Getpid(), Status: StatusWaiting, Pool: "p"}
	if err := sd.Reserve(m); err != nil {
		t.Fatal(err)
	}
	sb := &endingSandbox{parkedSandbox: parkedSandbox{state: "waiting", done: make(chan struct{})}, spawned: spawned}
	srv := NewServer(sd, m, sb)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	finished := make(chan struct{})
	go func() {
		srv.Finish(sb.Wait())
		close(finished)
	}()
	// Finish records the member's end in the state directory: the
	// directory is removed only after it has.
	t.Cleanup(func() {
		srv.Shutdown(time.Second)
		select {
		case <-finished:
		case <-time.After(time.Minute):
			t.Error("the member's server did not finish within a minute of its program's end")
		}
	})
	if err := TakeMember(context.Background(), sd, "m1", [3]*os.File{os.Stdin, os.Stdout, os.Stderr}); err != nil {
		t.Fatalf("TakeMember() = %v", err)
	}
	if !sb.startedInTake {
		t.Error("a member whose program ended during its take did not start its replenisher when it ended")
	}
}

// makePool makes pool p of size members by hand (as CreatePool leaves it
// before its members) with in-process members ids entered (servePooled),
// and returns them.
func makePool(t *testing.T, sd StateDir, size int, ids ...string) map[string]*parkedSandbox {
	t.Helper()
	p := sd.pool("p")
	if err := os.MkdirAll(p.waitingDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := p.writeConfig(&PoolConfig{Name: "p", Image: "img", Size: size}); err != nil {
		t.Fatal(err)
	}
	members := map[string]*parkedSandbox{}
	for _, id := range ids {
		members[id], _ = servePooled(t, sd, id)
	}
	return members
}

func (p *parkedSandbox) State() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// TestPoolRmDuringTake provokes each order of a take and a pool rm at
// their steps (test hooks): a member a take claimed before the pool was
// renamed away is the taker's and runs; a take that comes once it was is
// a one-line ErrUnknownPool; the members nobody took are discarded either
// way. (pool rm used to end every member whose metadata said waiting, and
// so killed a member claimed but not yet handed over, or handed over
// after pool rm had read its metadata.)
func TestPoolRmDuringTake(t *testing.T) {
	tests := []struct {
		name string
		// during runs take or rm in the other's hook.
		during  string
		wantID  string
		wantErr error
		want    map[string]string
	}{
		{"rm between claim and hand-over", "rm", "m1", nil, map[string]string{"m1": "resumed", "m2": "discarded"}},
		{"take once rm renamed the pool", "take", "", ErrUnknownPool, map[string]string{"m1": "discarded", "m2": "discarded"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sd := StateDir{Root: t.TempDir()}
			ctx := context.Background()
			members := makePool(t, sd, 2, "m1", "m2")
			null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer null.Close()
			take := func() (string, error) {
				return TakeFromPool(ctx, sd, "p", TakeOptions{Stdio: [3]*os.File{null, null, null}})
			}
			var (
				id            string
				takeErr, rmEr error
				ran           bool
			)
			switch tc.during {
			case "rm":
				poolClaimedHook = func(string) {
					if !ran {
						ran = true
						rmEr = RemovePool(ctx, sd, "p")
					}
				}
				defer func() { poolClaimedHook = nil }()
				id, takeErr = take()
			case "take":
				poolRemovingHook = func() {
					ran = true
					id, takeErr = take()
				}
				defer func() { poolRemovingHook = nil }()
				rmEr = RemovePool(ctx, sd, "p")
			}
			if !ran {
				t.Fatal("the hook never ran")
			}
			if rmEr != nil {
				t.Errorf("RemovePool() = %v, want nil", rmEr)
			}
			if id != tc.wantID || !errors.Is(takeErr, tc.wantErr) || (tc.wantErr == nil) != (takeErr == nil) {
				t.Errorf("TakeFromPool() = %q, %v, want %q, %v", id, takeErr, tc.wantID, tc.wantErr)
			}
			if takeErr != nil && strings.Contains(takeErr.Error(), "\n") {
				t.Errorf("TakeFromPool() error %q is more than one line", takeErr)
			}
			for mid, want := range tc.want {
				if got := members[mid].State(); got != want {
					t.Errorf("member %s: %s, want %s", mid, got, want)
				}
			}
			if pools, err := ListPools(sd); err != nil || len(pools) != 0 {
				t.Errorf("ListPools() after RemovePool = %+v, %v, want none", pools, err)
			}
			if _, err := TakeFromPool(ctx, sd, "p", TakeOptions{}); !errors.Is(err, ErrUnknownPool) {
				t.Errorf("TakeFromPool() after RemovePool = %v, want ErrUnknownPool", err)
			}
		})
	}
}

// TestPoolEnterRemoved: a member that enters its pool while pool rm
// renames it away (between the open of the waiting directory and the
// creation of its file) fails to enter and leaves no file in the removed
// pool's directory, where pool rm may already have looked.
func TestPoolEnterRemoved(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	makePool(t, sd, 1)
	p := sd.pool("p")
	grave := filepath.Join(sd.Root, poolsDir, ".rm-p")
	poolEnteringHook = func() {
		if err := os.Rename(p.dir, grave); err != nil {
			t.Error(err)
		}
	}
	defer func() { poolEnteringHook = nil }()
	if err := p.enter("m1"); !errors.Is(err, ErrUnknownPool) {
		t.Errorf("enter() while the pool is renamed away = %v, want ErrUnknownPool", err)
	}
	if ents, err := os.ReadDir(filepath.Join(grave, "waiting")); err != nil || len(ents) != 0 {
		t.Errorf("removed pool's waiting directory holds %v, %v, want nothing", ents, err)
	}
}

// TestReplenishError: a replenishment that fails records why, and when,
// in the pool (ListPools, which snap pool ls prints, and pool.log); the
// record stays through more failures and is cleared by a replenishment
// that fills the pool. A replenisher that cannot be started is recorded
// alike.
func TestReplenishError(t *testing.T) {
	sd := StateDir{Root: t.TempDir()}
	ctx := context.Background()
	makePool(t, sd, 1)
	imageGone := errors.New("open image file:///x/img: image not found")
	defer func(f func(StateDir, *PoolConfig, string) (*Metadata, error)) { launchPoolMember = f }(launchPoolMember)
	n := 0
	steps := []struct {
		name      string
		launch    error // nil: the member is made and enters the pool
		wantError string
		waiting   int
	}{
		{"image deleted", imageGone, "image not found", 0},
		{"still deleted", imageGone, "image not found", 0},
		{"image back", nil, "", 1},
		{"pool full", imageGone, "", 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			launchPoolMember = func(sd StateDir, c *PoolConfig, _ string) (*Metadata, error) {
				if st.launch != nil {
					return nil, st.launch
				}
				n++
				id := fmt.Sprintf("m%d", n)
				serveParked(t, sd, id)
				return nil, sd.pool(c.Name).enter(id)
			}
			err := Replenish(ctx, sd, "p", "")
			if (err != nil) != (st.wantError != "") || err != nil && !errors.Is(err, st.launch) {
				t.Errorf("Replenish() = %v, want error %q", err, st.wantError)
			}
			pools, err := ListPools(sd)
			if err != nil || len(pools) != 1 {
				t.Fatalf("ListPools() = %+v, %v, want pool p", pools, err)
			}
			got := pools[0]
			if !strings.Contains(got.Error, st.wantError) || (got.Error == "") != (st.wantError == "") || (got.ErrorAt == nil) != (st.wantError == "") {
				t.Errorf("pool after Replenish: error %q at %v, want %q with its time", got.Error, got.ErrorAt, st.wantError)
			}
			if got.Waiting != st.waiting {
				t.Errorf("pool after Replenish: %d waiting, want %d", got.Waiting, st.waiting)
			}
		})
	}
	log, err := os.ReadFile(filepath.Join(sd.pool("p").dir, "pool.log"))
	if err != nil || strings.Count(string(log), "image not found") != 2 {
		t.Errorf("pool.log = %q, %v, want the two failures", log, err)
	}

	// A replenisher that does not start (its executable is gone).
	if err := SpawnReplenisher(sd, "p", filepath.Join(sd.Root, "no-snap")); err == nil {
		t.Fatal("SpawnReplenisher(missing executable) succeeded")
	}
	if pools, err := ListPools(sd); err != nil || len(pools) != 1 || !strings.Contains(pools[0].Error, "start its replenisher") || pools[0].ErrorAt == nil {
		t.Errorf("ListPools() after a replenisher failed to start = %+v, %v, want its error", pools, err)
	}
}
