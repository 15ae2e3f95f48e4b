package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"snapshotter/kernel"
)

// A pool keeps members of one image restored and parked, so that taking
// one costs a message on its control socket instead of a restore. It needs
// no daemon: its state is a directory of the state directory,
//
//	<state-dir>/.pools/<name>/pool.json      PoolConfig, replaced atomically
//	<state-dir>/.pools/<name>/waiting/<id>   an empty file per waiting member
//	<state-dir>/.pools/<name>/lock           flock'ed by the one replenisher at work
//	<state-dir>/.pools/<name>/pool.log       why replacing members failed
//
// and its members are ordinary sandboxes (<state-dir>/<id>/) whose
// metadata names the pool, with status waiting until taken. A member
// enters the pool itself once it serves (RunSentry); a taker claims one by
// removing its file in waiting/ (exactly one remover succeeds), hands it
// its stdio and resumes it (TakeMember), and starts a replenisher: a
// detached snap process that launches members until the pool is full
// again, and exits. A member claimed whose take does not come (its taker
// died) enters the pool again, or ends (pool_handover.go).

// ReplenishCommand is the hidden snap command that fills a pool: snap
// runs `EXE --state-dir DIR pool replenish NAME`.
var ReplenishCommand = []string{"pool", "replenish"}

// ReplenishDelay is how long after a take its member starts the
// replenisher: a restore takes the CPUs for a while, and the program just
// taken should have them for its first moments.
const ReplenishDelay = 50 * time.Millisecond

// ReplenishDelayEnv, if set to a Go duration (such as "10m"), replaces
// ReplenishDelay for the members started with it in their environment,
// both as the time before a taken member starts the replenisher and as the
// window in which it records the chunks its program writes first. Tests set
// it long, so that both happen when the program ends: what is recorded is
// then everything it wrote, however slowly a loaded machine ran it.
const ReplenishDelayEnv = "SNAP_POOL_REPLENISH_DELAY"

// replenishDelay returns ReplenishDelay, or what ReplenishDelayEnv says.
func replenishDelay() time.Duration {
	return envDuration(ReplenishDelayEnv, ReplenishDelay)
}

// MaxPoolSize bounds a pool's size.
const MaxPoolSize = 1000

// poolsDir is the directory of the pools in a state directory; its name
// is not a valid sandbox ID, so sandbox listings skip it.
const poolsDir = ".pools"

const poolConfigVersion = 1

// PoolConfig describes a pool; it is pool.json.
type PoolConfig struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	// Image is the URI (or name) every member is restored from.
	Image string `json:"image"`
	// Size is how many members wait when the pool is full.
	Size int `json:"size"`
	// SentryArgs are the sentry flags of every member (platform, limits,
	// root, store, verify key), given before its --restore.
	SentryArgs []string  `json:"sentry_args,omitempty"`
	Created    time.Time `json:"created"`
	// Error is why the last replenishment failed (one line), cleared by a
	// replenishment that fills the pool; ErrorAt is when it failed.
	Error   string     `json:"error,omitempty"`
	ErrorAt *time.Time `json:"error_at,omitempty"`
}

// PoolStatus is a pool and how many of its members wait now.
type PoolStatus struct {
	PoolConfig
	Waiting int
}

// poolDir is one pool's directory.
type poolDir struct {
	sd   StateDir
	name string
	dir  string
}

func (s StateDir) pool(name string) poolDir {
	return poolDir{sd: s, name: name, dir: filepath.Join(s.Root, poolsDir, name)}
}

func (p poolDir) waitingDir() string { return filepath.Join(p.dir, "waiting") }

// ValidatePoolName checks that name can name a pool: the rules of sandbox
// IDs.
func ValidatePoolName(name string) error {
	if err := ValidateID(name); err != nil {
		return fmt.Errorf("pool name: %w", err)
	}
	return nil
}

// config reads pool.json; a missing pool gives ErrUnknownPool.
func (p poolDir) config() (*PoolConfig, error) {
	b, err := os.ReadFile(filepath.Join(p.dir, "pool.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPool, p.name)
	}
	if err != nil {
		return nil, fmt.Errorf("read pool %s: %w", p.name, err)
	}
	var c PoolConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("read pool %s: %w", p.name, err)
	}
	if c.Version < 1 || c.Version > poolConfigVersion {
		return nil, fmt.Errorf("read pool %s: unsupported version %d (want 1..%d)", p.name, c.Version, poolConfigVersion)
	}
	return &c, nil
}

// writeConfig replaces pool.json atomically.
func (p poolDir) writeConfig(c *PoolConfig) error {
	c.Version = poolConfigVersion
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode pool %s: %w", p.name, err)
	}
	f, err := os.CreateTemp(p.dir, ".pool-*.tmp")
	if err != nil {
		return fmt.Errorf("write pool %s: %w", p.name, err)
	}
	_, werr := f.Write(append(b, '\n'))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), filepath.Join(p.dir, "pool.json"))
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write pool %s: %w", p.name, werr)
	}
	return nil
}

// enter adds waiting member id; it fails if the pool is gone.
func (p poolDir) enter(id string) error {
	fd, err := p.enterFile(id)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// enterFile adds waiting member id and returns a descriptor of its file
// (read-only), whose link count drops to zero once a claimer unlinked it;
// it fails if the pool is gone. The file is made in the waiting directory
// opened first, which pool rm may have renamed away meanwhile (RemovePool
// claims only what it finds there once renamed): enterFile then takes its
// file back, or finds that pool rm claimed it, and fails either way, so
// that no member is left waiting in a removed pool.
func (p poolDir) enterFile(id string) (int, error) {
	removed := fmt.Errorf("enter pool %s: %w (removed)", p.name, ErrUnknownPool)
	dfd, err := unix.Open(p.waitingDir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return -1, removed
	}
	if err != nil {
		return -1, fmt.Errorf("enter pool %s: open %s: %w", p.name, p.waitingDir(), err)
	}
	defer unix.Close(dfd)
	if poolEnteringHook != nil {
		poolEnteringHook()
	}
	fd, err := unix.Openat(dfd, id, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return -1, fmt.Errorf("enter pool %s: create %s: %w", p.name, id, err)
	}
	var opened, now unix.Stat_t
	if unix.Fstat(dfd, &opened) != nil || unix.Lstat(p.waitingDir(), &now) != nil || opened.Dev != now.Dev || opened.Ino != now.Ino {
		// Removed between the open and the create: whoever unlinks the
		// file owns the member, and pool rm ends those it owns.
		unix.Unlinkat(dfd, id, 0)
		unix.Close(fd)
		return -1, removed
	}
	return fd, nil
}

// waiting returns the IDs entered in the pool, sorted.
func (p poolDir) waiting() ([]string, error) {
	ents, err := os.ReadDir(p.waitingDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPool, p.name)
	}
	if err != nil {
		return nil, fmt.Errorf("list pool %s: %w", p.name, err)
	}
	ids := make([]string, 0, len(ents))
	for _, e := range ents {
		if ValidateID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// claim removes member id from the pool and reports whether this caller
// did (of concurrent claimers exactly one does). The claimer owns the
// member from then on: a taker hands it over, a replenisher or pool rm
// ends it, and nobody else ends it.
func (p poolDir) claim(id string) bool {
	return os.Remove(filepath.Join(p.waitingDir(), id)) == nil
}

// logf appends a line to pool.log (best effort) and to the process log.
func (p poolDir) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	log.Printf("pool %s: %s", p.name, line)
	f, err := os.OpenFile(filepath.Join(p.dir, "pool.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), line)
	f.Close()
}

// PoolOptions describe a pool to create.
type PoolOptions struct {
	StateDir StateDir
	Name     string
	Image    string
	Size     int
	// SentryArgs: see PoolConfig.
	SentryArgs []string
	// Exe is the snap binary; empty means /proc/self/exe.
	Exe string
}

// CreatePool records a new pool and fills it: it returns once Size members
// wait. If a member cannot be made (a bad image), the pool is removed
// again and the error returned: nothing is left behind.
func CreatePool(ctx context.Context, o PoolOptions) error {
	if err := ValidatePoolName(o.Name); err != nil {
		return err
	}
	if o.Size < 1 || o.Size > MaxPoolSize {
		return fmt.Errorf("create pool %s: size %d, want 1 to %d", o.Name, o.Size, MaxPoolSize)
	}
	if err := os.MkdirAll(filepath.Join(o.StateDir.Root, poolsDir), 0o700); err != nil {
		return fmt.Errorf("create pool %s: %w", o.Name, err)
	}
	p := o.StateDir.pool(o.Name)
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create pool %s: %w", o.Name, ErrPoolExists)
		}
		return fmt.Errorf("create pool %s: %w", o.Name, err)
	}
	c := &PoolConfig{Name: o.Name, Image: o.Image, Size: o.Size, SentryArgs: o.SentryArgs, Created: time.Now().UTC()}
	err := os.Mkdir(p.waitingDir(), 0o700)
	if err == nil {
		err = p.writeConfig(c)
	}
	if err == nil {
		err = Replenish(ctx, o.StateDir, o.Name, o.Exe)
	}
	if err != nil {
		RemovePool(ctx, o.StateDir, o.Name)
		return err
	}
	return nil
}

// Replenish launches members until the pool is full, one replenisher at
// a time (the others wait for its lock, then find less to do). Members
// that ended while they waited are dropped first. A member that cannot be
// made stops it. Its error, whatever failed once the pool was locked, is
// recorded with its time in pool.json (snap pool ls shows it) and in
// pool.log, and returned; it stays recorded until a replenishment fills
// the pool. A pool that is gone is not an error to record.
func Replenish(ctx context.Context, sd StateDir, name, exe string) error {
	p := sd.pool(name)
	lock, err := p.lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer lock.Close()
	err = p.replenishLocked(ctx, exe)
	if err != nil && !errors.Is(err, ErrUnknownPool) {
		p.recordError(err)
	}
	return err
}

// launchPoolMember launches a member of a pool (launchMember); tests
// replace it.
var launchPoolMember = launchMember

// replenishLocked is Replenish once the pool is locked.
func (p poolDir) replenishLocked(ctx context.Context, exe string) error {
	c, err := p.config()
	if err != nil {
		return err
	}
	live := p.prune()
	for ; live < c.Size; live++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pool %s: replace a member: %w", p.name, err)
		}
		if _, err := launchPoolMember(p.sd, c, exe); err != nil {
			return fmt.Errorf("pool %s: replace a member: %w", p.name, err)
		}
	}
	p.primeOne(ctx)
	if c, err = p.config(); err == nil && c.Error != "" {
		c.Error, c.ErrorAt = "", nil
		err = p.writeConfig(c)
	}
	return err
}

// recordError records err, why replenishing the pool failed, with the
// time, in pool.json and pool.log (best effort: a pool removed meanwhile
// records nothing).
//
// Preconditions: the pool's lock is held.
func (p poolDir) recordError(err error) {
	p.logf("%v", err)
	c, rerr := p.config()
	if rerr != nil {
		return
	}
	now := time.Now().UTC()
	c.Error, c.ErrorAt = oneLine(err.Error()), &now
	if werr := p.writeConfig(c); werr != nil {
		log.Printf("pool %s: record why replenishing failed: %v", p.name, werr)
	}
}

// recordSpawnError records in pool name that its replenisher could not be
// started (err), unless a replenisher holds the pool's lock (it refills
// the pool, and records its own errors).
func recordSpawnError(sd StateDir, name string, err error) {
	p := sd.pool(name)
	lock, lerr := p.lock(unix.LOCK_EX | unix.LOCK_NB)
	if lerr != nil {
		return // the pool is gone, or a replenisher holds it
	}
	defer lock.Close()
	p.recordError(err)
}

// lock opens the pool's lock file and takes its flock with how; the
// caller closes the file to release it. A pool that is gone is
// ErrUnknownPool.
func (p poolDir) lock(how int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(p.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPool, p.name)
	}
	if err != nil {
		return nil, fmt.Errorf("lock pool %s: %w", p.name, err)
	}
	if err := flock(f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock pool %s: %w", p.name, err)
	}
	return f, nil
}

// oneLine returns s with its line breaks replaced by "; ", for a column of
// snap pool ls.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// prune drops the members that ended while they waited (their sentry
// died or was killed) and returns how many wait.
func (p poolDir) prune() int {
	ids, err := p.waiting()
	if err != nil {
		return 0
	}
	live := 0
	for _, id := range ids {
		m, err := p.sd.Lookup(id)
		if err == nil && m.Status == StatusWaiting {
			live++
			continue
		}
		if !p.claim(id) {
			continue // taken meanwhile
		}
		if err == nil {
			p.logf("member %s ended while it waited (%s %s); replacing it", id, m.Status, m.Error)
			p.sd.removeUntaken(m)
		}
	}
	// Members a taker claimed and found dead (the fast take leaves them).
	all, _ := p.sd.List()
	for _, m := range all {
		if m.Pool == p.name && m.Taken == nil && Ended(m.Status) {
			p.logf("member %s ended while it waited (%s %s); replacing it", m.ID, m.Status, m.Error)
			p.sd.removeUntaken(m)
		}
	}
	return live
}

// removeUntaken removes the directory of m, a pool member that ended
// without being taken: it never was anyone's sandbox.
func (s StateDir) removeUntaken(m *Metadata) {
	if m.Pool != "" && m.Taken == nil && Ended(m.Status) {
		os.RemoveAll(s.Dir(m.ID))
	}
}

// launchMember starts one member of pool c and returns once it waits.
func launchMember(sd StateDir, c *PoolConfig, exe string) (*Metadata, error) {
	id := NewID()
	args := append(append([]string{"--pool", c.Name}, c.SentryArgs...), "--restore", c.Image)
	m, err := Launch(LaunchOptions{StateDir: sd, ID: id, RestoredFrom: c.Image, SentryArgs: args, Exe: exe, Env: memberEnv()})
	if err != nil {
		if m, lerr := sd.Lookup(id); lerr == nil {
			m.Pool = c.Name
			sd.removeUntaken(m)
		}
		return nil, err
	}
	return m, nil
}

// A member waits with one P (GOMAXPROCS=1): each P of a Go process
// keeps spans of its own for each size class of object it allocated,
// which for a sentry whose heap holds a few hundred KiB of live objects
// is a good part of the memory it does not share with the other members.
// Set in its environment at its start (a later runtime.GOMAXPROCS(1) in
// the process saved less), it is given back once the member is taken and
// its program has answered (restoreMaxProcs, see Unpark): memberProcsEnv holds the GOMAXPROCS snap was
// started with ("" for Go's default), which the members' replenishers,
// started with the members' environment, pass on unchanged.
const memberProcsEnv = "SNAP_POOL_GOMAXPROCS"

// memberEnv returns the environment a member's sentry starts with, over
// this process's.
func memberEnv() []string {
	procs, ok := os.LookupEnv(memberProcsEnv)
	if !ok {
		procs = os.Getenv("GOMAXPROCS")
	}
	return []string{"GOMAXPROCS=1", memberProcsEnv + "=" + procs}
}

// restoreMaxProcs gives a member taken the GOMAXPROCS it waited without
// (memberEnv); it does nothing in a process not started as a member.
func restoreMaxProcs() {
	procs, ok := os.LookupEnv(memberProcsEnv)
	if !ok {
		return
	}
	if n, err := strconv.Atoi(procs); err == nil && n > 0 {
		runtime.GOMAXPROCS(n)
		return
	}
	runtime.SetDefaultGOMAXPROCS()
}

// SpawnReplenisher starts `exe --state-dir ROOT pool replenish NAME` in
// a new session with its stdio on /dev/null, and does not wait for it
// (init or a subreaper reaps it once this process has ended).
func SpawnReplenisher(sd StateDir, name, exe string) error {
	cmd, err := startReplenisher(sd, name, exe)
	if err != nil {
		return err
	}
	return cmd.Process.Release()
}

// spawnReplenisher is SpawnReplenisher for a process that lives on (a
// member's sentry): it reaps the replenisher when it ends.
func spawnReplenisher(sd StateDir, name, exe string) error {
	cmd, err := startReplenisher(sd, name, exe)
	if err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}

func startReplenisher(sd StateDir, name, exe string) (*exec.Cmd, error) {
	if exe == "" {
		exe = "/proc/self/exe"
	}
	args := append(append([]string{"--state-dir", sd.Root}, ReplenishCommand...), name)
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		err = fmt.Errorf("pool %s: start its replenisher: %w", name, err)
		recordSpawnError(sd, name, err)
		return nil, err
	}
	return cmd, nil
}

// TakeOptions describe a take.
type TakeOptions struct {
	// Stdio is the member's stdin, stdout and stderr (the caller keeps
	// its copies).
	Stdio [3]*os.File
	// Wait, when no member waits, keeps trying until one does (or a
	// replenishment fails after the take started, or ctx ends).
	Wait bool
	// Short is called (once) when the pool turns out short of members:
	// empty, or a claimed member had died. It starts a replenisher (a
	// member taken starts one itself).
	Short func()
	// Poll is how often a waiting take looks again; 0 means 10 ms.
	Poll time.Duration
	// Publish are the ports the member publishes (snap pool take -p). A
	// host port that cannot be taken fails the take (ErrTakePublish);
	// the member waits in the pool again.
	Publish []kernel.PortMapping
}

// TakeFromPool claims a waiting member of pool name, gives it o.Stdio and
// resumes it, and returns its ID. Members that died while they
// waited are skipped (and their directories removed). Without o.Wait an
// empty pool gives ErrPoolEmpty.
func TakeFromPool(ctx context.Context, sd StateDir, name string, o TakeOptions) (string, error) {
	if err := ValidatePoolName(name); err != nil {
		return "", err
	}
	p := sd.pool(name)
	if _, err := p.config(); err != nil {
		return "", err
	}
	short := false
	markShort := func() {
		if !short && o.Short != nil {
			short = true
			o.Short()
		}
	}
	started := time.Now()
	poll := o.Poll
	if poll == 0 {
		poll = 10 * time.Millisecond
	}
	for {
		ids, err := p.waiting()
		if errors.Is(err, ErrUnknownPool) {
			return "", fmt.Errorf("take from pool %s: %w (removed)", name, ErrUnknownPool)
		}
		if err != nil {
			return "", err
		}
		for _, id := range p.primedFirst(ids) {
			if !p.claim(id) {
				continue
			}
			if poolClaimedHook != nil {
				poolClaimedHook(id)
			}
			err := takeMember(ctx, sd, id, o.Stdio, o.Publish)
			if err == nil {
				return id, nil
			}
			if errors.Is(err, ErrTakePublish) {
				return "", fmt.Errorf("take from pool %s: %w", name, err)
			}
			// Dead, or no longer waiting: skip it.
			log.Printf("pool %s: skip member %s: %v", name, id, err)
			if m, lerr := sd.Lookup(id); lerr == nil {
				sd.removeUntaken(m)
			}
			markShort()
		}
		markShort()
		if !o.Wait {
			return "", fmt.Errorf("take from pool %s: %w (snap pool take --wait waits for one)", name, ErrPoolEmpty)
		}
		c, err := p.config()
		if err != nil {
			return "", err
		}
		if c.ErrorAt != nil && c.ErrorAt.After(started) {
			return "", fmt.Errorf("take from pool %s: %w, and replacing members fails: %s", name, ErrPoolEmpty, c.Error)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(poll):
		}
	}
}

// TakeMember gives waiting member id its stdio and resumes it.
func TakeMember(ctx context.Context, sd StateDir, id string, stdio [3]*os.File) error {
	return takeMember(ctx, sd, id, stdio, nil)
}

// takeMember is TakeMember with the ports the member publishes.
func takeMember(ctx context.Context, sd StateDir, id string, stdio [3]*os.File, publish []kernel.PortMapping) error {
	c, err := Dial(sd, id)
	if err != nil {
		return err
	}
	defer c.Close()
	req := Request{Type: ReqTake}
	for _, m := range publish {
		req.Publish = append(req.Publish, m.String())
	}
	_, err = c.CallFiles(ctx, req, stdio[:], nil)
	return err
}

// ListPools returns every pool, by name, with its waiting members counted.
func ListPools(sd StateDir) ([]PoolStatus, error) {
	ents, err := os.ReadDir(filepath.Join(sd.Root, poolsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pools: %w", err)
	}
	var out []PoolStatus
	for _, e := range ents {
		if !e.IsDir() || ValidatePoolName(e.Name()) != nil {
			continue
		}
		p := sd.pool(e.Name())
		c, err := p.config()
		if err != nil {
			continue // being created or removed
		}
		st := PoolStatus{PoolConfig: *c}
		ids, _ := p.waiting()
		for _, id := range ids {
			if m, err := sd.Lookup(id); err == nil && m.Status == StatusWaiting {
				st.Waiting++
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemovePool removes pool name and ends its waiting members. Members are
// owned by whoever claimed them (poolDir.claim): one a taker claimed
// before the removal is the taker's and lives on, taken or not yet; pool
// rm claims and ends those still waiting once the pool is renamed away,
// where no taker can claim them any more. A take racing it thus gets a
// member that lives on, or ErrUnknownPool. A replenisher at work finds
// the pool gone and stops; a member it was starting fails to enter the
// pool and ends.
func RemovePool(ctx context.Context, sd StateDir, name string) error {
	if err := ValidatePoolName(name); err != nil {
		return err
	}
	p := sd.pool(name)
	grave := filepath.Join(sd.Root, poolsDir, fmt.Sprintf(".rm-%s-%s", name, NewID()))
	if err := os.Rename(p.dir, grave); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove pool %s: %w", name, ErrUnknownPool)
		}
		return fmt.Errorf("remove pool %s: %w", name, err)
	}
	defer os.RemoveAll(grave)
	if poolRemovingHook != nil {
		poolRemovingHook()
	}
	gone := poolDir{sd: sd, name: name, dir: grave}
	ids, err := gone.waiting()
	if err != nil && !errors.Is(err, ErrUnknownPool) { // no waiting/: a pool half made
		return fmt.Errorf("remove pool %s: %w", name, err)
	}
	var firstErr error
	for _, id := range ids {
		if !gone.claim(id) {
			continue // claimed by a taker before the rename: the taker's
		}
		if err := endMember(ctx, sd, id); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("remove pool %s: %w", name, err)
		}
	}
	// Members that ended untaken: dead while they waited, or claimed by
	// a taker that found them dead.
	all, err := sd.List()
	if err != nil {
		return err
	}
	for _, m := range all {
		if m.Pool == name {
			sd.removeUntaken(m)
		}
	}
	return firstErr
}

// endMember ends member id, which the caller claimed, waits for it (up to
// memberEndTimeout) and removes its directory.
func endMember(ctx context.Context, sd StateDir, id string) error {
	if err := Kill(ctx, sd, id, int(unix.SIGKILL)); err != nil && !errors.Is(err, ErrNotRunning) && !errors.Is(err, ErrSentryDied) && !errors.Is(err, ErrUnknownSandbox) {
		return fmt.Errorf("end member %s: %w", id, err)
	}
	wctx, cancel := context.WithTimeout(ctx, memberEndTimeout)
	_, err := Wait(wctx, sd, id)
	cancel()
	if err != nil && !errors.Is(err, ErrSentryDied) && !errors.Is(err, ErrNotRunning) && !errors.Is(err, ErrUnknownSandbox) {
		log.Printf("end member %s: wait: %v", id, err)
	}
	if m, err := sd.Lookup(id); err == nil {
		sd.removeUntaken(m)
	}
	return nil
}

// Test hooks, nil outside tests: poolClaimedHook runs in TakeFromPool
// between a claim and the hand-over, poolRemovingHook in RemovePool once
// the pool is renamed away and before it claims the waiting members,
// poolEnteringHook in enter between the open of the waiting directory and
// the creation of the member's file.
var (
	poolClaimedHook  func(id string)
	poolRemovingHook func()
	poolEnteringHook func()
)

// memberEndTimeout bounds how long RemovePool waits for a killed member.
const memberEndTimeout = 10 * time.Second
