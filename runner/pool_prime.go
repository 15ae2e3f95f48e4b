package runner

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// A pool over a shared base primes one of its waiting members: the
// replenisher, once the pool is full, has one member copy into its own
// memory the chunks of the base that a take copies before the program
// runs (the first recorded in the pool's writes file: KernelSandbox.Prime),
// and names it in the pool's directory,
//
//	<state-dir>/.pools/<name>/primed   a symbolic link whose target is the member's ID
//
// so that a take tries that member first (TakeFromPool, and the fast take
// in cmd/snapshotter/internal/fasttake) and starts its program at once,
// as a take of a member with a copy of its own does, instead of copying
// them on its path. Only one member at a time holds them (3 MiB of the
// cold-start image's 27 for the whole pool, not for each member); the
// next replenisher, started by the member taken, primes another. The link
// is a hint: a member it names that was taken, or died, is skipped as any
// other would be.
//
// The other members never read those chunks from the base either (their
// take copies them first), so their stubs map the base's pages there
// unpopulated (MemoryBase.Unpopulated for a member restored once the
// writes were recorded; the replenisher has those restored before trim
// theirs, ReqTrim): no member holds page table entries for them, and
// the base's pages there stay in the page cache only.

// primedLink is the name of the link to a pool's primed member.
const primedLink = "primed"

// primed returns the ID of the pool's primed member, or "" if none is
// named.
func (p poolDir) primed() string {
	id, err := os.Readlink(filepath.Join(p.dir, primedLink))
	if err != nil || ValidateID(id) != nil {
		return ""
	}
	return id
}

// primedFirst returns ids with the pool's primed member, if among them,
// moved first.
func (p poolDir) primedFirst(ids []string) []string {
	id := p.primed()
	k := slices.Index(ids, id)
	if k <= 0 {
		return ids
	}
	out := make([]string, 0, len(ids))
	out = append(out, id)
	out = append(out, ids[:k]...)
	return append(out, ids[k+1:]...)
}

// primeOne primes a waiting member unless the one the link names still
// waits, and has the others trimmed (ReqTrim: those restored before the
// pool recorded its writes drop the base's pages that their take copies
// first). Best effort: a member that cannot be primed (taken meanwhile,
// ended) is skipped, and a pool that recorded no writes yet primes none.
//
// Preconditions: the pool's lock is held.
func (p poolDir) primeOne(ctx context.Context) {
	ids, err := p.waiting()
	if err != nil {
		return
	}
	primed := p.primed()
	if !slices.Contains(ids, primed) {
		primed = ""
		for _, id := range ids {
			ok, err := callMember(ctx, p.sd, id, ReqPrime)
			if err != nil {
				continue
			}
			if ok {
				p.setPrimed(id)
				primed = id
			}
			break
		}
	}
	if primed == "" {
		return // nothing recorded yet, or nobody to prime
	}
	recorded := p.writesRecorded()
	for _, id := range ids {
		if id == primed {
			continue
		}
		// A member launched once the writes were recorded read them at
		// its restore: asking it would only wake it.
		if m, err := p.sd.Lookup(id); err == nil && m.Created.After(recorded) {
			continue
		}
		callMember(ctx, p.sd, id, ReqTrim)
	}
}

// writesRecorded returns when the pool's newest writes file was recorded
// (the zero time if there is none).
func (p poolDir) writesRecorded() time.Time {
	var t time.Time
	files, _ := filepath.Glob(filepath.Join(p.dir, writesPrefix+"*"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(t) {
			t = st.ModTime()
		}
	}
	return t
}

// setPrimed points the pool's primed link at id, replacing it atomically.
func (p poolDir) setPrimed(id string) {
	tmp := filepath.Join(p.dir, ".primed-"+NewID())
	if err := os.Symlink(id, tmp); err != nil {
		return
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, primedLink)); err != nil {
		os.Remove(tmp)
	}
}

// callMember sends waiting member id a ReqPrime or ReqTrim and returns
// the result's Primed.
func callMember(ctx context.Context, sd StateDir, id, typ string) (bool, error) {
	c, err := Dial(sd, id)
	if err != nil {
		return false, err
	}
	defer c.Close()
	r, err := c.Call(ctx, Request{Type: typ}, nil)
	if err != nil {
		return false, err
	}
	return r.Primed, nil
}
