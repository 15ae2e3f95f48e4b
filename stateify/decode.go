package stateify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// preallocLimit is how much of a declared payload length Load trusts
// before the bytes arrive (the rest grows as data is actually read).
const preallocLimit = 256 << 10

// trustLenLimit is the largest payload read in one allocation on the word
// of a reader's Len method; larger ones grow as data arrives.
const trustLenLimit = 1 << 30

// MaxStreamSize bounds the payload length a stream header may declare.
const MaxStreamSize = 1 << 36

// Decoder reads one state stream. Generated StateLoad methods call its
// methods; any malformed input panics with an engine error that Load
// recovers, so generated code needs no error checks.
type Decoder struct {
	buf   []byte
	pos   int
	ctx   context.Context
	types []streamType
	objs  []Savable // by object ID; objs[0] unused
	cur   int       // object being decoded
	// budget bounds the memory allocated for slices, maps and objects to a
	// multiple of the input size.
	budget int

	waitDepth int
	edges     []edge
	hooks     []hook
	later     []func()
}

type streamType struct {
	name    string
	fields  []Field
	local   *TypeInfo
	mapping []int // stream field index -> local field index, or -1
}

type edge struct{ from, to int }

type hook struct {
	obj int
	fn  func(context.Context)
}

// Allocation budget: a stream may make Load allocate allocBase bytes plus
// allocFactor bytes per payload byte for objects, slices and maps. Objects
// can be much larger in memory than on the wire (zero fields take one
// byte, nosave fields none), hence the generous factor and base.
const (
	allocFactor = 64
	allocBase   = 16 << 20
)

// Load decodes a stream written by Save into root, a non-nil pointer to the
// same registered type as the saved root, overwriting *root. afterLoad hooks
// run after the whole graph is decoded, in `state:"wait"` dependency order.
// Load reads exactly one stream from r. The root is decoded in place (other
// objects may point to it), so after an error *root is zeroed or partly
// loaded and must not be used.
func Load(ctx context.Context, r io.Reader, root any) error {
	if err := registryError(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stateify: load: %w", err)
	}
	s, ok := root.(Savable)
	if !ok {
		return fmt.Errorf("%w: load root of type %T: not a pointer to a registered savable type", ErrNotSavable, root)
	}
	if s.StateTypeInfo().ptr(s) == nil {
		return fmt.Errorf("%w: load root: nil %s", ErrNotSavable, s.StateTypeName())
	}
	payload, err := readStream(r)
	if err != nil {
		return err
	}
	phaseDone(ctx, PhaseRead)
	return loadPayload(ctx, payload, s)
}

// Load's phases, in order, as WithPhaseHook reports them.
const (
	// PhaseRead: the stream is read and its checksum verified.
	PhaseRead = "read"
	// PhaseDecode: every object is decoded.
	PhaseDecode = "decode"
	// PhaseAfterLoad: the afterLoad hooks have run.
	PhaseAfterLoad = "afterload"
)

type phaseHookKey struct{}

// WithPhaseHook returns a context that makes Load call fn as each of its
// phases ends (PhaseRead, PhaseDecode, PhaseAfterLoad), on Load's
// goroutine, so that a caller can time them. A Load that fails stops
// calling it.
func WithPhaseHook(ctx context.Context, fn func(phase string)) context.Context {
	return context.WithValue(ctx, phaseHookKey{}, fn)
}

func phaseDone(ctx context.Context, phase string) {
	if fn, ok := ctx.Value(phaseHookKey{}).(func(string)); ok {
		fn(phase)
	}
}

// readStream reads and verifies the header, payload and checksum.
func readStream(r io.Reader) ([]byte, error) {
	var head [headerLen]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("%w: read header: %v", ErrCorrupt, err)
	}
	if string(head[:8]) != Magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorrupt, head[:8])
	}
	major := binary.BigEndian.Uint16(head[8:10])
	minor := binary.BigEndian.Uint16(head[10:12])
	if major != MajorVersion || minor > MinorVersion {
		return nil, fmt.Errorf("%w: stream is %d.%d, this build reads %d.0 to %d.%d", ErrVersion, major, minor, MajorVersion, MajorVersion, MinorVersion)
	}
	if flags := binary.BigEndian.Uint32(head[12:16]); flags != 0 {
		return nil, fmt.Errorf("%w: unknown header flags %#x", ErrCorrupt, flags)
	}
	n := binary.BigEndian.Uint64(head[16:24])
	if n > MaxStreamSize {
		return nil, fmt.Errorf("%w: payload length %d exceeds limit %d", ErrCorrupt, n, uint64(MaxStreamSize))
	}
	all, err := readFull(r, n+trailerLen)
	if err != nil {
		return nil, fmt.Errorf("%w: read payload of %d bytes: %v", ErrCorrupt, n, err)
	}
	payload, tail := all[:n], all[n:]
	crc := crc32.Update(0, castagnoli, head[:])
	crc = crc32.Update(crc, castagnoli, payload)
	if want := binary.BigEndian.Uint32(tail); crc != want {
		return nil, fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, crc, want)
	}
	return payload, nil
}

// readFull reads exactly size bytes. It trusts size only as far as the
// reader proves it (a Len method reporting enough bytes); otherwise the
// buffer starts at preallocLimit and doubles as data actually arrives, so a
// forged length costs the forger its own bytes.
func readFull(r io.Reader, size uint64) ([]byte, error) {
	if l, ok := r.(interface{ Len() int }); ok && size <= trustLenLimit && l.Len() >= 0 && uint64(l.Len()) >= size {
		buf := make([]byte, size)
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	buf := make([]byte, min(size, preallocLimit))
	have := 0
	for {
		n, err := io.ReadFull(r, buf[have:])
		have += n
		if err != nil {
			return nil, err
		}
		if uint64(have) == size {
			return buf, nil
		}
		next := make([]byte, min(size, 2*uint64(len(buf))))
		copy(next, buf[:have])
		buf = next
	}
}

// loadPayload decodes a verified payload into root.
func loadPayload(ctx context.Context, payload []byte, root Savable) (err error) {
	d := &Decoder{buf: payload, ctx: ctx, budget: allocFactor*len(payload) + allocBase}
	// decodingID and decodingType say which object is being decoded, for
	// error messages (built only on error).
	decodingID, decodingType := 0, (*streamType)(nil)
	defer func() {
		recoverError(recover(), &err)
		var de *detailError
		if decodingType != nil && errors.As(err, &de) && de.where == "" {
			de.where = "object #" + strconv.Itoa(decodingID) + " (" + decodingType.name + ")"
		}
	}()
	d.readTypes()
	n := d.Uint64()
	if n == 0 || n > uint64(d.remaining()) {
		failf(ErrCorrupt, "object count %d with %d bytes left", n, d.remaining())
	}
	d.charge(int(n), 16)
	d.objs = make([]Savable, n+1)
	rootTI := root.StateTypeInfo()
	reflect.ValueOf(root).Elem().SetZero()
	d.objs[1] = root
	for id := 1; id <= int(n); id++ {
		st := d.peekStruct()
		obj := d.objs[id]
		if obj == nil {
			d.charge(1, int(st.local.size))
			obj = st.local.newObj()
			d.objs[id] = obj
		} else if oti := obj.StateTypeInfo(); oti != st.local {
			if id == 1 {
				failf(ErrSchema, "stream root is %s, loading into %s", st.name, rootTI.name)
			}
			failf(ErrSchema, "object %d is a %s in the stream but is referenced as %s", id, st.name, oti.name)
		}
		d.cur = id
		decodingID, decodingType = id, st
		obj.StateLoad(ctx, d)
	}
	decodingType = nil
	if d.pos != len(d.buf) {
		failf(ErrCorrupt, "%d trailing bytes after the last object", len(d.buf)-d.pos)
	}
	for _, fn := range d.later {
		fn()
	}
	phaseDone(ctx, PhaseDecode)
	d.runHooks(ctx)
	phaseDone(ctx, PhaseAfterLoad)
	return nil
}

// readTypes decodes the type table and matches it against the registry.
func (d *Decoder) readTypes() {
	n := d.ArrayLen()
	d.charge(n, int(streamTypeSize))
	d.types = make([]streamType, n)
	seen := make(map[string]bool, n)
	for i := range d.types {
		st := &d.types[i]
		if d.ArrayLen() != 2 {
			failf(ErrCorrupt, "type table entry %d is not [name, fields]", i)
		}
		st.name = d.String()
		if seen[st.name] {
			failf(ErrCorrupt, "type %s listed twice in the type table", st.name)
		}
		seen[st.name] = true
		nf := d.ArrayLen()
		d.charge(nf, 32)
		st.fields = make([]Field, nf)
		for j := range st.fields {
			if d.ArrayLen() != 2 {
				failf(ErrCorrupt, "type %s field %d is not [name, type]", st.name, j)
			}
			st.fields[j] = Field{Name: d.String(), Type: d.String()}
		}
	}
	for i := range d.types {
		st := &d.types[i]
		ti, ok := Lookup(st.name)
		if !ok {
			if user := d.userOf(st.name); user != "" {
				failf(ErrSchema, "stream type %s (used by field %s) is not registered in this build", st.name, user)
			}
			failf(ErrSchema, "stream type %s is not registered in this build", st.name)
		}
		st.local = ti
		st.mapping = make([]int, len(st.fields))
		for j, f := range st.fields {
			li, ok := ti.fieldIndex(f.Name)
			if !ok {
				st.mapping[j] = -1 // removed since the stream was written
				continue
			}
			if lt := ti.fields[li].Type; lt != f.Type {
				failf(ErrSchema, "field %s.%s changed type: stream has %s, this build has %s", st.name, f.Name, f.Type, lt)
			}
			st.mapping[j] = li
		}
	}
}

// userOf names a stream field whose type descriptor mentions type name.
func (d *Decoder) userOf(name string) string {
	for _, st := range d.types {
		for _, f := range st.fields {
			if strings.Contains(f.Type, name) {
				return st.name + "." + f.Name
			}
		}
	}
	return ""
}

var streamTypeSize = reflect.TypeFor[streamType]().Size()

func (d *Decoder) remaining() int { return len(d.buf) - d.pos }

// charge accounts for allocating n elements of size bytes each.
func (d *Decoder) charge(n, size int) {
	if size < 1 {
		size = 1
	}
	if n < 0 || n > d.budget/size {
		failf(ErrCorrupt, "allocation of %d x %d bytes exceeds what the input justifies", n, size)
	}
	d.budget -= n * size
}

// Context returns the context passed to Load.
func (d *Decoder) Context() context.Context { return d.ctx }

// peekStruct returns the stream type of the struct encoding at the current
// position without consuming it.
func (d *Decoder) peekStruct() *streamType {
	pos := d.pos
	d.ArrayLen()
	t := d.Uint64()
	d.pos = pos
	if t >= uint64(len(d.types)) {
		failf(ErrCorrupt, "type index %d out of range (%d types)", t, len(d.types))
	}
	return &d.types[t]
}

// Struct reads the header of a value of type ti and returns, for each field
// in the stream, the local field index to decode it into or -1 to skip it.
func (d *Decoder) Struct(ti *TypeInfo) []int {
	var n int
	var t uint64
	if b := d.buf[d.pos:]; len(b) >= 2 && b[0]&0xf0 == 0x90 && b[1] < 0x80 {
		// Common case: fixarray header and a small type index.
		n, t = int(b[0]&0x0f), uint64(b[1])
		if n > len(b)-1 {
			failf(ErrCorrupt, "array of %d elements with %d bytes left", n, len(b)-1)
		}
		d.pos += 2
	} else {
		n = d.ArrayLen()
		t = d.Uint64()
	}
	if t >= uint64(len(d.types)) {
		failf(ErrCorrupt, "type index %d out of range (%d types)", t, len(d.types))
	}
	st := &d.types[t]
	if st.local != ti {
		failf(ErrSchema, "value of type %s found where %s is expected", st.name, ti.name)
	}
	if n != len(st.fields)+1 {
		failf(ErrCorrupt, "%s value has %d elements, want %d", st.name, n, len(st.fields)+1)
	}
	return st.mapping
}

// object returns the object with the given ID, or nil if it has not been
// allocated yet; an ID out of range is corrupt.
func (d *Decoder) object(id uint64) Savable {
	if id >= uint64(len(d.objs)) {
		failf(ErrCorrupt, "reference to object %d of %d", id, len(d.objs)-1)
	}
	return d.objs[id]
}

// LoadPtr decodes a pointer written by SavePtr into *p.
func LoadPtr[T any, PT interface {
	*T
	Savable
}](d *Decoder, p *PT) {
	id := d.Uint64()
	if id == 0 {
		*p = nil
		return
	}
	o := d.object(id)
	if o == nil {
		var x PT = new(T)
		d.charge(1, int(x.StateTypeInfo().size))
		d.objs[id] = x
		*p = x
	} else {
		x, ok := o.(PT)
		if !ok {
			failf(ErrSchema, "object %d is a %s, referenced as %s", id, o.StateTypeName(), PT(nil).StateTypeName())
		}
		*p = x
	}
	if d.waitDepth > 0 {
		d.edges = append(d.edges, edge{d.cur, int(id)})
	}
}

// LoadIface decodes an interface value written by Encoder.Iface into *p.
func LoadIface[I any](d *Decoder, p *I) {
	if d.nextNil() {
		var zero I
		*p = zero
		return
	}
	if d.ArrayLen() != 2 {
		failf(ErrCorrupt, "interface value is not [type, object]")
	}
	t := d.Uint64()
	if t >= uint64(len(d.types)) {
		failf(ErrCorrupt, "type index %d out of range (%d types)", t, len(d.types))
	}
	st := &d.types[t]
	id := d.Uint64()
	var s Savable
	if id == 0 {
		s = st.local.nilValue()
	} else {
		s = d.object(id)
		if s == nil {
			d.charge(1, int(st.local.size))
			s = st.local.newObj()
			d.objs[id] = s
		} else if s.StateTypeInfo() != st.local {
			failf(ErrSchema, "object %d is a %s, referenced as %s", id, s.StateTypeName(), st.name)
		}
		if d.waitDepth > 0 {
			d.edges = append(d.edges, edge{d.cur, int(id)})
		}
	}
	v, ok := any(s).(I)
	if !ok {
		failf(ErrSchema, "interface value of type *%s does not implement %s", st.name, reflect.TypeFor[I]())
	}
	*p = v
}

func (t *TypeInfo) nilValue() Savable { return t.nilObj }

// MakeSlice allocates *p with n elements, charging the allocation against
// the input's budget.
func MakeSlice[S ~[]E, E any](d *Decoder, p *S, n int) {
	var zero E
	d.charge(n, int(unsafe.Sizeof(zero)))
	*p = make(S, n)
}

// LoadMap decodes a map written by SaveMap into *p.
func LoadMap[M ~map[K]V, K comparable, V any](d *Decoder, p *M, key func(*Decoder, *K), val func(*Decoder, *V)) {
	n, ok := d.MapLen()
	if !ok {
		*p = nil
		return
	}
	var k0 K
	var v0 V
	d.charge(n, int(unsafe.Sizeof(k0)+unsafe.Sizeof(v0)))
	m := make(M, n)
	// k and v are reused (and reset) for every entry: taking their
	// addresses costs one allocation per map, not two per entry.
	var k, kz K
	var v, vz V
	for range n {
		k, v = kz, vz
		key(d, &k)
		val(d, &v)
		m[k] = v
	}
	*p = m
}

// Convert queues fn, a `state:".(U)"` field's loadF call, to run once the
// whole graph is decoded (so that objects U refers to are complete) and
// before any afterLoad hook.
func (d *Decoder) Convert(fn func()) { d.later = append(d.later, fn) }

// BeginWait marks the start of a `state:"wait"` field: objects referenced
// until EndWait must finish afterLoad before the current object's afterLoad.
func (d *Decoder) BeginWait() { d.waitDepth++ }

// EndWait ends a `state:"wait"` field.
func (d *Decoder) EndWait() { d.waitDepth-- }

// AfterLoad queues fn to run, with Load's context, once the whole graph is
// decoded. Generated code passes the type's afterLoad method.
func (d *Decoder) AfterLoad(fn func(context.Context)) {
	d.hooks = append(d.hooks, hook{d.cur, fn})
}

// runHooks runs the queued afterLoad hooks: an object's hooks run after the
// hooks of every object it waits on, otherwise in object order.
func (d *Decoder) runHooks(ctx context.Context) {
	if len(d.edges) == 0 {
		for _, h := range d.hooks {
			h.fn(ctx)
		}
		return
	}
	n := len(d.objs)
	// Group hooks and edges by object (counting sort keeps it allocation-light).
	hookStart := make([]int32, n+1)
	for _, h := range d.hooks {
		hookStart[h.obj+1]++
	}
	for i := 1; i <= n; i++ {
		hookStart[i] += hookStart[i-1]
	}
	byObj := make([]hook, len(d.hooks))
	fill := append([]int32(nil), hookStart[:n]...)
	for _, h := range d.hooks {
		byObj[fill[h.obj]] = h
		fill[h.obj]++
	}
	edgeStart := make([]int32, n+1)
	for _, e := range d.edges {
		edgeStart[e.from+1]++
	}
	for i := 1; i <= n; i++ {
		edgeStart[i] += edgeStart[i-1]
	}
	adj := make([]int32, len(d.edges))
	copy(fill, edgeStart[:n])
	for _, e := range d.edges {
		adj[fill[e.from]] = int32(e.to)
		fill[e.from]++
	}
	const (
		white = iota
		grey
		black
	)
	color := make([]byte, n)
	type frame struct{ obj, next int32 }
	var stack []frame
	for start := 1; start < n; start++ {
		if color[start] != white {
			continue
		}
		color[start] = grey
		stack = append(stack[:0], frame{int32(start), edgeStart[start]})
		for len(stack) > 0 {
			f := &stack[len(stack)-1]
			if f.next < edgeStart[f.obj+1] {
				to := adj[f.next]
				f.next++
				switch color[to] {
				case white:
					color[to] = grey
					stack = append(stack, frame{to, edgeStart[to]})
				case grey:
					var names []string
					for i := len(stack) - 1; i >= 0; i-- {
						names = append(names, d.objs[stack[i].obj].StateTypeName())
						if stack[i].obj == to {
							break
						}
					}
					slices.Reverse(names)
					names = append(names, d.objs[to].StateTypeName())
					failf(ErrWaitCycle, "%s", strings.Join(names, " waits on "))
				}
				continue
			}
			color[f.obj] = black
			for _, h := range byObj[hookStart[f.obj]:hookStart[f.obj+1]] {
				h.fn(ctx)
			}
			stack = stack[:len(stack)-1]
		}
	}
}

// typeErr reports a value of the wrong msgpack kind.
func (d *Decoder) typeErr(want string, c byte) {
	failf(ErrCorrupt, "at offset %d: want %s, found msgpack code %#02x", d.pos-1, want, c)
}

func (d *Decoder) truncated(n int) {
	failf(ErrCorrupt, "at offset %d: need %d bytes, %d left", d.pos, n, d.remaining())
}

func (d *Decoder) byte1() byte {
	if d.pos >= len(d.buf) {
		d.truncated(1)
	}
	c := d.buf[d.pos]
	d.pos++
	return c
}

func (d *Decoder) take(n int) []byte {
	if n < 0 || n > len(d.buf)-d.pos {
		d.truncated(n)
	}
	b := d.buf[d.pos : d.pos+n : d.pos+n]
	d.pos += n
	return b
}

func (d *Decoder) nextNil() bool {
	if d.pos < len(d.buf) && d.buf[d.pos] == 0xc0 {
		d.pos++
		return true
	}
	return false
}

// Bool decodes a bool.
func (d *Decoder) Bool() bool {
	if b := d.buf[d.pos:]; len(b) > 0 && b[0]&0xfe == 0xc2 {
		d.pos++
		return b[0] == 0xc3
	}
	return d.boolSlow()
}

func (d *Decoder) boolSlow() bool {
	switch c := d.byte1(); c {
	case 0xc2:
		return false
	case 0xc3:
		return true
	default:
		d.typeErr("bool", c)
		return false
	}
}

// Int64 decodes any msgpack integer that fits in an int64.
func (d *Decoder) Int64() int64 {
	if b := d.buf[d.pos:]; len(b) > 0 && (b[0] <= 0x7f || b[0] >= 0xe0) {
		d.pos++
		return int64(int8(b[0]))
	}
	return d.int64Slow()
}

func (d *Decoder) int64Slow() int64 {
	c := d.byte1()
	if c <= 0x7f {
		return int64(c)
	}
	if c >= 0xe0 {
		return int64(int8(c))
	}
	switch c {
	case 0xcc:
		return int64(d.take(1)[0])
	case 0xcd:
		return int64(binary.BigEndian.Uint16(d.take(2)))
	case 0xce:
		return int64(binary.BigEndian.Uint32(d.take(4)))
	case 0xcf:
		u := binary.BigEndian.Uint64(d.take(8))
		if u > math.MaxInt64 {
			failf(ErrCorrupt, "integer %d overflows int64", u)
		}
		return int64(u)
	case 0xd0:
		return int64(int8(d.take(1)[0]))
	case 0xd1:
		return int64(int16(binary.BigEndian.Uint16(d.take(2))))
	case 0xd2:
		return int64(int32(binary.BigEndian.Uint32(d.take(4))))
	case 0xd3:
		return int64(binary.BigEndian.Uint64(d.take(8)))
	}
	d.typeErr("integer", c)
	return 0
}

// Uint64 decodes any non-negative msgpack integer.
func (d *Decoder) Uint64() uint64 {
	if p := d.pos; p < len(d.buf) && d.buf[p] < 0x80 {
		d.pos = p + 1
		return uint64(d.buf[p])
	}
	return d.uint64Slow()
}

func (d *Decoder) uint64Slow() uint64 {
	c := d.byte1()
	if c <= 0x7f {
		return uint64(c)
	}
	switch c {
	case 0xcc:
		return uint64(d.take(1)[0])
	case 0xcd:
		return uint64(binary.BigEndian.Uint16(d.take(2)))
	case 0xce:
		return uint64(binary.BigEndian.Uint32(d.take(4)))
	case 0xcf:
		return binary.BigEndian.Uint64(d.take(8))
	case 0xd0, 0xd1, 0xd2, 0xd3:
		d.pos--
		v := d.Int64()
		if v < 0 {
			failf(ErrCorrupt, "negative value %d for an unsigned integer", v)
		}
		return uint64(v)
	}
	if c >= 0xe0 {
		failf(ErrCorrupt, "negative value %d for an unsigned integer", int8(c))
	}
	d.typeErr("unsigned integer", c)
	return 0
}

func (d *Decoder) intRange(v int64, lo, hi int64, kind string) int64 {
	if v < lo || v > hi {
		failf(ErrCorrupt, "value %d overflows %s", v, kind)
	}
	return v
}

func (d *Decoder) uintRange(v uint64, hi uint64, kind string) uint64 {
	if v > hi {
		failf(ErrCorrupt, "value %d overflows %s", v, kind)
	}
	return v
}

// Int8 decodes an integer that must fit in an int8.
func (d *Decoder) Int8() int8 {
	return int8(d.intRange(d.Int64(), math.MinInt8, math.MaxInt8, "int8"))
}

// Int16 decodes an integer that must fit in an int16.
func (d *Decoder) Int16() int16 {
	return int16(d.intRange(d.Int64(), math.MinInt16, math.MaxInt16, "int16"))
}

// Int32 decodes an integer that must fit in an int32.
func (d *Decoder) Int32() int32 {
	return int32(d.intRange(d.Int64(), math.MinInt32, math.MaxInt32, "int32"))
}

// Uint8 decodes an integer that must fit in a uint8.
func (d *Decoder) Uint8() uint8 { return uint8(d.uintRange(d.Uint64(), math.MaxUint8, "uint8")) }

// Uint16 decodes an integer that must fit in a uint16.
func (d *Decoder) Uint16() uint16 {
	return uint16(d.uintRange(d.Uint64(), math.MaxUint16, "uint16"))
}

// Uint32 decodes an integer that must fit in a uint32.
func (d *Decoder) Uint32() uint32 {
	return uint32(d.uintRange(d.Uint64(), math.MaxUint32, "uint32"))
}

// Float64 decodes a float (float32 values are widened).
func (d *Decoder) Float64() float64 {
	switch c := d.byte1(); c {
	case 0xcb:
		return math.Float64frombits(binary.BigEndian.Uint64(d.take(8)))
	case 0xca:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(d.take(4))))
	default:
		d.typeErr("float", c)
		return 0
	}
}

// Float32 decodes a float32.
func (d *Decoder) Float32() float32 {
	switch c := d.byte1(); c {
	case 0xca:
		return math.Float32frombits(binary.BigEndian.Uint32(d.take(4)))
	default:
		d.typeErr("float32", c)
		return 0
	}
}

func (d *Decoder) strLen() int {
	c := d.byte1()
	switch {
	case c&0xe0 == 0xa0:
		return int(c & 0x1f)
	case c == 0xd9:
		return int(d.take(1)[0])
	case c == 0xda:
		return int(binary.BigEndian.Uint16(d.take(2)))
	case c == 0xdb:
		return int(binary.BigEndian.Uint32(d.take(4)))
	}
	d.typeErr("string", c)
	return 0
}

// String decodes a string.
func (d *Decoder) String() string { return string(d.take(d.strLen())) }

func (d *Decoder) binLen() int {
	c := d.byte1()
	switch c {
	case 0xc4:
		return int(d.take(1)[0])
	case 0xc5:
		return int(binary.BigEndian.Uint16(d.take(2)))
	case 0xc6:
		return int(binary.BigEndian.Uint32(d.take(4)))
	}
	d.typeErr("bin", c)
	return 0
}

// Bytes decodes a byte slice written by Encoder.Bytes (nil stays nil). The
// result does not alias the input.
func (d *Decoder) Bytes() []byte {
	if d.nextNil() {
		return nil
	}
	b := d.take(d.binLen())
	return append(make([]byte, 0, len(b)), b...)
}

// ByteArray decodes bin data of exactly len(dst) bytes into dst.
func (d *Decoder) ByteArray(dst []byte) {
	n := d.binLen()
	if n != len(dst) {
		failf(ErrCorrupt, "byte array of %d bytes, want %d", n, len(dst))
	}
	copy(dst, d.take(n))
}

// ArrayLen decodes an array header whose length the remaining input can
// hold (every element takes at least one byte).
func (d *Decoder) ArrayLen() int {
	if b := d.buf[d.pos:]; len(b) > 0 && b[0]&0xf0 == 0x90 && int(b[0]&0x0f) < len(b) {
		d.pos++
		return int(b[0] & 0x0f)
	}
	return d.arrayLenSlow()
}

func (d *Decoder) arrayLenSlow() int {
	c := d.byte1()
	var n int
	switch {
	case c&0xf0 == 0x90:
		n = int(c & 0x0f)
	case c == 0xdc:
		n = int(binary.BigEndian.Uint16(d.take(2)))
	case c == 0xdd:
		n = int(binary.BigEndian.Uint32(d.take(4)))
	default:
		d.typeErr("array", c)
	}
	if n > d.remaining() {
		failf(ErrCorrupt, "array of %d elements with %d bytes left", n, d.remaining())
	}
	return n
}

// ArrayLenExact decodes an array header that must have n elements.
func (d *Decoder) ArrayLenExact(n int) {
	if got := d.ArrayLen(); got != n {
		failf(ErrCorrupt, "array of %d elements, want %d", got, n)
	}
}

// SliceLen decodes a slice header: ok is false for a nil slice.
func (d *Decoder) SliceLen() (n int, ok bool) {
	if d.nextNil() {
		return 0, false
	}
	return d.ArrayLen(), true
}

// MapLen decodes a map header: ok is false for a nil map.
func (d *Decoder) MapLen() (n int, ok bool) {
	if d.nextNil() {
		return 0, false
	}
	c := d.byte1()
	switch {
	case c&0xf0 == 0x80:
		n = int(c & 0x0f)
	case c == 0xde:
		n = int(binary.BigEndian.Uint16(d.take(2)))
	case c == 0xdf:
		n = int(binary.BigEndian.Uint32(d.take(4)))
	default:
		d.typeErr("map", c)
	}
	if n > d.remaining()/2 {
		failf(ErrCorrupt, "map of %d entries with %d bytes left", n, d.remaining())
	}
	return n, true
}

// Skip skips one msgpack value of any kind (a field removed since the
// stream was written). It is iterative, so nesting depth costs no stack.
func (d *Decoder) Skip() {
	pending := 1
	for pending > 0 {
		pending--
		c := d.byte1()
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		case c&0xf0 == 0x80:
			pending += 2 * int(c&0x0f)
		case c&0xf0 == 0x90:
			pending += int(c & 0x0f)
		case c&0xe0 == 0xa0:
			d.take(int(c & 0x1f))
		default:
			switch c {
			case 0xc4, 0xd9:
				d.take(int(d.take(1)[0]))
			case 0xc5, 0xda:
				d.take(int(binary.BigEndian.Uint16(d.take(2))))
			case 0xc6, 0xdb:
				d.take(int(binary.BigEndian.Uint32(d.take(4))))
			case 0xc7:
				d.take(1 + int(d.take(1)[0]))
			case 0xc8:
				d.take(1 + int(binary.BigEndian.Uint16(d.take(2))))
			case 0xc9:
				d.take(1 + int(binary.BigEndian.Uint32(d.take(4))))
			case 0xcc, 0xd0:
				d.take(1)
			case 0xcd, 0xd1:
				d.take(2)
			case 0xca, 0xce, 0xd2:
				d.take(4)
			case 0xcb, 0xcf, 0xd3:
				d.take(8)
			case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
				d.take(1 + 1<<(c-0xd4))
			case 0xdc:
				pending += int(binary.BigEndian.Uint16(d.take(2)))
			case 0xdd:
				pending += int(binary.BigEndian.Uint32(d.take(4)))
			case 0xde:
				pending += 2 * int(binary.BigEndian.Uint16(d.take(2)))
			case 0xdf:
				pending += 2 * int(binary.BigEndian.Uint32(d.take(4)))
			default:
				d.typeErr("msgpack value", c)
			}
		}
		if pending > d.remaining() {
			failf(ErrCorrupt, "%d pending values with %d bytes left", pending, d.remaining())
		}
	}
}
