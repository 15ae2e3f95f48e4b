package statetest

// Accessors for the external round-trip tests.

// SetHidden sets the unexported fields of g.
func (g *Graph) SetHidden(count int64, flag bool, u32 uint32, ip, sp uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.count.Store(count)
	g.flag.Store(flag)
	g.u32.Store(u32)
	g.regs = hostRegs{ip: ip, sp: sp}
}

// Hidden returns the unexported saved fields of g.
func (g *Graph) Hidden() (count int64, flag bool, u32 uint32, ip, sp uint64) {
	return g.count.Load(), g.flag.Load(), g.u32.Load(), g.regs.ip, g.regs.sp
}

// HostOnly returns the unsaved fields of g.
func (g *Graph) HostOnly() (events chan int, cached, saves int, loaded bool) {
	return g.events, g.cached, g.saves, g.loaded
}

// SetHostOnly sets the unsaved fields of g.
func (g *Graph) SetHostOnly(cached int) {
	g.events = make(chan int)
	g.cached = cached
}

// SetScratch sets the zerovalue field.
func (g *Graph) SetScratch(b []byte) { g.scratch = b }

// Run runs the run state once.
func (g *Graph) Run() runState { return g.State.execute(g) }

// NewRunApp returns a run state as the interface type.
func NewRunApp(steps int) runState { return &RunApp{Steps: steps} }

// TypedNilState returns an interface holding a typed nil pointer.
func TypedNilState() runState { return (*RunExit)(nil) }

// ClearHostOnly zeroes the fields that are not saved, so that a saved graph
// and its loaded copy can be compared with reflect.DeepEqual.
func (g *Graph) ClearHostOnly() {
	g.events, g.cached, g.saves, g.loaded = nil, 0, 0, false
}
