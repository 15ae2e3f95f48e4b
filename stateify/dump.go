package stateify

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
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
		descs  []string
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
			t.descs = append(t.descs, typ)
			fmt.Fprintf(bw, "        %s %s\n", name, typ)
		}
		types = append(types, t)
	}
	objs := d.Uint64()
	fmt.Fprintf(bw, "objects (%d):\n", objs)
	var value func(desc string, depth int, indent string)
	structValue := func(depth int, indent string) {
		na := d.ArrayLen()
		if na == 0 {
			failf(ErrCorrupt, "struct value without a type index")
		}
		ti := d.Uint64()
		if ti >= uint64(len(types)) || na-1 != len(types[ti].fields) {
			failf(ErrCorrupt, "value of type index %d with %d fields does not match the type table", ti, na-1)
		}
		t := types[ti]
		bw.WriteString(t.name + " {\n")
		for i, f := range t.fields {
			bw.WriteString(indent + "  " + f + ": ")
			value(t.descs[i], depth+1, indent+"  ")
			bw.WriteString("\n")
		}
		bw.WriteString(indent + "}")
	}
	value = func(desc string, depth int, indent string) {
		if d.pos >= len(d.buf) {
			d.truncated(1)
		}
		if depth > maxDumpDepth {
			d.Skip()
			bw.WriteString("...")
			return
		}
		if d.nextNil() {
			bw.WriteString("nil")
			return
		}
		switch {
		case strings.HasPrefix(desc, "*"):
			if id := d.Uint64(); id == 0 {
				bw.WriteString("nil")
			} else {
				fmt.Fprintf(bw, "#%d", id)
			}
		case desc == "interface":
			if d.ArrayLen() != 2 {
				failf(ErrCorrupt, "interface value is not [type, object]")
			}
			ti := d.Uint64()
			if ti >= uint64(len(types)) {
				failf(ErrCorrupt, "type index %d out of range", ti)
			}
			if id := d.Uint64(); id == 0 {
				fmt.Fprintf(bw, "(*%s)(nil)", types[ti].name)
			} else {
				fmt.Fprintf(bw, "(*%s)#%d", types[ti].name, id)
			}
		case strings.HasPrefix(desc, "bytes"):
			fmt.Fprintf(bw, "%x", d.take(d.binLen()))
		case strings.HasPrefix(desc, "[]"), strings.HasPrefix(desc, "["):
			elem := desc[strings.IndexByte(desc, ']')+1:]
			na := d.ArrayLen()
			bw.WriteString("[")
			for i := range na {
				if i > 0 {
					bw.WriteString(", ")
				}
				value(elem, depth+1, indent)
			}
			bw.WriteString("]")
		case strings.HasPrefix(desc, "map["):
			kv := desc[len("map["):]
			key, elem := kv[:max(strings.IndexByte(kv, ']'), 0)], kv[strings.IndexByte(kv, ']')+1:]
			nm, _ := d.MapLen()
			bw.WriteString("{")
			for i := range nm {
				if i > 0 {
					bw.WriteString(", ")
				}
				value(key, depth+1, indent)
				bw.WriteString(": ")
				value(elem, depth+1, indent)
			}
			bw.WriteString("}")
		case desc == "bool":
			bw.WriteString(strconv.FormatBool(d.Bool()))
		case desc == "string":
			bw.WriteString(strconv.Quote(d.String()))
		case desc == "float32" || desc == "float64":
			bw.WriteString(strconv.FormatFloat(d.Float64(), 'g', -1, 64))
		case strings.HasPrefix(desc, "uint"):
			bw.WriteString(strconv.FormatUint(d.Uint64(), 10))
		case strings.HasPrefix(desc, "int"):
			bw.WriteString(strconv.FormatInt(d.Int64(), 10))
		default:
			structValue(depth, indent)
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
