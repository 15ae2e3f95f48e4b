package kernel

import (
	"sort"
	"sync"
	"time"
)

// Timings records named steps of a piece of work (Restore's, and those
// its callers add around it) with when each began and ended, so that the
// steps that run concurrently show as overlapping. It is safe for
// concurrent use; the methods of a nil *Timings do nothing.
type Timings struct {
	mu sync.Mutex
	// steps are in the order they ended. Protected by mu.
	steps []Step
}

// Step is one recorded step.
type Step struct {
	Name       string
	Start, End time.Time
}

// Add records step name from start to end.
func (t *Timings) Add(name string, start, end time.Time) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.steps = append(t.steps, Step{Name: name, Start: start, End: end})
	t.mu.Unlock()
}

// Since records step name from start until now; `defer t.Since(name,
// time.Now())` times the rest of a function.
func (t *Timings) Since(name string, start time.Time) {
	if t != nil {
		t.Add(name, start, time.Now())
	}
}

// Steps returns the recorded steps in the order they began.
func (t *Timings) Steps() []Step {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	out := append([]Step(nil), t.steps...)
	t.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}
