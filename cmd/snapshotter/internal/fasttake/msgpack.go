package fasttake

// The little of msgpack a take's answer needs: the string value of one
// key of the top-level map (runner.Response's "kind"), skipping the
// values of the others, whatever their type.

// mapString returns the string value of key in the msgpack map b.
func mapString(b []byte, key string) (string, bool) {
	v, ok := mapValue(b, key)
	if !ok {
		return "", false
	}
	d := decoder{b: v}
	return d.str()
}

// mapInt returns the integer value of key in the msgpack map b.
func mapInt(b []byte, key string) (int, bool) {
	v, ok := mapValue(b, key)
	if !ok {
		return 0, false
	}
	d := decoder{b: v}
	return d.int()
}

// mapValue returns the encoded value of key in the msgpack map b.
func mapValue(b []byte, key string) ([]byte, bool) {
	d := decoder{b: b}
	n, ok := d.mapLen()
	if !ok {
		return nil, false
	}
	for i := 0; i < n; i++ {
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		start := d.b
		if !d.skip(0) {
			return nil, false
		}
		if k == key {
			return start[:len(start)-len(d.b)], true
		}
	}
	return nil, false
}

// decoder reads msgpack values from b; any malformed or truncated input
// makes its methods report false.
type decoder struct{ b []byte }

func (d *decoder) byte1() (byte, bool) {
	if len(d.b) == 0 {
		return 0, false
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c, true
}

// uint reads an n-byte big-endian unsigned integer.
func (d *decoder) uint(n int) (int, bool) {
	if len(d.b) < n {
		return 0, false
	}
	v := 0
	for _, c := range d.b[:n] {
		v = v<<8 | int(c)
	}
	d.b = d.b[n:]
	return v, v >= 0
}

func (d *decoder) bytes(n int) ([]byte, bool) {
	if n < 0 || len(d.b) < n {
		return nil, false
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s, true
}

// int reads an integer that fits an int.
func (d *decoder) int() (int, bool) {
	c, ok := d.byte1()
	switch {
	case !ok:
		return 0, false
	case c <= 0x7f:
		return int(c), true
	case c >= 0xe0:
		return int(int8(c)), true
	case c == 0xcc:
		return d.uint(1)
	case c == 0xcd:
		return d.uint(2)
	case c == 0xce:
		return d.uint(4)
	case c == 0xcf:
		return d.uint(8)
	case c == 0xd0:
		v, ok := d.uint(1)
		return int(int8(v)), ok
	case c == 0xd1:
		v, ok := d.uint(2)
		return int(int16(v)), ok
	case c == 0xd2:
		v, ok := d.uint(4)
		return int(int32(v)), ok
	case c == 0xd3:
		return d.uint(8)
	}
	return 0, false
}

func (d *decoder) mapLen() (int, bool) {
	c, ok := d.byte1()
	switch {
	case !ok:
		return 0, false
	case c&0xf0 == 0x80:
		return int(c & 0x0f), true
	case c == 0xde:
		return d.uint(2)
	case c == 0xdf:
		return d.uint(4)
	}
	return 0, false
}

func (d *decoder) str() (string, bool) {
	c, ok := d.byte1()
	if !ok {
		return "", false
	}
	var n int
	switch {
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9:
		n, ok = d.uint(1)
	case c == 0xda:
		n, ok = d.uint(2)
	case c == 0xdb:
		n, ok = d.uint(4)
	default:
		return "", false
	}
	if !ok {
		return "", false
	}
	s, ok := d.bytes(n)
	return string(s), ok
}

// skip passes over one value of any type; depth bounds nesting.
func (d *decoder) skip(depth int) bool {
	if depth > 32 || len(d.b) == 0 {
		return false
	}
	c := d.b[0]
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3:
		d.b = d.b[1:]
		return true
	case c&0xe0 == 0xa0, c == 0xd9, c == 0xda, c == 0xdb:
		_, ok := d.str()
		return ok
	case c&0xf0 == 0x80, c == 0xde, c == 0xdf:
		n, ok := d.mapLen()
		for i := 0; ok && i < 2*n; i++ {
			ok = d.skip(depth + 1)
		}
		return ok
	case c&0xf0 == 0x90, c == 0xdc, c == 0xdd:
		d.b = d.b[1:]
		n, ok := int(c&0x0f), true
		if c == 0xdc {
			n, ok = d.uint(2)
		} else if c == 0xdd {
			n, ok = d.uint(4)
		}
		for i := 0; ok && i < n; i++ {
			ok = d.skip(depth + 1)
		}
		return ok
	}
	d.b = d.b[1:]
	// Fixed-size scalars, then bin and ext with their lengths.
	fixed := map[byte]int{0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8,
		0xca: 4, 0xcb: 8, 0xd4: 2, 0xd5: 3, 0xd6: 5, 0xd7: 9, 0xd8: 17}
	if n, ok := fixed[c]; ok {
		_, ok = d.bytes(n)
		return ok
	}
	var n int
	var ok bool
	switch c {
	case 0xc4:
		n, ok = d.uint(1)
	case 0xc5:
		n, ok = d.uint(2)
	case 0xc6:
		n, ok = d.uint(4)
	case 0xc7:
		n, ok = d.uint(1)
		n++
	case 0xc8:
		n, ok = d.uint(2)
		n++
	case 0xc9:
		n, ok = d.uint(4)
		n++
	default:
		return false
	}
	if !ok {
		return false
	}
	_, ok = d.bytes(n)
	return ok
}
