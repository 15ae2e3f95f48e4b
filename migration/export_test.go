package migration

import (
	"bufio"
	"bytes"
	"io"
)

func newBufWriter(w io.Writer) *bufio.Writer { return bufio.NewWriter(w) }
func newBufReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

// testKey is the frame key of keyedWriter and keyedReader.
var testKey = bytes.Repeat([]byte{7}, keySize)

// keyedWriter writes frames to w, as the peer of keyedReader.
func keyedWriter(w io.Writer) *Conn {
	c := &Conn{bw: newBufWriter(w)}
	if err := c.setKeys(testKey, testKey); err != nil {
		panic(err)
	}
	return c
}

// keyedReader reads frames of keyedWriter from r.
func keyedReader(r io.Reader) *Conn {
	c := &Conn{br: newBufReader(r)}
	if err := c.setKeys(testKey, testKey); err != nil {
		panic(err)
	}
	return c
}
