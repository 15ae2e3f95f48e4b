package stateify

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// maxDumpDepth bounds the nesting Dump prints; deeper values are elided.
const maxDumpDepth = 32

// Dump writes a human-readable listing of a state stream to w: the header,
// the type table and every object with its field names. It needs no
// registered types, so it can show any stream (for tests, and for `snap
// inspect`). The stream's checksum must be valid.
func Dump(w io.Writer, r io.Reader) (err error) {
	payload, err := readStream(r)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	defer func() {
		recoverError(recover(), &err)
		if ferr := bw.Flush(); err == nil && ferr != nil {
			err = ferr
		}
	}()
	d := &Decoder{buf: payload}
	fmt.Fprintf(bw, "stateify stream %d.%d, %d payload bytes\n", MajorVersion, MinorVersion, len(payload))
	n := d.ArrayLen()
	type ttype struct {
		name   string
		fields []string
	}
	types := make([]ttype, 0, min(n, 1024))
	fmt.Fprintf(bw, "types (%d):\n", n)
	for i := range n {
		if d.ArrayLen() != 2 {
			failf(ErrCorrupt, "type table entry %d is not [name, fields]", i)
		}
		t := ttype{name: d.String()}
		nf := d.ArrayLen()
		fmt.Fprintf(bw, "  [%d] %s\n", i, t.name)
		for j := range nf {
			if d.ArrayLen() != 2 {
				failf(ErrCorrupt, "type %s field %d is not [name, type]", t.name, j)
			}
			name, typ := d.String(), d.String()
			t.fields = append(t.fields, name)
			fmt.Fprintf(bw, "        %s %s\n", name, typ)
		}
		types = append(types, t)
	}
	objs := d.Uint64()
	fmt.Fprintf(bw, "objects (%d):\n", objs)
	var value func(depth int, indent string)
	structValue := func(depth int, indent string) {
		pos := d.pos
		na := d.ArrayLen()
		if na == 0 {
			d.pos = pos
			value(depth, indent)
			return
		}
		ti := d.Uint64()
		if ti >= uint64(len(types)) || na-1 != len(types[ti].fields) {
			failf(ErrCorrupt, "object of type index %d with %d fields does not match the type table", ti, na-1)
		}
		t := types[ti]
		bw.WriteString(t.name + " {\n")
		for _, f := range t.fields {
			bw.WriteString(indent + "  " + f + ": ")
			value(depth+1, indent+"  ")
			bw.WriteString("\n")
		}
		bw.WriteString(indent + "}")
	}
	value = func(depth int, indent string) {
		if d.pos >= len(d.buf) {
			d.truncated(1)
		}
		c := d.buf[d.pos]
		switch {
		case depth > maxDumpDepth:
			d.Skip()
			bw.WriteString("...")
		case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3):
			if c >= 0xe0 || (c >= 0xd0 && c <= 0xd3) {
				bw.WriteString(strconv.FormatInt(d.Int64(), 10))
			} else {
				bw.WriteString(strconv.FormatUint(d.Uint64(), 10))
			}
		case c == 0xc0:
			d.pos++
			bw.WriteString("nil")
		case c == 0xc2 || c == 0xc3:
			bw.WriteString(strconv.FormatBool(d.Bool()))
		case c == 0xca || c == 0xcb:
			bw.WriteString(strconv.FormatFloat(d.Float64(), 'g', -1, 64))
		case c&0xe0 == 0xa0 || (c >= 0xd9 && c <= 0xdb):
			bw.WriteString(strconv.Quote(d.String()))
		case c >= 0xc4 && c <= 0xc6:
			fmt.Fprintf(bw, "bin%x", d.take(d.binLen()))
		case c&0xf0 == 0x90 || c == 0xdc || c == 0xdd:
			na := d.ArrayLen()
			bw.WriteString("[")
			for i := range na {
				if i > 0 {
					bw.WriteString(", ")
				}
				value(depth+1, indent)
			}
			bw.WriteString("]")
		case c&0xf0 == 0x80 || c == 0xde || c == 0xdf:
			nm, _ := d.MapLen()
			bw.WriteString("{")
			for i := range nm {
				if i > 0 {
					bw.WriteString(", ")
				}
				value(depth+1, indent)
				bw.WriteString(": ")
				value(depth+1, indent)
			}
			bw.WriteString("}")
		default:
			d.Skip()
			fmt.Fprintf(bw, "<msgpack %#02x>", c)
		}
	}
	for id := uint64(1); id <= objs; id++ {
		if d.pos >= len(d.buf) {
			failf(ErrCorrupt, "stream ends before object %d of %d", id, objs)
		}
		fmt.Fprintf(bw, "  #%d ", id)
		structValue(0, "  ")
		bw.WriteString("\n")
	}
	if d.pos != len(d.buf) {
		failf(ErrCorrupt, "%d trailing bytes after the last object", len(d.buf)-d.pos)
	}
	return nil
}
