package main

import (
	"bytes"
	"fmt"
	"go/types"
	"strings"
)

func infoVar(gt *genType) string { return "stateTypeInfo" + gt.obj.Name() }

func (g *generator) emitRegistration(w *bytes.Buffer, gts []*genType) {
	w.WriteString("var (\n")
	for _, gt := range gts {
		fmt.Fprintf(w, "\t%s *stateify.TypeInfo\n", infoVar(gt))
	}
	w.WriteString(")\n\nfunc init() { stateify.RegisterPackage(registerStateTypes) }\n\n")
	w.WriteString("// registerStateTypes registers the package's savable types, at stateify's\n// first use (stateify.RegisterPackage).\nfunc registerStateTypes() {\n")
	for _, gt := range gts {
		fmt.Fprintf(w, "\t%s = stateify.Register[%s](%q, []stateify.Field{\n", infoVar(gt), gt.obj.Name(), g.local[gt.obj])
		for _, f := range gt.fields {
			if f.zero {
				continue
			}
			fmt.Fprintf(w, "\t\t{Name: %q, Type: %q},\n", f.name, f.desc)
		}
		w.WriteString("\t})\n")
	}
	w.WriteString("}\n\n")
}

func (g *generator) emitType(w *bytes.Buffer, gt *genType) {
	n, iv := gt.obj.Name(), infoVar(gt)
	fmt.Fprintf(w, "// StateTypeName implements stateify.Savable.\nfunc (x *%s) StateTypeName() string { return %q }\n\n", n, g.local[gt.obj])
	fmt.Fprintf(w, "// StateFields implements stateify.Savable.\nfunc (x *%s) StateFields() []string { return %s.FieldNames() }\n\n", n, iv)
	fmt.Fprintf(w, "// StateTypeInfo implements stateify.Savable.\nfunc (x *%s) StateTypeInfo() *stateify.TypeInfo { return %s }\n\n", n, iv)

	fmt.Fprintf(w, "// StateSave implements stateify.Savable.\nfunc (x *%s) StateSave(e *stateify.Encoder) {\n", n)
	if gt.before {
		w.WriteString("\tx.beforeSave()\n")
	}
	for _, f := range gt.fields {
		if f.zero {
			fmt.Fprintf(w, "\tif %s {\n\t\te.ZeroValueError(%q, %q)\n\t}\n", g.nonZero("x."+f.name, f.typ), g.local[gt.obj], f.name)
		}
	}
	fmt.Fprintf(w, "\te.Struct(%s)\n", iv)
	for _, f := range gt.fields {
		if f.zero {
			continue
		}
		if f.conv {
			fmt.Fprintf(w, "\t{\n\t\tcv := x.%s()\n", f.convSave)
			g.enc(w, "cv", f.typ, 0)
			w.WriteString("\t}\n")
			continue
		}
		g.enc(w, "x."+f.name, f.typ, 0)
	}
	w.WriteString("}\n\n")

	fmt.Fprintf(w, "// StateLoad implements stateify.Savable.\nfunc (x *%s) StateLoad(ctx context.Context, d *stateify.Decoder) {\n", n)
	var saved []*genField
	for _, f := range gt.fields {
		if !f.zero {
			saved = append(saved, f)
		}
	}
	if len(saved) == 0 {
		fmt.Fprintf(w, "\tfor range d.Struct(%s) {\n\t\td.Skip()\n\t}\n", iv)
	} else {
		fmt.Fprintf(w, "\tfor _, f := range d.Struct(%s) {\n\t\tswitch f {\n", iv)
		for i, f := range saved {
			fmt.Fprintf(w, "\t\tcase %d:\n", i)
			if f.wait {
				w.WriteString("\t\t\td.BeginWait()\n")
			}
			if f.conv {
				fmt.Fprintf(w, "\t\t\tvar cv %s\n", g.typeString(f.typ))
				g.dec(w, lval{expr: "cv"}, f.typ, 0)
				fmt.Fprintf(w, "\t\t\td.Convert(func() { x.%s(ctx, cv) })\n", f.convLoad)
			} else {
				g.dec(w, lval{expr: "x." + f.name}, f.typ, 0)
			}
			if f.wait {
				w.WriteString("\t\t\td.EndWait()\n")
			}
		}
		w.WriteString("\t\tdefault:\n\t\t\td.Skip()\n\t\t}\n\t}\n")
	}
	if gt.after {
		w.WriteString("\td.AfterLoad(x.afterLoad)\n")
	}
	w.WriteString("}\n\n")
}

// nonZero returns a Go expression that is true when expr is not zero.
func (g *generator) nonZero(expr string, t types.Type) string {
	t = types.Unalias(t)
	if k, _ := g.classify(t); k == kAtomic {
		if atomicKinds[t.(*types.Named).Obj().Name()] == types.Bool {
			return expr + ".Load()"
		}
		return expr + ".Load() != 0"
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch {
		case u.Info()&types.IsBoolean != 0:
			return expr
		case u.Info()&types.IsString != 0:
			return expr + ` != ""`
		case u.Info()&types.IsNumeric != 0:
			return expr + " != 0"
		}
	case *types.Slice, *types.Map, *types.Pointer, *types.Interface, *types.Chan, *types.Signature:
		return expr + " != nil"
	}
	return "!stateify.IsZero(&" + expr + ")"
}

// lval is an assignable Go expression; ptr, when set, is an expression for
// its address (so that &*p is never written).
type lval struct{ expr, ptr string }

func (l lval) addr() string {
	if l.ptr != "" {
		return l.ptr
	}
	return "&" + l.expr
}

func (g *generator) basicEnc(expr string, t types.Type) string {
	b := t.Underlying().(*types.Basic)
	conv := func(fn, to string) string {
		if types.Identical(t, types.Typ[kindOf(to)]) {
			return fmt.Sprintf("e.%s(%s)", fn, expr)
		}
		return fmt.Sprintf("e.%s(%s(%s))", fn, to, expr)
	}
	switch {
	case b.Info()&types.IsBoolean != 0:
		return conv("Bool", "bool")
	case b.Info()&types.IsString != 0:
		return conv("String", "string")
	case b.Kind() == types.Float32:
		return conv("Float32", "float32")
	case b.Kind() == types.Float64:
		return conv("Float64", "float64")
	case b.Info()&types.IsUnsigned != 0:
		return conv("Uint", "uint64")
	default:
		return conv("Int", "int64")
	}
}

func kindOf(name string) types.BasicKind {
	switch name {
	case "bool":
		return types.Bool
	case "string":
		return types.String
	case "float32":
		return types.Float32
	case "float64":
		return types.Float64
	case "uint64":
		return types.Uint64
	case "int64":
		return types.Int64
	}
	return types.Invalid
}

// basicDec returns the decoder call and its Go result type for basic kind b.
func basicDec(b types.BasicKind) (string, string) {
	switch b {
	case types.Bool:
		return "d.Bool()", "bool"
	case types.String:
		return "d.String()", "string"
	case types.Float32:
		return "d.Float32()", "float32"
	case types.Float64:
		return "d.Float64()", "float64"
	case types.Int8:
		return "d.Int8()", "int8"
	case types.Int16:
		return "d.Int16()", "int16"
	case types.Int32:
		return "d.Int32()", "int32"
	case types.Int64:
		return "d.Int64()", "int64"
	case types.Int:
		return "int(d.Int64())", "int"
	case types.Uint8:
		return "d.Uint8()", "uint8"
	case types.Uint16:
		return "d.Uint16()", "uint16"
	case types.Uint32:
		return "d.Uint32()", "uint32"
	case types.Uint64:
		return "d.Uint64()", "uint64"
	case types.Uint:
		return "uint(d.Uint64())", "uint"
	case types.Uintptr:
		return "uintptr(d.Uint64())", "uintptr"
	}
	return "", ""
}

func indent(depth int) string { return strings.Repeat("\t", depth+1) }

// enc writes code encoding expr (addressable) of type t.
func (g *generator) enc(w *bytes.Buffer, expr string, t types.Type, depth int) {
	t = types.Unalias(t)
	in := indent(depth)
	k, _ := g.classify(t)
	switch k {
	case kBasic:
		fmt.Fprintf(w, "%s%s\n", in, g.basicEnc(expr, t))
	case kAtomic:
		b := atomicKinds[t.(*types.Named).Obj().Name()]
		fmt.Fprintf(w, "%s%s\n", in, g.basicEnc(expr+".Load()", types.Typ[b]))
	case kStruct:
		fmt.Fprintf(w, "%s%s.StateSave(e)\n", in, expr)
	case kPtr:
		fmt.Fprintf(w, "%sstateify.SavePtr(e, %s)\n", in, expr)
	case kIface:
		fmt.Fprintf(w, "%se.Iface(%s)\n", in, expr)
	case kBytes:
		fmt.Fprintf(w, "%se.Bytes(%s)\n", in, expr)
	case kByteArray:
		fmt.Fprintf(w, "%se.ByteArray(%s[:])\n", in, expr)
	case kSlice:
		i := fmt.Sprintf("i%d", depth)
		fmt.Fprintf(w, "%sif %s == nil {\n%s\te.Nil()\n%s} else {\n", in, expr, in, in)
		fmt.Fprintf(w, "%s\te.ArrayLen(len(%s))\n%s\tfor %s := range %s {\n", in, expr, in, i, expr)
		g.enc(w, expr+"["+i+"]", t.Underlying().(*types.Slice).Elem(), depth+2)
		fmt.Fprintf(w, "%s\t}\n%s}\n", in, in)
	case kArray:
		a := t.Underlying().(*types.Array)
		i := fmt.Sprintf("i%d", depth)
		fmt.Fprintf(w, "%se.ArrayLen(%d)\n%sfor %s := range %s {\n", in, a.Len(), in, i, expr)
		g.enc(w, expr+"["+i+"]", a.Elem(), depth+1)
		fmt.Fprintf(w, "%s}\n", in)
	case kMap:
		m := t.Underlying().(*types.Map)
		fmt.Fprintf(w, "%sstateify.SaveMap(e, %s, func(e *stateify.Encoder, mk %s) {\n", in, expr, g.typeString(m.Key()))
		g.enc(w, "mk", m.Key(), depth+1)
		fmt.Fprintf(w, "%s}, func(e *stateify.Encoder, mv *%s) {\n", in, g.typeString(m.Elem()))
		g.enc(w, "(*mv)", m.Elem(), depth+1)
		fmt.Fprintf(w, "%s})\n", in)
	default:
		panic(fmt.Sprintf("stategen: enc of unclassified type %s", t))
	}
}

// dec writes code decoding a value of type t into lv.
func (g *generator) dec(w *bytes.Buffer, lv lval, t types.Type, depth int) {
	t = types.Unalias(t)
	in := indent(depth + 2)
	k, _ := g.classify(t)
	switch k {
	case kBasic:
		call, rt := basicDec(t.Underlying().(*types.Basic).Kind())
		if b, ok := t.(*types.Basic); !ok || b.Name() != rt {
			call = g.typeString(t) + "(" + call + ")"
		}
		fmt.Fprintf(w, "%s%s = %s\n", in, lv.expr, call)
	case kAtomic:
		b := atomicKinds[t.(*types.Named).Obj().Name()]
		call, _ := basicDec(b)
		fmt.Fprintf(w, "%s%s.Store(%s)\n", in, lv.expr, call)
	case kStruct:
		fmt.Fprintf(w, "%s%s.StateLoad(ctx, d)\n", in, lv.expr)
	case kPtr:
		fmt.Fprintf(w, "%sstateify.LoadPtr(d, %s)\n", in, lv.addr())
	case kIface:
		fmt.Fprintf(w, "%sstateify.LoadIface(d, %s)\n", in, lv.addr())
	case kBytes:
		call := "d.Bytes()"
		if !types.Identical(t, types.NewSlice(types.Typ[types.Uint8])) {
			call = g.typeString(t) + "(" + call + ")"
		}
		fmt.Fprintf(w, "%s%s = %s\n", in, lv.expr, call)
	case kByteArray:
		fmt.Fprintf(w, "%sd.ByteArray(%s[:])\n", in, lv.expr)
	case kSlice:
		i, n := fmt.Sprintf("i%d", depth), fmt.Sprintf("n%d", depth)
		fmt.Fprintf(w, "%sif %s, ok := d.SliceLen(); !ok {\n%s\t%s = nil\n%s} else {\n", in, n, in, lv.expr, in)
		fmt.Fprintf(w, "%s\tstateify.MakeSlice(d, %s, %s)\n%s\tfor %s := range %s {\n", in, lv.addr(), n, in, i, lv.expr)
		g.dec(w, lval{expr: lv.expr + "[" + i + "]"}, t.Underlying().(*types.Slice).Elem(), depth+2)
		fmt.Fprintf(w, "%s\t}\n%s}\n", in, in)
	case kArray:
		a := t.Underlying().(*types.Array)
		i := fmt.Sprintf("i%d", depth)
		fmt.Fprintf(w, "%sd.ArrayLenExact(%d)\n%sfor %s := range %s {\n", in, a.Len(), in, i, lv.expr)
		g.dec(w, lval{expr: lv.expr + "[" + i + "]"}, a.Elem(), depth+1)
		fmt.Fprintf(w, "%s}\n", in)
	case kMap:
		m := t.Underlying().(*types.Map)
		fmt.Fprintf(w, "%sstateify.LoadMap(d, %s, func(d *stateify.Decoder, mk *%s) {\n", in, lv.addr(), g.typeString(m.Key()))
		g.dec(w, lval{expr: "*mk", ptr: "mk"}, m.Key(), depth+1)
		fmt.Fprintf(w, "%s}, func(d *stateify.Decoder, mv *%s) {\n", in, g.typeString(m.Elem()))
		g.dec(w, lval{expr: "(*mv)", ptr: "mv"}, m.Elem(), depth+1)
		fmt.Fprintf(w, "%s})\n", in)
	default:
		panic(fmt.Sprintf("stategen: dec of unclassified type %s", t))
	}
}
