package migration

import (
	"bufio"
	"io"
)

func newBufWriter(w io.Writer) *bufio.Writer { return bufio.NewWriter(w) }
func newBufReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }
