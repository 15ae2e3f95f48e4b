package stateify

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"unsafe"
)

// Encoder writes one state stream. Generated StateSave methods call its
// methods; a failure panics with an engine error that Save recovers.
type Encoder struct {
	buf     []byte   // the chunk being filled
	chunks  [][]byte // full chunks, in order, before buf
	free    [][]byte // recycled chunks
	ids     map[unsafe.Pointer]uint32
	objs    []objRec
	typeIDs []uint32 // registry index -> stream type index + 1
	types   []*TypeInfo
	spans   []objRec
}

// objRec is one object to save: its address and type.
type objRec struct {
	p  unsafe.Pointer
	ti *TypeInfo
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Save encodes the object graph reachable from root, which must be a non-nil
// pointer to a registered savable type, and writes it to w as one stream.
// beforeSave hooks run as objects are reached. The caller must keep the
// graph from changing until Save returns.
func Save(ctx context.Context, w io.Writer, root any) error {
	if err := registryError(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stateify: save: %w", err)
	}
	s, ok := root.(Savable)
	if !ok {
		return fmt.Errorf("%w: save root of type %T: not a pointer to a registered savable type", ErrNotSavable, root)
	}
	ti := s.StateTypeInfo()
	p := ti.ptr(s)
	if p == nil {
		return fmt.Errorf("%w: save root: nil %s", ErrNotSavable, ti.name)
	}
	e := encoderPool.Get().(*Encoder)
	defer e.release()
	return e.save(w, p, ti)
}

// save encodes the graph rooted at the object of type ti at p and writes
// the stream to w.
func (e *Encoder) save(w io.Writer, p unsafe.Pointer, ti *TypeInfo) (err error) {
	current := -1 // index of the object being encoded, for error messages
	defer func() {
		recoverError(recover(), &err)
		var de *detailError
		if current >= 0 && errors.As(err, &de) && de.where == "" {
			de.where = "object #" + strconv.Itoa(current+1) + " (" + e.objs[current].ti.name + ")"
		}
	}()
	e.ref(p, ti)
	for i := 0; i < len(e.objs); i++ {
		current = i
		o := e.objs[i]
		o.ti.save(o.p, e)
	}
	current = -1
	e.checkInterior()

	// Header, then the payload: type table, object count, objects.
	var head bytes24
	table := e.typeTable()
	e.chunks = append(e.chunks, e.buf)
	e.buf = nil
	payloadLen := len(table)
	for _, c := range e.chunks {
		payloadLen += len(c)
	}
	head.put(uint64(payloadLen))
	crc := crc32.Update(0, castagnoli, head[:])
	crc = crc32.Update(crc, castagnoli, table)
	if err := write(w, head[:], table); err != nil {
		return err
	}
	for _, c := range e.chunks {
		crc = crc32.Update(crc, castagnoli, c)
		if err := write(w, c); err != nil {
			return err
		}
	}
	var tail [4]byte
	binary.BigEndian.PutUint32(tail[:], crc)
	return write(w, tail[:])
}

func write(w io.Writer, bufs ...[]byte) error {
	for _, b := range bufs {
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("stateify: write state stream: %w", err)
		}
	}
	return nil
}

// chunkSize is the size at which the encoder starts a new output chunk.
// Chunks avoid copying the whole stream each time the buffer grows.
const chunkSize = 256 << 10

// nextChunk moves the filled buffer to the chunk list. It is called only at
// struct boundaries, so a chunk may exceed chunkSize by one struct.
func (e *Encoder) nextChunk() {
	e.chunks = append(e.chunks, e.buf)
	if n := len(e.free); n > 0 {
		e.buf = e.free[n-1][:0]
		e.free = e.free[:n-1]
	} else {
		e.buf = make([]byte, 0, chunkSize+chunkSize/4)
	}
}

// Header layout constants (see docs/STATE_FORMAT.md).
const (
	// Magic starts every state stream.
	Magic = "SNAPSTFY"
	// MajorVersion changes when old readers cannot read new streams.
	MajorVersion = 1
	// MinorVersion changes for compatible additions.
	MinorVersion = 0
	headerLen    = 24
	trailerLen   = 4
)

// bytes24 is a stream header.
type bytes24 [headerLen]byte

func (h *bytes24) put(payloadLen uint64) {
	copy(h[0:8], Magic)
	binary.BigEndian.PutUint16(h[8:10], MajorVersion)
	binary.BigEndian.PutUint16(h[10:12], MinorVersion)
	binary.BigEndian.PutUint32(h[12:16], 0) // flags, reserved
	binary.BigEndian.PutUint64(h[16:24], payloadLen)
}

// typeTable encodes the stream's type table followed by the object count.
func (e *Encoder) typeTable() []byte {
	t := Encoder{}
	t.ArrayLen(len(e.types))
	for _, ti := range e.types {
		t.ArrayLen(2)
		t.String(ti.name)
		t.ArrayLen(len(ti.fields))
		for _, f := range ti.fields {
			t.ArrayLen(2)
			t.String(f.Name)
			t.String(f.Type)
		}
	}
	t.Uint(uint64(len(e.objs)))
	return t.buf
}

// encoderPool recycles encoders (their buffer, identity map and object
// list) between saves: a repeated checkpoint then allocates almost nothing.
var encoderPool = sync.Pool{New: func() any { return newEncoder() }}

func newEncoder() *Encoder {
	return &Encoder{buf: make([]byte, 0, chunkSize+chunkSize/4), ids: make(map[unsafe.Pointer]uint32)}
}

// maxPooled bounds the output size an encoder may keep in the pool.
const maxPooled = 64 << 20

// maxPooledObjects bounds the identity map and object list size an encoder
// may keep in the pool.
const maxPooledObjects = 1 << 20

// release drops every reference to the saved graph and returns e to the
// pool.
func (e *Encoder) release() {
	if len(e.chunks) > maxPooled/chunkSize || len(e.objs) > maxPooledObjects {
		return
	}
	for _, c := range e.chunks {
		if cap(c) <= 2*chunkSize {
			e.free = append(e.free, c[:0])
		}
	}
	clear(e.chunks)
	e.chunks = e.chunks[:0]
	if n := len(e.free); n > 0 {
		e.buf = e.free[n-1]
		e.free = e.free[:n-1]
	} else {
		e.buf = make([]byte, 0, chunkSize+chunkSize/4)
	}
	clear(e.ids)
	clear(e.objs)
	e.objs = e.objs[:0]
	clear(e.types)
	e.types = e.types[:0]
	clear(e.typeIDs)
	clear(e.spans)
	e.spans = e.spans[:0]
	encoderPool.Put(e)
}

// ref returns the object ID of p, queueing the object for encoding when it
// is new.
func (e *Encoder) ref(p unsafe.Pointer, ti *TypeInfo) uint64 {
	if id, ok := e.ids[p]; ok {
		if o := e.objs[id-1].ti; o != ti {
			failf(ErrNotSavable, "objects of types %s and %s share address %p (a pointer into the middle of an object?)", o.name, ti.name, p)
		}
		return uint64(id)
	}
	e.objs = append(e.objs, objRec{p: p, ti: ti})
	id := uint32(len(e.objs))
	if int(id) != len(e.objs) {
		failf(ErrNotSavable, "more than %d objects", uint32(math.MaxUint32))
	}
	e.ids[p] = id
	e.typeID(ti) // objects' types are always in the table
	return uint64(id)
}

// checkInterior rejects graphs in which one saved object lies inside
// another (a pointer to a field of a saved struct): such a pointer would
// load as a separate copy and silently break sharing. Only objects whose
// type holds savable structs by value can contain another object, so only
// those are sorted; every object is then looked up among them.
func (e *Encoder) checkInterior() {
	containers := e.spans[:0]
	for _, o := range e.objs {
		if o.ti.container() {
			containers = append(containers, o)
		}
	}
	e.spans = containers
	if len(containers) == 0 {
		return
	}
	slices.SortFunc(containers, func(a, b objRec) int { return cmp.Compare(uintptr(a.p), uintptr(b.p)) })
	for _, o := range e.objs {
		if o.ti.size == 0 {
			continue
		}
		// The last container starting at or before o.
		i, found := slices.BinarySearchFunc(containers, uintptr(o.p), func(c objRec, p uintptr) int { return cmp.Compare(uintptr(c.p), p) })
		if !found {
			i--
		}
		if found && containers[i].ti == o.ti {
			// o is this container; check the one before it.
			i--
		}
		if i < 0 {
			continue
		}
		if c := containers[i]; uintptr(o.p) < uintptr(c.p)+c.ti.size {
			failf(ErrNotSavable, "a saved %s lies inside a saved %s: pointers into the middle of objects are not supported", o.ti.name, c.ti.name)
		}
	}
}

func (e *Encoder) typeID(ti *TypeInfo) uint64 {
	if ti.id >= len(e.typeIDs) {
		e.typeIDs = append(e.typeIDs, make([]uint32, ti.id+1-len(e.typeIDs))...)
	}
	if id := e.typeIDs[ti.id]; id != 0 {
		return uint64(id - 1)
	}
	e.types = append(e.types, ti)
	e.typeIDs[ti.id] = uint32(len(e.types))
	return uint64(len(e.types) - 1)
}

// Struct begins the encoding of a value of type ti: a msgpack array holding
// the stream type index and then each saved field.
func (e *Encoder) Struct(ti *TypeInfo) {
	if len(e.buf) >= chunkSize {
		e.nextChunk()
	}
	e.ArrayLen(len(ti.fields) + 1)
	e.Uint(e.typeID(ti))
}

// SavePtr encodes a pointer to a savable object as its object ID (0 for
// nil); the object itself is encoded once, later, however many pointers
// refer to it.
func SavePtr[T any, PT interface {
	*T
	Savable
}](e *Encoder, p PT) {
	if p == nil {
		e.buf = append(e.buf, 0)
		return
	}
	e.Uint(e.ref(unsafe.Pointer((*T)(p)), p.StateTypeInfo()))
}

// Iface encodes an interface value: nil, or [type index, object ID] where
// object ID 0 is a typed nil pointer. The dynamic type must be a pointer to
// a registered savable type.
func (e *Encoder) Iface(v any) {
	if v == nil {
		e.Nil()
		return
	}
	s, ok := v.(Savable)
	if !ok {
		failf(ErrNotSavable, "interface holds %T, which is not a pointer to a registered savable type", v)
	}
	ti := s.StateTypeInfo()
	e.buf = append(e.buf, 0x92)
	e.Uint(e.typeID(ti))
	p := ti.ptr(s)
	if p == nil {
		e.buf = append(e.buf, 0)
		return
	}
	e.Uint(e.ref(p, ti))
}

// SaveMap encodes m as a msgpack map with keys in ascending order, so that
// equal graphs give identical streams. key and val encode one key and one
// value; val gets a pointer to a copy of the value.
func SaveMap[M ~map[K]V, K cmp.Ordered, V any](e *Encoder, m M, key func(*Encoder, K), val func(*Encoder, *V)) {
	if m == nil {
		e.Nil()
		return
	}
	e.MapLen(len(m))
	// v is reused for every entry: taking its address costs one
	// allocation per map, not one per entry.
	var v V
	if len(m) == 1 {
		for k, mv := range m {
			v = mv
			key(e, k)
			val(e, &v)
		}
		return
	}
	var small [16]K
	keys := small[:0]
	if len(m) > len(small) {
		keys = make([]K, 0, len(m))
	}
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v = m[k]
		key(e, k)
		val(e, &v)
	}
}

// ZeroValueError reports a non-zero `state:"zerovalue"` field.
func (e *Encoder) ZeroValueError(typeName, field string) {
	failf(ErrNotSavable, "%s.%s is tagged state:\"zerovalue\" but is not zero", typeName, field)
}

// Nil encodes msgpack nil.
func (e *Encoder) Nil() { e.buf = append(e.buf, 0xc0) }

// Bool encodes a bool.
func (e *Encoder) Bool(v bool) {
	if v {
		e.buf = append(e.buf, 0xc3)
	} else {
		e.buf = append(e.buf, 0xc2)
	}
}

// Int encodes a signed integer in the shortest msgpack form.
func (e *Encoder) Int(v int64) {
	if v >= 0 {
		e.Uint(uint64(v))
		return
	}
	switch {
	case v >= -32:
		e.buf = append(e.buf, byte(v))
	case v >= math.MinInt8:
		e.buf = append(e.buf, 0xd0, byte(v))
	case v >= math.MinInt16:
		e.buf = append(e.buf, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xd2), uint32(v))
	default:
		e.buf = binary.BigEndian.AppendUint64(append(e.buf, 0xd3), uint64(v))
	}
}

// Uint encodes an unsigned integer in the shortest msgpack form.
func (e *Encoder) Uint(v uint64) {
	switch {
	case v <= 0x7f:
		e.buf = append(e.buf, byte(v))
	case v <= math.MaxUint8:
		e.buf = append(e.buf, 0xcc, byte(v))
	case v <= math.MaxUint16:
		e.buf = append(e.buf, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xce), uint32(v))
	default:
		e.buf = binary.BigEndian.AppendUint64(append(e.buf, 0xcf), v)
	}
}

// Float32 encodes a float32.
func (e *Encoder) Float32(v float32) {
	e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xca), math.Float32bits(v))
}

// Float64 encodes a float64.
func (e *Encoder) Float64(v float64) {
	e.buf = binary.BigEndian.AppendUint64(append(e.buf, 0xcb), math.Float64bits(v))
}

// String encodes a string.
func (e *Encoder) String(s string) {
	n := len(s)
	switch {
	case n < 32:
		e.buf = append(e.buf, 0xa0|byte(n))
	case n <= math.MaxUint8:
		e.buf = append(e.buf, 0xd9, byte(n))
	case n <= math.MaxUint16:
		e.buf = append(e.buf, 0xda, byte(n>>8), byte(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xdb), uint32(n))
	}
	e.buf = append(e.buf, s...)
}

// Bytes encodes a byte slice as msgpack bin (nil as msgpack nil).
func (e *Encoder) Bytes(b []byte) {
	if b == nil {
		e.Nil()
		return
	}
	e.binHeader(len(b))
	e.buf = append(e.buf, b...)
}

// ByteArray encodes the contents of a fixed-size byte array as msgpack bin.
func (e *Encoder) ByteArray(b []byte) {
	e.binHeader(len(b))
	e.buf = append(e.buf, b...)
}

func (e *Encoder) binHeader(n int) {
	switch {
	case n <= math.MaxUint8:
		e.buf = append(e.buf, 0xc4, byte(n))
	case n <= math.MaxUint16:
		e.buf = append(e.buf, 0xc5, byte(n>>8), byte(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xc6), uint32(n))
	}
}

// ArrayLen encodes a msgpack array header.
func (e *Encoder) ArrayLen(n int) {
	switch {
	case n < 16:
		e.buf = append(e.buf, 0x90|byte(n))
	case n <= math.MaxUint16:
		e.buf = append(e.buf, 0xdc, byte(n>>8), byte(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xdd), uint32(n))
	}
}

// MapLen encodes a msgpack map header.
func (e *Encoder) MapLen(n int) {
	switch {
	case n < 16:
		e.buf = append(e.buf, 0x80|byte(n))
	case n <= math.MaxUint16:
		e.buf = append(e.buf, 0xde, byte(n>>8), byte(n))
	default:
		e.buf = binary.BigEndian.AppendUint32(append(e.buf, 0xdf), uint32(n))
	}
}
